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

/// `EXT-X-TARGETDURATION` for these entries: every `EXTINF`, rounded, fits in it.
pub fn target_duration(entries: &[Entry]) -> u64 {
    entries
        .iter()
        .map(|e| e.duration_s.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1)
}

/// Renders the recording's media playlist. `ended`: VOD with ENDLIST; otherwise EVENT.
pub fn render(entries: &[Entry], ended: bool) -> String {
    let mut out = String::new();
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", target_duration(entries));
    let kind = if ended { "VOD" } else { "EVENT" };
    let _ = writeln!(out, "#EXT-X-PLAYLIST-TYPE:{kind}");
    out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for i in 0..entries.len() {
        out.push_str(&entry_lines(&entries[..i], &entries[i]));
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// The lines that list `e` after `before` in an EVENT playlist: what appending it adds to
/// [`render`]'s text, as long as the target duration holds.
pub fn entry_lines(before: &[Entry], e: &Entry) -> String {
    let mut out = String::new();
    let last = before.last();
    if e.discontinuity && last.is_some() {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if last.map(|l| l.init.as_str()) != Some(e.init.as_str()) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", e.init);
    }
    let pdt = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.pdt_ms.max(0) as u64),
    );
    let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{pdt}");
    let _ = writeln!(out, "#EXTINF:{:.5},\n{}", e.duration_s, e.segment);
    out
}

/// Closes a playlist left open by a relay that stopped without ending the broadcast (a
/// crash): it becomes a VOD playlist of what it lists. `None` if it was already closed.
/// An append cut short by the crash is dropped: the playlist ends after its last complete
/// segment line.
pub fn close(text: &str) -> Option<String> {
    if text.lines().any(|l| l.trim() == "#EXT-X-ENDLIST") {
        return None;
    }
    // Keep everything up to the last segment URI that ends its line.
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    let mut keep = 0;
    let mut pos = 0;
    for line in complete.split_inclusive('\n') {
        pos += line.len();
        if !line.starts_with('#') && !line.trim().is_empty() {
            keep = pos;
        }
    }
    let head_end = complete
        .find("#EXT-X-INDEPENDENT-SEGMENTS\n")
        .map_or(0, |i| i + "#EXT-X-INDEPENDENT-SEGMENTS\n".len());
    let mut out = complete[..keep.max(head_end)]
        .replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD");
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

    #[test]
    fn a_torn_append_is_dropped_when_closing() {
        let entries = vec![entry(0, 1, false), entry(1, 1, false)];
        let live = render(&entries, false);
        let next = entry_lines(&entries, &entry(2, 1, false));
        for cut in 1..next.len() {
            let torn = format!("{live}{}", &next[..cut]);
            assert_eq!(
                close(&torn).as_deref(),
                Some(render(&entries, true).as_str()),
                "cut at {cut}"
            );
        }
        let whole = format!("{live}{next}");
        let mut all = entries.clone();
        all.push(entry(2, 1, false));
        assert_eq!(close(&whole), Some(render(&all, true)));
    }

    proptest! {
        /// Appending an entry's lines to the EVENT playlist is the playlist rendered anew, as
        /// long as the target duration holds.
        #[test]
        fn appending_is_rendering(
            durations in proptest::collection::vec(1.5f64..2.49, 2..30),
            breaks in proptest::collection::vec(any::<bool>(), 30),
            inits in proptest::collection::vec(1u32..3, 30),
        ) {
            let entries: Vec<Entry> = durations
                .iter()
                .enumerate()
                .map(|(i, d)| Entry {
                    duration_s: *d,
                    discontinuity: breaks[i],
                    ..entry(i as u64, inits[i], false)
                })
                .collect();
            let mut text = render(&entries[..1], false);
            for i in 1..entries.len() {
                text.push_str(&entry_lines(&entries[..i], &entries[i]));
            }
            prop_assert_eq!(target_duration(&entries), target_duration(&entries[..1]));
            prop_assert_eq!(text, render(&entries, false));
        }

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
