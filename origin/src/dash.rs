//! DASH MPD rendering over the same CMAF segments as the HLS playlist.
//!
//! One Period per run of segments without a discontinuity, so a publisher reconnect or a
//! codec change (new init) starts a new Period whose start is its wall-clock offset from
//! `availabilityStartTime`. Segments are addressed with `$Number$` = HLS media sequence
//! number, timed with a SegmentTimeline. Pure: the caller passes the current time.
//!
//! Low-latency DASH: while live, the timeline also lists the segment being made and the one
//! after it, at the segment target duration (a lower bound: a segment is cut at the first
//! IDR at or after the target; the next MPD update carries the real duration). With
//! `availabilityTimeOffset` the player asks for a segment one part after it starts and the
//! origin streams it chunk by chunk as it is made (`availabilityTimeComplete="false"`); a
//! `ServiceDescription` carries the latency target and `UTCTiming` the clock to use.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::cmaf::TrackSet;
use crate::naming::TrackKind;
use crate::playlist::{Playlist, SegmentEntry, format_pdt};

/// An `xs:duration` of `secs` seconds.
pub fn duration_iso(secs: f64) -> String {
    format!("PT{secs:.3}S")
}

/// What a live MPD needs beyond the playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveClock {
    /// The availabilityStartTime (wall clock of the stream's first sample), ms since the epoch.
    pub ast_ms: i64,
    /// Now (the publish time), ms since the epoch.
    pub now_ms: i64,
    /// Absolute URL of the origin's time endpoint (`UTCTiming`, http-iso).
    pub time_url: Option<String>,
}

/// The latency a low-latency DASH player should aim for (`ServiceDescription`): five parts.
/// dash.js 5 holds 0.75 s at 0.7 s and 1.04 s at 1.0 s with 200 ms parts on loopback without
/// a stall (BENCHMARKS.md); five parts leaves room for a real network.
fn latency_target_ms(part_target: f64) -> u64 {
    (5.0 * part_target * 1000.0).round() as u64
}

/// Renders the MPD (see the module documentation).
pub fn render_mpd(
    playlist: &Playlist,
    inits: &HashMap<u32, TrackSet>,
    clock: &LiveClock,
) -> String {
    let LiveClock { ast_ms, now_ms, .. } = *clock;
    let cfg = playlist.config();
    let part_target = cfg.part_target.as_secs_f64();
    let segment_target = cfg.segment_target.as_secs_f64();
    let mut segs: Vec<&SegmentEntry> = playlist.segments().collect();
    // The segment being made (and, below, the next) are listed while live.
    let open = playlist.open_segment().filter(|_| !playlist.is_ended());
    if let Some(o) = open {
        segs.push(o);
    }
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
        duration_iso(if ended { td } else { part_target })
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
            duration_iso(latency_target_ms(part_target) as f64 / 1000.0),
            duration_iso(td),
        );
        let target = latency_target_ms(part_target);
        let _ = writeln!(
            out,
            r#"  <ServiceDescription id="0"><Latency target="{target}" min="{}" max="{}"/><PlaybackRate min="0.95" max="1.05"/></ServiceDescription>"#,
            target * 3 / 5,
            target * 3,
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
    let live = !ended;
    let ato = (segment_target - part_target).max(0.0);
    for (pi, period) in periods.iter().enumerate() {
        let first = period[0];
        // Id, start and offsets come from where the Period began, not from its oldest segment
        // still in the window: they must not change as the window slides.
        let origin = first.period;
        // The segment after the one being made, predicted at the target duration.
        let next = (live && pi + 1 == periods.len() && open.is_some()).then(|| {
            let last = period[period.len() - 1];
            let d = (segment_target * f64::from(last.timescale)).round() as u64;
            (last.start + last.duration_ticks.max(d), d)
        });
        let predicted = |s: &SegmentEntry| -> (u64, u64) {
            let d = (segment_target * f64::from(s.timescale)).round() as u64;
            let is_open = open.is_some_and(|o| o.msn == s.msn);
            (
                s.start,
                if is_open {
                    s.duration_ticks.max(d)
                } else {
                    s.duration_ticks
                },
            )
        };
        let start = (origin.pdt_ms - ast_ms).max(0) as f64 / 1000.0;
        let _ = writeln!(
            out,
            r#"  <Period id="p{}" start="{}">"#,
            origin.msn,
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
                    pto: origin.start,
                    init: names.track_init(first.init_id, TrackKind::Video),
                    media: names.track_template(TrackKind::Video),
                    timeline: period.iter().map(|s| predicted(s)).chain(next).collect(),
                    ato: live.then_some(ato),
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
                    pto: to_audio(origin.start),
                    init: names.track_init(first.init_id, TrackKind::Audio),
                    media: names.track_template(TrackKind::Audio),
                    timeline: period
                        .iter()
                        .map(|s| {
                            let (start, d) = predicted(s);
                            match s.audio_start {
                                Some(t) if d == s.duration_ticks => (t, s.audio_duration),
                                // Being made: from its first audio sample to the predicted end.
                                Some(t) => (t, to_audio(start + d).saturating_sub(t)),
                                None => (to_audio(start), to_audio(d)),
                            }
                        })
                        .chain(next.map(|(t, d)| (to_audio(t), to_audio(t + d) - to_audio(t))))
                        .collect(),
                    ato: live.then_some(ato),
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
                    pto: origin.start,
                    init: names.init(first.init_id),
                    media: names.segment_template(),
                    timeline: period.iter().map(|s| predicted(s)).chain(next).collect(),
                    ato: live.then_some(ato),
                }
                .write(&mut out, first.msn);
            }
        }
        let _ = writeln!(out, "  </Period>");
    }
    if live && let Some(url) = &clock.time_url {
        // The player's clock: the origin's time endpoint. (No `direct` time: the MPD is
        // rendered once per change and served until the next, so it would be stale.)
        let _ = writeln!(
            out,
            r#"  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="{}"/>"#,
            xml_escape(url)
        );
    }
    let _ = writeln!(out, "</MPD>");
    out
}

