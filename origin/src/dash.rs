//! DASH MPD rendering over the same CMAF segments as the HLS playlist.
//!
//! One Period per run of segments without a discontinuity, so a publisher reconnect or a
//! codec change (new init) starts a new Period whose start is its wall-clock offset from
//! `availabilityStartTime`. Segments are addressed with `$Number$` = HLS media sequence
//! number, timed with a SegmentTimeline. Pure: the caller passes the current time.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::cmaf::TrackSet;
use crate::naming::TrackKind;
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
        let Some(tracks) = inits.get(&first.init_id) else {
            let _ = writeln!(out, "  </Period>");
            continue;
        };
        let window_secs: f64 = period.iter().map(|s| s.duration()).sum::<f64>().max(0.001);
        let audio_bps =
            (period.iter().map(|s| s.audio_bytes).sum::<u64>() as f64 * 8.0 / window_secs) as u64;
        match (&tracks.video, &tracks.audio) {
            (Some(v), Some(a)) => {
                // DASH players want one track per representation: per-track segments.
                let video = AdaptationSet {
                    id: 0,
                    mime: "video/mp4",
                    codecs: v.codec_string(),
                    bandwidth: bandwidth.saturating_sub(audio_bps).max(1),
                    extra: video_attrs(v.width, v.height, fps),
                    timescale: first.timescale,
                    pto: first.start,
                    init: names.track_init(first.init_id, TrackKind::Video),
                    media: names.track_template(TrackKind::Video),
                    timeline: period.iter().map(|s| (s.start, s.duration_ticks)).collect(),
                };
                // The audio timeline is the audio samples' own; its offset maps the same
                // instant as the video's.
                let rate = u64::from(a.sample_rate);
                let to_audio = |t: u64| {
                    (u128::from(t) * u128::from(rate) / u128::from(first.timescale)) as u64
                };
                let audio = AdaptationSet {
                    id: 1,
                    mime: "audio/mp4",
                    codecs: a.codec_string(),
                    bandwidth: audio_bps.max(1),
                    extra: format!(r#" audioSamplingRate="{}""#, a.sample_rate),
                    timescale: a.sample_rate,
                    pto: to_audio(first.start),
                    init: names.track_init(first.init_id, TrackKind::Audio),
                    media: names.track_template(TrackKind::Audio),
                    timeline: period
                        .iter()
                        .map(|s| match s.audio_start {
                            Some(t) => (t, s.audio_duration),
                            None => (to_audio(s.start), to_audio(s.duration_ticks)),
                        })
                        .collect(),
                };
                video.write(&mut out, first.msn);
                audio.write(&mut out, first.msn);
            }
            _ => {
                let mut extra = String::new();
                let mime = if let Some(v) = &tracks.video {
                    extra = video_attrs(v.width, v.height, fps);
                    "video/mp4"
                } else {
                    if let Some(a) = &tracks.audio {
                        extra = format!(r#" audioSamplingRate="{}""#, a.sample_rate);
                    }
                    "audio/mp4"
                };
                AdaptationSet {
                    id: 0,
                    mime,
                    codecs: tracks.codecs(),
                    bandwidth,
                    extra,
                    timescale: first.timescale,
                    pto: first.start,
                    init: names.init(first.init_id),
                    media: names.segment_template(),
                    timeline: period.iter().map(|s| (s.start, s.duration_ticks)).collect(),
                }
                .write(&mut out, first.msn);
            }
        }
        let _ = writeln!(out, "  </Period>");
    }
    let _ = writeln!(out, "</MPD>");
    out
}

