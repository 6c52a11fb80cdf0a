//! A rendered playlist or manifest, shared by every response that serves it, with its gzip
//! made once, on first demand. Handlers hold an `Arc` of it, so compression happens outside
//! any stream lock, and the many held requests that wake on the same new part share one.

use std::io::Write as _;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// Text as served, and its gzip once someone asked for it.
#[derive(Debug)]
pub struct Rendered {
    text: Bytes,
    gzip: OnceLock<Bytes>,
}

impl Rendered {
    pub fn new(text: impl Into<Bytes>) -> Arc<Self> {
        Arc::new(Self {
            text: text.into(),
            gzip: OnceLock::new(),
        })
    }

    /// The text (shares the buffer).
    pub fn text(&self) -> Bytes {
        self.text.clone()
    }

    /// The gzipped text, compressed by the first caller.
    pub fn gzipped(&self) -> Bytes {
        self.gzip.get_or_init(|| gzip(&self.text)).clone()
    }
}

impl Deref for Rendered {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.text
    }
}

/// Gzip (fast level) of a playlist or manifest.
pub fn gzip(data: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    Bytes::from(enc.finish().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_and_is_made_once() {
        use std::io::Read as _;
        let text = "#EXTM3U\n".repeat(100);
        let r = Rendered::new(text.clone());
        let z = r.gzipped();
        assert!(z.len() < text.len());
        assert_eq!(z.as_ptr(), r.gzipped().as_ptr(), "compressed once");
        let mut out = String::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, text);
        assert_eq!(&r[..], text.as_bytes());
    }
}
