//! Entry point of the LL-HLS request fuzz target (`fuzz/`) and of the corpus replay test:
//! arbitrary bytes must never panic. Not an API.

/// The `_HLS_msn`/`_HLS_part`/`_HLS_skip` query parser and the media file name parser, on
/// `data` as text split at the first `?` (name, then query).
pub fn ll_hls_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (name, query) = text.split_once('?').unwrap_or((&text, ""));
    let _ = crate::request::parse_directives(Some(query));
    let _ = crate::naming::MediaName::parse("abc123", name);
}
