//! DASH MPD rendering over the same CMAF segments as the HLS playlist.
//!
//! One Period per run of segments without a discontinuity, so a publisher reconnect or a
//! codec change (new init) starts a new Period whose start is its wall-clock offset from
//! `availabilityStartTime`. Segments are addressed with `$Number$` = HLS media sequence
//! number, timed with a SegmentTimeline. Pure: the caller passes the current time.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::cmaf::TrackSet;
use crate::playlist::{Playlist, SegmentEntry, format_pdt};

fn duration_iso(secs: f64) -> String {
    format!("PT{secs:.3}S")
}

/// Renders the MPD. `ast_ms` is the availabilityStartTime (wall clock of the stream's
/// first sample), `now_ms` the publish time.
pub fn render_mpd(
    playlist: &Playlist,
    inits: &HashMap<u32, TrackSet>,
    ast_ms: i64,
    now_ms: i64,
) -> String {
    let segs: Vec<&SegmentEntry> = playlist.segments().collect();
    let ended = playlist.is_ended();
    let td = playlist.target_duration() as f64;
    let window: f64 = segs.iter().map(|s| s.duration()).sum();
    let bandwidth = playlist.peak_bandwidth().max(1);
    let fps = playlist.frame_rate();
    let names = playlist.names();

    let mut out = String::with_capacity(2048);
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = write!(
        out,
        r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" minBufferTime="{}""#,
        duration_iso(td)
    );
    if ended {
        let total_end = segs
            .last()
            .map_or(0.0, |s| (s.pdt_ms - ast_ms) as f64 / 1000.0 + s.duration());
        let _ = writeln!(
            out,
            r#" type="static" mediaPresentationDuration="{}">"#,
            duration_iso(total_end)
        );
    } else {
        let _ = writeln!(
            out,
            r#" type="dynamic" availabilityStartTime="{}" publishTime="{}" minimumUpdatePeriod="{}" timeShiftBufferDepth="{}" suggestedPresentationDelay="{}" maxSegmentDuration="{}">"#,
            format_pdt(ast_ms),
            format_pdt(now_ms),
            duration_iso(td),
            duration_iso(window.max(td)),
            duration_iso(3.0 * td),
            duration_iso(td),
        );
    }

    // Split into periods at discontinuities.
    let mut periods: Vec<Vec<&SegmentEntry>> = Vec::new();
    for s in &segs {
        if s.discontinuity || periods.is_empty() {
            periods.push(Vec::new());
        }
        if let Some(p) = periods.last_mut() {
            p.push(s);
        }
    }
    for period in &periods {
        let first = period[0];
        let start = (first.pdt_ms - ast_ms).max(0) as f64 / 1000.0;
        let _ = writeln!(
            out,
            r#"  <Period id="p{}" start="{}">"#,
            first.msn,
            duration_iso(start)
        );
        let tracks = inits.get(&first.init_id);
        let codecs = tracks.map(TrackSet::codecs).unwrap_or_default();
        let has_video = tracks.is_some_and(|t| t.video.is_some());
        let mime = if has_video { "video/mp4" } else { "audio/mp4" };
        let _ = writeln!(
            out,
            r#"    <AdaptationSet id="0" mimeType="{mime}" segmentAlignment="true" startWithSAP="1">"#
        );
        let mut rep = format!(r#"      <Representation id="0" codecs="{codecs}" bandwidth="{bandwidth}""#);
        if let Some(v) = tracks.and_then(|t| t.video.as_ref()) {
            let _ = write!(rep, r#" width="{}" height="{}""#, v.width, v.height);
            if let Some(f) = fps {
                let _ = write!(rep, r#" frameRate="{}/1000""#, (f * 1000.0).round() as u64);
            }
        }
        if let Some(a) = tracks.and_then(|t| t.audio.as_ref()) {
            let _ = write!(rep, r#" audioSamplingRate="{}""#, a.sample_rate);
        }
        let _ = writeln!(out, "{rep}>");
        let _ = writeln!(
            out,
            r#"        <SegmentTemplate timescale="{}" presentationTimeOffset="{}" startNumber="{}" initialization="{}" media="{}">"#,
            first.timescale,
            first.start,
            first.msn,
            names.init(first.init_id),
            names.segment(0).replace("-s0.m4s", "-s$Number$.m4s"),
        );
        let _ = writeln!(out, "          <SegmentTimeline>");
        let mut i = 0;
        while i < period.len() {
            let s = period[i];
            let mut repeat = 0;
            while i + repeat + 1 < period.len()
                && period[i + repeat + 1].duration_ticks == s.duration_ticks
                && period[i + repeat + 1].start == s.start + (repeat as u64 + 1) * s.duration_ticks
            {
                repeat += 1;
            }
            if repeat > 0 {
                let _ = writeln!(
                    out,
                    r#"            <S t="{}" d="{}" r="{repeat}"/>"#,
                    s.start, s.duration_ticks
                );
            } else {
                let _ = writeln!(out, r#"            <S t="{}" d="{}"/>"#, s.start, s.duration_ticks);
            }
            i += repeat + 1;
        }
        let _ = writeln!(out, "          </SegmentTimeline>");
        let _ = writeln!(out, "        </SegmentTemplate>");
        let _ = writeln!(out, "      </Representation>");
        let _ = writeln!(out, "    </AdaptationSet>");
        let _ = writeln!(out, "  </Period>");
    }
    let _ = writeln!(out, "</MPD>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmaf::tests::{aac, avc};
    use crate::playlist::{Names, PlaylistConfig};

    fn playlist_with(segments: &[(bool, u64)]) -> Playlist {
        let mut p = Playlist::new(
            PlaylistConfig::default(),
            Names {
                prefix: "x".into(),
            },
        );
        p.handle_init(1);
        let mut start = 0;
        let mut pdt = 1_700_000_000_000;
        for &(disc, dur) in segments {
            p.handle_segment_start(disc, pdt, start, 90_000);
            p.handle_part(dur, true, 50_000, 60);
            p.handle_segment_end();
            start += dur;
            pdt += (dur / 90) as i64 + if disc { 5000 } else { 0 };
        }
        p
    }

    fn inits() -> HashMap<u32, TrackSet> {
        HashMap::from([(
            1,
            TrackSet {
                video: Some(avc()),
                audio: Some(aac()),
            },
        )])
    }

    #[test]
    fn timeline_compacts_equal_segments() {
        let p = playlist_with(&[(false, 180_000), (false, 180_000), (false, 180_000), (false, 90_000)]);
        let mpd = render_mpd(&p, &inits(), 1_700_000_000_000, 1_700_000_007_000);
        assert!(mpd.contains(r#"type="dynamic""#));
        assert!(mpd.contains(r#"<S t="0" d="180000" r="2"/>"#), "{mpd}");
        assert!(mpd.contains(r#"<S t="540000" d="90000"/>"#));
        assert!(mpd.contains(r#"codecs="avc1.64001f,mp4a.40.2""#));
        assert!(mpd.contains(r#"width="1280" height="720""#));
        assert!(mpd.contains(r#"media="x-s$Number$.m4s""#));
        assert!(mpd.contains(r#"startNumber="0""#));
        assert!(mpd.contains("availabilityStartTime=\"2023-11-14T22:13:20.000Z\""));
    }

    #[test]
    fn discontinuity_starts_a_period() {
        let p = playlist_with(&[(false, 180_000), (true, 180_000)]);
        let mpd = render_mpd(&p, &inits(), 1_700_000_000_000, 1_700_000_009_000);
        assert_eq!(mpd.matches("<Period").count(), 2);
        assert!(mpd.contains(r#"<Period id="p1" start="PT2.000S">"#), "{mpd}");
        assert!(mpd.contains(r#"presentationTimeOffset="180000" startNumber="1""#));
    }

    #[test]
    fn ended_is_static() {
        let mut p = playlist_with(&[(false, 180_000)]);
        p.handle_end();
        let mpd = render_mpd(&p, &inits(), 1_700_000_000_000, 0);
        assert!(mpd.contains(r#"type="static" mediaPresentationDuration="PT2.000S""#), "{mpd}");
    }
}
