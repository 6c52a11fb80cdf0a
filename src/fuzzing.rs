//! Entry point of the configuration fuzz target (`fuzz/`) and of the corpus replay test:
//! any file text must give a configuration or a list of errors, never a panic. Not an API.

pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (layered, _) = crate::config::layer_text(&text);
    let _ = crate::config::validate(&layered);
}