fn video_attrs(width: u32, height: u32, fps: Option<f64>) -> String {
    let mut s = format!(r#" width="{width}" height="{height}""#);
    if let Some(f) = fps {
        let _ = write!(s, r#" frameRate="{}/1000""#, (f * 1000.0).round() as u64);
    }
    s
}

/// One AdaptationSet with a single Representation and a SegmentTimeline.
struct AdaptationSet {
    id: u32,
    mime: &'static str,
    codecs: String,
    bandwidth: u64,
    /// Extra Representation attributes, each with a leading space.
    extra: String,
    timescale: u32,
    pto: u64,
    init: String,
    media: String,
    /// (start, duration) of each segment, in `timescale` units, numbered from the period's first msn.
    timeline: Vec<(u64, u64)>,
}

impl AdaptationSet {
    fn write(&self, out: &mut String, start_number: u64) {
        let _ = writeln!(
            out,
            r#"    <AdaptationSet id="{}" mimeType="{}" segmentAlignment="true" startWithSAP="1">"#,
            self.id, self.mime
        );
        let _ = writeln!(
            out,
            r#"      <Representation id="{}" codecs="{}" bandwidth="{}"{}>"#,
            self.id, self.codecs, self.bandwidth, self.extra
        );
        let _ = writeln!(
            out,
            r#"        <SegmentTemplate timescale="{}" presentationTimeOffset="{}" startNumber="{start_number}" initialization="{}" media="{}">"#,
            self.timescale, self.pto, self.init, self.media,
        );
        let _ = writeln!(out, "          <SegmentTimeline>");
        let tl = &self.timeline;
        let mut i = 0;
        while i < tl.len() {
            let (t, d) = tl[i];
            let mut repeat = 0;
            while i + repeat + 1 < tl.len()
                && tl[i + repeat + 1] == (t + (repeat as u64 + 1) * d, d)
            {
                repeat += 1;
            }
            // `t` only where the timeline is not contiguous with the previous segment.
            let contiguous = i > 0 && tl[i - 1].0 + tl[i - 1].1 == t;
            let t_attr = if contiguous {
                String::new()
            } else {
                format!(r#" t="{t}""#)
            };
            let r_attr = if repeat > 0 {
                format!(r#" r="{repeat}""#)
            } else {
                String::new()
            };
            let _ = writeln!(out, r#"            <S{t_attr} d="{d}"{r_attr}/>"#);
            i += repeat + 1;
        }
        let _ = writeln!(out, "          </SegmentTimeline>");
        let _ = writeln!(out, "        </SegmentTemplate>");
        let _ = writeln!(out, "      </Representation>");
        let _ = writeln!(out, "    </AdaptationSet>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmaf::tests::{aac, avc};
    use crate::naming::Names;
    use crate::playlist::PlaylistConfig;

    fn playlist_with(segments: &[(bool, u64)]) -> Playlist {
        let mut p = Playlist::new(PlaylistConfig::default(), Names { prefix: "x".into() });
        p.handle_init(1);
        let mut start = 0;
        let mut pdt = 1_700_000_000_000;
        for &(disc, dur) in segments {
            p.handle_segment_start(disc, pdt, start, 90_000);
            p.handle_part(crate::playlist::PartInfo {
                duration: dur,
                independent: true,
                bytes: 50_000,
                video_samples: 60,
                audio: Some((0, 0)),
                audio_bytes: 0,
            });
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
        let p = playlist_with(&[
            (false, 180_000),
            (false, 180_000),
            (false, 180_000),
            (false, 90_000),
        ]);
        let mpd = render_mpd(&p, &inits(), 1_700_000_000_000, 1_700_000_007_000);
        assert!(mpd.contains(r#"type="dynamic""#));
        assert!(mpd.contains(r#"<S t="0" d="180000" r="2"/>"#), "{mpd}");
        assert!(mpd.contains(r#"<S d="90000"/>"#));
        // Muxed input is described as one AdaptationSet per track.
        assert!(mpd.contains(r#"codecs="avc1.64001f""#));
        assert!(mpd.contains(r#"codecs="mp4a.40.2""#));
        assert!(mpd.contains(r#"width="1280" height="720""#));
        assert!(mpd.contains(r#"media="x-v$Number$.m4s""#));
        assert!(mpd.contains(r#"media="x-a$Number$.m4s""#));
        assert!(mpd.contains(r#"initialization="x-init1a.mp4""#));
        assert!(mpd.contains(r#"startNumber="0""#));
        assert!(mpd.contains("availabilityStartTime=\"2023-11-14T22:13:20.000Z\""));
    }

    #[test]
    fn discontinuity_starts_a_period() {
        let p = playlist_with(&[(false, 180_000), (true, 180_000)]);
        let mpd = render_mpd(&p, &inits(), 1_700_000_000_000, 1_700_000_009_000);
        assert_eq!(mpd.matches("<Period").count(), 2);
        assert!(
            mpd.contains(r#"<Period id="p1" start="PT2.000S">"#),
            "{mpd}"
        );
        assert!(mpd.contains(r#"presentationTimeOffset="180000" startNumber="1""#));
        // Audio offset maps the same instant on the audio clock (2 s at 44.1 kHz).
        assert!(
            mpd.contains(r#"presentationTimeOffset="88200" startNumber="1""#),
            "{mpd}"
        );
    }

    #[test]
    fn ended_is_static() {
        let mut p = playlist_with(&[(false, 180_000)]);
        p.handle_end();
        let mpd = render_mpd(&p, &inits(), 1_700_000_000_000, 0);
        assert!(
            mpd.contains(r#"type="static" mediaPresentationDuration="PT2.000S""#),
            "{mpd}"
        );
    }
}
