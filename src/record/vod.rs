//! The playlist of a recording: an HLS `EVENT` playlist while the broadcast runs and a `VOD`
//! one (`EXT-X-ENDLIST`) once it has ended, over the same init and segment files the live
//! playlist listed. Pure: entries in, text out.

use std::fmt::Write as _;

/// One recorded segment, as the playlist lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub segment: String,
    pub init: String,
    pub duration_s: f64,
    pub pdt_ms: i64,
    pub discontinuity: bool,
}

/// Renders the recording's media playlist. `ended`: VOD with ENDLIST; otherwise EVENT.
pub fn render(entries: &[Entry], ended: bool) -> String {
    let target = entries
        .iter()
        .map(|e| e.duration_s.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::new();
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let kind = if ended { "VOD" } else { "EVENT" };
    let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:{kind}");
    out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut init: Option<&str> = None;
    for (i, e) in entries.iter().enumerate() {
        if e.discontinuity && i > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if init != Some(e.init.as_str()) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", e.init);
            init = Some(&e.init);
        }
        let pdt = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.pdt_ms.max(0) as u64),
        );
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{pdt}");
        let _ = writeln!(out, "#EXTINF:{:.5},\n{}", e.duration_s, e.segment);
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// Closes a playlist left open by a relay that stopped without ending the broadcast (a
/// crash): it becomes a VOD playlist of what it lists. `None` if it was already closed.
pub fn close(text: &str) -> Option<String> {
    if text.lines().any(|l| l.trim() == "#EXT-X-ENDLIST") {
        return None;
    }
    let mut out = text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD");
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("#EXT-X-ENDLIST\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(i: u64, init: u32, discontinuity: bool) -> Entry {
        Entry {
            segment: format!("a-s{i}.m4s"),
            init: format!("a-init{init}.mp4"),
            duration_s: 2.0,
            pdt_ms: 1_700_000_000_000 + i as i64 * 2000,
            discontinuity,
        }
    }

    #[test]
    fn event_while_recording_vod_when_ended_with_discontinuities_kept() {
        let entries = vec![entry(0, 1, false), entry(1, 1, false), entry(2, 2, true)];
        let live = render(&entries, false);
        assert!(live.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{live}");
        assert!(!live.contains("ENDLIST"));
        let vod = render(&entries, true);
        assert_eq!(
            vod,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"a-init1.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n#EXTINF:2.00000,\na-s0.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n#EXTINF:2.00000,\na-s1.m4s\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"a-init2.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n#EXTINF:2.00000,\na-s2.m4s\n\
             #EXT-X-ENDLIST\n"
        );
        let parsed = m3u8_rs::parse_media_playlist_res(vod.as_bytes()).expect("parses");
        assert_eq!(parsed.segments.len(), 3);
        assert!(parsed.end_list);
        // A crashed recording closes into the same VOD playlist; a closed one stays as it is.
        assert_eq!(close(&live).as_deref(), Some(vod.as_str()));
        assert_eq!(close(&vod), None);
    }

    proptest! {
        #[test]
        fn durations_add_up_and_every_segment_is_listed_once(
            durations in proptest::collection::vec(0.5f64..6.0, 1..40),
            breaks in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let entries: Vec<Entry> = durations
                .iter()
                .enumerate()
                .map(|(i, d)| Entry {
                    duration_s: *d,
                    discontinuity: breaks[i] && i > 0,
                    ..entry(i as u64, 1, false)
                })
                .collect();
            let text = render(&entries, true);
            let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses");
            prop_assert_eq!(parsed.segments.len(), entries.len());
            let listed: f64 = parsed.segments.iter().map(|s| f64::from(s.duration)).sum();
            let total: f64 = durations.iter().sum();
            prop_assert!((listed - total).abs() < 1e-3 * entries.len() as f64);
            let discontinuities = entries.iter().filter(|e| e.discontinuity).count();
            prop_assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), discontinuities);
            prop_assert!(parsed.target_duration as f64 + 0.5 >= durations.iter().cloned().fold(0.0, f64::max));
        }
    }
}
