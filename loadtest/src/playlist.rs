//! An LL-HLS media playlist as a viewer needs it: parts with their wall-clock start (from
//! EXT-X-PROGRAM-DATE-TIME), the preload hint, and where to block next. Pure.

/// One part with its place on the wall clock.
#[derive(Debug, Clone, PartialEq)]
pub struct PartRef {
    pub uri: String,
    pub duration: f64,
    /// Wall-clock start (ms since the Unix epoch), if the playlist has PDT.
    pub start_ms: Option<f64>,
    pub msn: u64,
    /// Index within its segment.
    pub index: u64,
}

impl PartRef {
    /// Wall-clock time of the part's end: its newest frame was published then.
    pub fn end_ms(&self) -> Option<f64> {
        self.start_ms.map(|s| s + self.duration * 1000.0)
    }
}

/// What a viewer reads from a media playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaPlaylist {
    pub media_sequence: u64,
    pub target_duration: f64,
    pub part_target: Option<f64>,
    pub parts: Vec<PartRef>,
    /// Complete segments: (msn, uri, duration, start_ms).
    pub segments: Vec<(u64, String, f64, Option<f64>)>,
    pub preload_hint: Option<String>,
    pub ended: bool,
    /// msn of the segment after the last complete one (the one in progress).
    pub open_msn: u64,
    /// Parts listed for the segment in progress.
    pub open_parts: u64,
    /// The server takes `_HLS_skip=YES` (delta updates).
    pub can_skip: bool,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = line;
    while let Some(i) = rest.find(name) {
        // Attribute names start after ':' or ',' and are followed by '='.
        let before = rest[..i].chars().last();
        let after = &rest[i + name.len()..];
        match after.strip_prefix('=') {
            Some(value) if matches!(before, Some(':') | Some(',')) => {
                return Some(match value.strip_prefix('"') {
                    Some(q) => q.split('"').next().unwrap_or(""),
                    None => value.split(',').next().unwrap_or(""),
                });
            }
            _ => rest = after,
        }
    }
    None
}

/// Parses a media playlist; unknown tags are ignored.
pub fn parse(text: &str) -> MediaPlaylist {
    let mut p = MediaPlaylist::default();
    let mut msn = 0u64;
    let mut seg_start: Option<f64> = None;
    let mut offset = 0.0f64; // seconds since the segment's PDT
    let mut index = 0u64;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            msn = v.parse().unwrap_or(0);
            p.media_sequence = msn;
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = v.parse().unwrap_or(0.0);
        } else if line.starts_with("#EXT-X-SERVER-CONTROL:") {
            p.can_skip = attr(line, "CAN-SKIP-UNTIL").is_some();
        } else if line.starts_with("#EXT-X-PART-INF:") {
            p.part_target = attr(line, "PART-TARGET").and_then(|v| v.parse().ok());
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
            let skipped: u64 = attr(&format!(":{v}"), "SKIPPED-SEGMENTS")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            msn += skipped;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            seg_start = humantime::parse_rfc3339(v)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64() * 1000.0);
            offset = 0.0;
        } else if line.starts_with("#EXT-X-PART:") {
            let duration: f64 = attr(line, "DURATION")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if let Some(uri) = attr(line, "URI") {
                p.parts.push(PartRef {
                    uri: uri.to_string(),
                    duration,
                    start_ms: seg_start.map(|s| s + offset * 1000.0),
                    msn,
                    index,
                });
            }
            offset += duration;
            index += 1;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let duration: f64 = v
                .trim_end_matches(',')
                .split(',')
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0.0);
            p.segments.push((msn, String::new(), duration, seg_start));
            // The next segment starts where this one ends (until its own PDT says otherwise).
            seg_start = seg_start.map(|s| s + duration * 1000.0);
            offset = 0.0;
            index = 0;
            msn += 1;
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") && attr(line, "TYPE") == Some("PART") {
            p.preload_hint = attr(line, "URI").map(str::to_string);
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !line.is_empty()
            && !line.starts_with('#')
            && let Some(last) = p.segments.last_mut()
            && last.1.is_empty()
        {
            last.1 = line.to_string();
        }
    }
    p.open_msn = msn;
    p.open_parts = index;
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=0.600
#EXT-X-PART-INF:PART-TARGET=0.200
#EXT-X-MAP:URI=\"x-init1.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z
#EXT-X-PART:DURATION=1.00000,URI=\"x-p0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=1.00000,URI=\"x-p1.m4s\"
#EXTINF:2.00000,
x-s10.m4s
#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z
#EXT-X-PART:DURATION=0.20000,URI=\"x-p2.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.20000,URI=\"x-p3.m4s\"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"x-p4.m4s\"
";

    #[test]
    fn parts_carry_wall_clock_times() {
        let p = parse(LIVE);
        assert_eq!(p.media_sequence, 10);
        assert_eq!(p.part_target, Some(0.2));
        assert_eq!(
            p.segments,
            vec![(10, "x-s10.m4s".into(), 2.0, Some(1_700_000_000_000.0))]
        );
        assert_eq!(p.parts.len(), 4);
        assert_eq!(p.parts[1].start_ms, Some(1_700_000_001_000.0));
        assert_eq!(p.parts[1].end_ms(), Some(1_700_000_002_000.0));
        assert_eq!((p.parts[3].msn, p.parts[3].index), (11, 1));
        assert!((p.parts[3].end_ms().unwrap() - 1_700_000_002_400.0).abs() < 0.01);
        assert_eq!(p.preload_hint.as_deref(), Some("x-p4.m4s"));
        // Block for the next part of segment 11.
        assert_eq!((p.open_msn, p.open_parts), (11, 2));
        assert!(p.can_skip);
        assert!(!parse("#EXTM3U\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n").can_skip);
    }

    #[test]
    fn delta_updates_keep_media_sequence_numbers() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n\
                    #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n#EXTINF:2.0,\ns10.m4s\n";
        let p = parse(text);
        assert_eq!(p.segments[0].0, 10);
        assert_eq!(p.open_msn, 11);
    }

    #[test]
    fn attribute_names_do_not_match_inside_other_names() {
        assert_eq!(attr("#EXT-X-PART-INF:PART-TARGET=0.5", "TARGET"), None);
        assert_eq!(attr("#X:URIX=1,URI=2", "URI"), Some("2"));
        assert_eq!(attr("#X:A=\"URI=1\",URI=2", "URI"), Some("2"));
        assert_eq!(
            attr("#EXT-X-PART:DURATION=0.2,URI=\"a,b\"", "URI"),
            Some("a,b")
        );
    }

    #[test]
    fn ended_playlist() {
        let p = parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.m4s\n#EXT-X-ENDLIST\n");
        assert!(p.ended);
        assert!(p.preload_hint.is_none());
    }
}