/// `s` escaped for an XML attribute.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A video Representation's attributes: size and, when known, frame rate.
pub fn video_attrs(width: u32, height: u32, fps: Option<f64>) -> String {
    let mut s = format!(r#" width="{width}" height="{height}""#);
    if let Some(f) = fps {
        let _ = write!(s, r#" frameRate="{}/1000""#, (f * 1000.0).round() as u64);
    }
    s
}

/// One AdaptationSet with a single Representation and a SegmentTimeline (the live MPD's and a
/// recording's).
pub struct AdaptationSet {
    pub id: u32,
    pub mime: &'static str,
    pub codecs: String,
    pub bandwidth: u64,
    /// Extra Representation attributes, each with a leading space.
    pub extra: String,
    pub timescale: u32,
    pub pto: u64,
    pub init: String,
    pub media: String,
    /// (start, duration) of each segment, in `timescale` units, numbered from the period's first msn.
    pub timeline: Vec<(u64, u64)>,
    /// Low latency: how many seconds before its end a segment may be requested.
    pub ato: Option<f64>,
}

impl AdaptationSet {
    /// Appends it to `out`; its segments are numbered from `start_number`.
    pub fn write(&self, out: &mut String, start_number: u64) {
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
        let ll = self.ato.map_or(String::new(), |ato| {
            format!(r#" availabilityTimeOffset="{ato:.3}" availabilityTimeComplete="false""#)
        });
        let _ = writeln!(
            out,
            r#"        <SegmentTemplate timescale="{}" presentationTimeOffset="{}" startNumber="{start_number}" initialization="{}" media="{}"{ll}>"#,
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

    fn clock(ast_ms: i64, now_ms: i64) -> LiveClock {
        LiveClock {
            ast_ms,
            now_ms,
            time_url: Some("http://edge.example/time".into()),
        }
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
        let mpd = render_mpd(&p, &inits(), &clock(1_700_000_000_000, 1_700_000_007_000));
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
        let mpd = render_mpd(&p, &inits(), &clock(1_700_000_000_000, 1_700_000_009_000));
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

    /// Live: the segment being made and the next are listed at the target duration, requestable
    /// one part after they start, with the latency target and the clock to use.
    #[test]
    fn live_lists_the_segment_being_made_and_the_next() {
        let mut p = playlist_with(&[(false, 180_000), (false, 180_000)]);
        p.handle_segment_start(false, 1_700_000_004_000, 360_000, 90_000);
        p.handle_part(crate::playlist::PartInfo {
            duration: 18_000,
            independent: true,
            bytes: 5_000,
            video_samples: 6,
            audio: Some((176_400, 8_192)),
            audio_bytes: 100,
        });
        let mpd = render_mpd(&p, &inits(), &clock(1_700_000_000_000, 1_700_000_004_200));
        // Video: two complete, the open one and the next, all 2 s.
        assert!(mpd.contains(r#"<S t="0" d="180000" r="3"/>"#), "{mpd}");
        assert!(
            mpd.contains(r#"availabilityTimeOffset="1.800" availabilityTimeComplete="false""#),
            "{mpd}"
        );
        assert!(
            mpd.contains(r#"<Latency target="1000" min="600" max="3000"/>"#),
            "{mpd}"
        );
        assert!(mpd.contains(
            r#"<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="http://edge.example/time"/>"#
        ));
        // UTCTiming follows the Periods, ServiceDescription precedes them (schema order).
        assert!(mpd.find("<ServiceDescription").unwrap() < mpd.find("<Period").unwrap());
        assert!(mpd.find("<UTCTiming").unwrap() > mpd.rfind("</Period>").unwrap());
        // Audio: the open segment runs from its first sample to the predicted end (4 s..6 s at
        // 44.1 kHz), the next after it.
        assert!(mpd.contains(r#"<S t="176400" d="88200" r="1"/>"#), "{mpd}");
        // Ended: nothing predicted, nothing low-latency.
        p.handle_segment_end();
        p.handle_end();
        let mpd = render_mpd(&p, &inits(), &clock(1_700_000_000_000, 1_700_000_007_000));
        assert!(!mpd.contains("availabilityTimeOffset"));
        assert!(!mpd.contains("UTCTiming"));
        assert!(mpd.contains(r#"<S t="0" d="180000" r="1"/>"#), "{mpd}");
    }

    /// The window slides past a Period's first segment: its id, start and offset stay (a
    /// player would otherwise see a new Period at every update).
    #[test]
    fn period_survives_the_window_sliding_past_its_start() {
        let p = playlist_with(&[(false, 180_000); 16]);
        assert!(p.segments().next().unwrap().msn > 0, "the window slid");
        let mpd = render_mpd(&p, &inits(), &clock(1_700_000_000_000, 1_700_000_020_000));
        assert!(
            mpd.contains(r#"<Period id="p0" start="PT0.000S">"#),
            "{mpd}"
        );
        assert!(
            mpd.contains(r#"presentationTimeOffset="0" startNumber="4""#),
            "{mpd}"
        );
        assert!(mpd.contains(r#"<S t="720000" d="180000""#), "{mpd}");
    }

    #[test]
    fn ended_is_static() {
        let mut p = playlist_with(&[(false, 180_000)]);
        p.handle_end();
        let mpd = render_mpd(&p, &inits(), &clock(1_700_000_000_000, 0));
        assert!(
            mpd.contains(r#"type="static" mediaPresentationDuration="PT2.000S""#),
            "{mpd}"
        );
    }
}
