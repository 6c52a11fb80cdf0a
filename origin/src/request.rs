//! What a viewer's request asks for, parsed without I/O: the LL-HLS directives of a playlist
//! request and the byte range of a media request (and the media bytes it covers). Never
//! panics on any input (fuzzed: `fuzz/fuzz_targets/ll_hls_request.rs`).

use bytes::Bytes;
use http::header::HeaderValue;

/// The `_HLS_msn` / `_HLS_part` / `_HLS_skip` directives of a playlist request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Directives {
    pub msn: Option<u64>,
    pub part: Option<u64>,
    pub skip: bool,
}

/// Parses a playlist request's query; unknown parameters are ignored (cache busters).
pub fn parse_directives(query: Option<&str>) -> Result<Directives, &'static str> {
    let mut d = Directives::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "_HLS_msn" => d.msn = Some(v.parse().map_err(|_| "_HLS_msn is not a number")?),
            "_HLS_part" => d.part = Some(v.parse().map_err(|_| "_HLS_part is not a number")?),
            "_HLS_skip" => match v {
                "YES" | "v2" => d.skip = true,
                _ => return Err("_HLS_skip must be YES or v2"),
            },
            _ => {}
        }
    }
    if d.part.is_some() && d.msn.is_none() {
        return Err("_HLS_part requires _HLS_msn");
    }
    Ok(d)
}

/// A byte range request, resolved against a length.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeReq {
    Full,
    Partial(u64, u64),
    Unsatisfiable,
}

/// Resolves a `Range` header against a representation of `len` bytes (one range; several
/// are answered with the whole representation, which RFC 9110 allows).
pub fn parse_range(value: Option<&HeaderValue>, len: u64) -> RangeReq {
    let Some(spec) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        // Multiple ranges: serving the whole representation is allowed (RFC 9110 14.2).
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        match b.parse::<u64>() {
            Ok(0) | Err(_) => return RangeReq::Unsatisfiable,
            Ok(n) => (len.saturating_sub(n), len.saturating_sub(1)),
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return RangeReq::Full;
        };
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= start => e.min(len.saturating_sub(1)),
                _ => return RangeReq::Full,
            }
        };
        (start, end)
    };
    if len == 0 || range.0 >= len {
        return RangeReq::Unsatisfiable;
    }
    if range == (0, len - 1) {
        // `bytes=0-` (ffmpeg, Varnish): still answer 206 so the client sees Content-Range.
        return RangeReq::Partial(0, len - 1);
    }
    RangeReq::Partial(range.0, range.1)
}

/// The chunks covering bytes `start..=end` of the concatenation of `chunks`.
/// A single `bytes=N-M` or `bytes=N-` range asked of media still being made, whose length is
/// not known yet (RFC 8673). `None` for anything else: the whole file is served.
pub fn parse_live_range(value: Option<&HeaderValue>) -> Option<(u64, Option<u64>)> {
    let spec = value?.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.trim().split_once('-')?;
    let start = a.trim().parse::<u64>().ok()?;
    match b.trim() {
        "" => Some((start, None)),
        b => b
            .parse::<u64>()
            .ok()
            .filter(|e| *e >= start)
            .map(|e| (start, Some(e))),
    }
}

pub fn slice_chunks(chunks: &[Bytes], start: u64, end: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for c in chunks {
        let (c_start, c_end) = (pos, pos + c.len() as u64);
        pos = c_end;
        if c_end <= start || c_start > end {
            continue;
        }
        let from = start.saturating_sub(c_start) as usize;
        let to = ((end + 1).min(c_end) - c_start) as usize;
        out.push(c.slice(from..to));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), RangeReq::Full);
        assert_eq!(
            parse_range(Some(&hv("bytes=0-")), 100),
            RangeReq::Partial(0, 99)
        );
        assert_eq!(
            parse_range(Some(&hv("bytes=10-19")), 100),
            RangeReq::Partial(10, 19)
        );
        assert_eq!(
            parse_range(Some(&hv("bytes=90-200")), 100),
            RangeReq::Partial(90, 99)
        );
        assert_eq!(
            parse_range(Some(&hv("bytes=-10")), 100),
            RangeReq::Partial(90, 99)
        );
        assert_eq!(
            parse_range(Some(&hv("bytes=100-")), 100),
            RangeReq::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some(&hv("bytes=-0")), 100),
            RangeReq::Unsatisfiable
        );
        assert_eq!(parse_range(Some(&hv("bytes=0-1,5-6")), 100), RangeReq::Full);
        assert_eq!(parse_range(Some(&hv("items=0-1")), 100), RangeReq::Full);
        assert_eq!(parse_range(Some(&hv("bytes=5-2")), 100), RangeReq::Full);
    }

    #[test]
    fn live_ranges() {
        let far = 9_007_199_254_740_991;
        assert_eq!(
            parse_live_range(Some(&hv(&format!("bytes=500-{far}")))),
            Some((500, Some(far)))
        );
        assert_eq!(parse_live_range(Some(&hv("bytes=7-"))), Some((7, None)));
        assert_eq!(parse_live_range(Some(&hv("bytes=-10"))), None);
        assert_eq!(parse_live_range(Some(&hv("bytes=5-2"))), None);
        assert_eq!(parse_live_range(Some(&hv("bytes=0-1,5-6"))), None);
        assert_eq!(parse_live_range(Some(&hv("items=0-1"))), None);
        assert_eq!(parse_live_range(None), None);
    }

    #[test]
    fn slices_across_chunks() {
        let chunks = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"defg"),
            Bytes::from_static(b"hi"),
        ];
        let join = |v: Vec<Bytes>| v.concat();
        assert_eq!(join(slice_chunks(&chunks, 0, 8)), b"abcdefghi");
        assert_eq!(join(slice_chunks(&chunks, 2, 3)), b"cd");
        assert_eq!(join(slice_chunks(&chunks, 3, 6)), b"defg");
        assert_eq!(join(slice_chunks(&chunks, 8, 8)), b"i");
    }

    #[test]
    fn directives() {
        assert_eq!(parse_directives(None), Ok(Directives::default()));
        assert_eq!(
            parse_directives(Some("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES")),
            Ok(Directives {
                msn: Some(5),
                part: Some(2),
                skip: true
            })
        );
        assert!(parse_directives(Some("_HLS_part=2")).is_err());
        assert!(parse_directives(Some("_HLS_msn=x")).is_err());
        assert!(parse_directives(Some("_HLS_skip=NO")).is_err());
    }
}
