//! The public player page (`http.player`): `/live/{userId}/{streamId}/` answers a small HTML
//! page that plays the stream's `index.m3u8` next to it, with hls.js in low-latency mode, or
//! natively on Safari. The page is the same for every stream (the playlist URL is relative),
//! so a CDN may cache it; hls.js is compiled in and served at [`HLS_JS_PATH`], never from a
//! third-party CDN.

/// The vendored hls.js (light build), see `origin/vendor/hls.js/README.md`.
pub const HLS_JS: &[u8] = include_bytes!("../vendor/hls.js/hls.light.min.js");
/// Its version; part of the URL, so the file may be cached forever.
pub const HLS_JS_VERSION: &str = "1.7.4";
/// Where the origin serves it (when the player page is on).
pub const HLS_JS_PATH: &str = "/player/hls-1.7.4.light.min.js";
/// The page, served for any well-formed stream path.
pub const PAGE: &str = include_str!("player.html");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_the_served_hls_js() {
        assert!(PAGE.contains(&format!("src=\"{HLS_JS_PATH}\"")));
        assert!(HLS_JS_PATH.contains(HLS_JS_VERSION));
        assert!(HLS_JS.starts_with(b"!function"), "not the minified build");
        // Nothing loaded from elsewhere.
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
    }

    #[test]
    fn the_vendored_version_is_the_tested_one() {
        let lock = include_str!("../../tests/browser/package-lock.json");
        let needle =
            format!("\"node_modules/hls.js\": {{\n      \"version\": \"{HLS_JS_VERSION}\"");
        assert!(lock.contains(&needle), "tests/browser pins another hls.js");
    }
}
