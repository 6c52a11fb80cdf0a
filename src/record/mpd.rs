//! A recording's static DASH manifest (`index.mpd`) over the same segments as its playlist.
//!
//! DASH players want one track per representation, so with audio and video the manifest
//! names per-track views of the muxed segments (`{id}-v{n}.m4s`, `{id}-a{n}.m4s`, as the live
//! MPD does): per-track init segments are written beside the recording, per-track segments are
//! cut from the muxed ones by the origin when asked. One Period per run without
//! discontinuity, back to back, as the VOD playlist plays them.
//!
//! What the manifest needs that the playlist does not say (each segment's place on the
//! tracks' timelines, the codecs) is appended to `dash.jsonl` beside the recording as segments
//! are stored, so a recording a crash left open gets its manifest too.

use std::fmt::Write as _;
use std::path::Path;

use origin::dash::{AdaptationSet, duration_iso, video_attrs};
use origin::naming::{Names, TrackKind};
use origin::recording::CompletedSegment;
use serde::{Deserialize, Serialize};

/// The manifest's name.
pub const MANIFEST: &str = "index.mpd";
/// The timing sidecar's name.
pub const SIDECAR: &str = "dash.jsonl";

/// One line of the sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Line {
    Init(InitInfo),
    Segment(SegmentInfo),
}

/// What an init segment holds, for the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitInfo {
    pub id: u32,
    /// (codecs, width, height)
    pub video: Option<(String, u32, u32)>,
    /// (codecs, sample rate)
    pub audio: Option<(String, u32)>,
}

/// A segment, for the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentInfo {
    pub msn: u64,
    pub init: u32,
    pub discontinuity: bool,
    pub start: u64,
    pub timescale: u32,
    pub duration: u64,
    pub audio_start: Option<u64>,
    pub audio_duration: u64,
    pub audio_bytes: u64,
    pub bytes: u64,
    pub video_samples: u64,
}

impl InitInfo {
    pub fn of(seg: &CompletedSegment) -> Self {
        let t = &seg.init.tracks;
        Self {
            id: seg.init.id,
            video: t
                .video
                .as_ref()
                .map(|v| (v.codec_string(), v.width, v.height)),
            audio: t.audio.as_ref().map(|a| (a.codec_string(), a.sample_rate)),
        }
    }
}

impl SegmentInfo {
    pub fn of(seg: &CompletedSegment) -> Self {
        let t = seg.timing;
        Self {
            msn: seg.msn,
            init: seg.init.id,
            discontinuity: seg.discontinuity,
            start: t.start,
            timescale: t.timescale.max(1),
            duration: t.duration,
            audio_start: t.audio_start,
            audio_duration: t.audio_duration,
            audio_bytes: t.audio_bytes,
            bytes: seg.chunks.iter().map(|c| c.len() as u64).sum(),
            video_samples: t.video_samples,
        }
    }

    fn seconds(&self) -> f64 {
        self.duration as f64 / f64::from(self.timescale)
    }
}

/// Reads a sidecar: its complete lines (a line cut short by a crash is skipped).
pub fn parse(text: &str) -> (Vec<InitInfo>, Vec<SegmentInfo>) {
    let (mut inits, mut segs) = (Vec::new(), Vec::new());
    for line in text.lines() {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Init(i)) => inits.push(i),
            Ok(Line::Segment(s)) => segs.push(s),
            Err(_) => {}
        }
    }
    (inits, segs)
}

/// The manifest of `segs` (in order), whose inits are among `inits`. Pure.
pub fn render(inits: &[InitInfo], segs: &[SegmentInfo], names: &Names) -> String {
    let total: f64 = segs.iter().map(SegmentInfo::seconds).sum();
    let mut periods: Vec<Vec<&SegmentInfo>> = Vec::new();
    for s in segs {
        let split = periods
            .last()
            .and_then(|p| p.last())
            .is_none_or(|l| s.discontinuity || l.init != s.init);
        if split {
            periods.push(Vec::new());
        }
        if let Some(p) = periods.last_mut() {
            p.push(s);
        }
    }
    let max_seg = segs.iter().map(SegmentInfo::seconds).fold(1.0, f64::max);
    let mut out = String::with_capacity(1024 + 64 * segs.len());
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="static" minBufferTime="{}" mediaPresentationDuration="{}" maxSegmentDuration="{}">"#,
        duration_iso(max_seg),
        duration_iso(total),
        duration_iso(max_seg),
    );
    let mut start = 0.0;
    for period in &periods {
        let first = period[0];
        let secs: f64 = period.iter().map(|s| s.seconds()).sum::<f64>().max(0.001);
        let _ = writeln!(
            out,
            r#"  <Period id="p{}" start="{}" duration="{}">"#,
            first.msn,
            duration_iso(start),
            duration_iso(secs)
        );
        start += secs;
        let Some(init) = inits.iter().find(|i| i.id == first.init) else {
            let _ = writeln!(out, "  </Period>");
            continue;
        };
        let bytes: u64 = period.iter().map(|s| s.bytes).sum();
        let audio_bytes: u64 = period.iter().map(|s| s.audio_bytes).sum();
        let bps = |b: u64| ((b as f64 * 8.0 / secs) as u64).max(1);
        let samples: u64 = period.iter().map(|s| s.video_samples).sum();
        let fps = (samples > 0).then(|| samples as f64 / secs);
        let video_timeline: Vec<(u64, u64)> =
            period.iter().map(|s| (s.start, s.duration)).collect();
        match (&init.video, &init.audio) {
            (Some((vc, w, h)), Some((ac, rate))) => {
                let rate = *rate;
                let to_audio = |t: u64| {
                    (u128::from(t) * u128::from(rate) / u128::from(first.timescale)) as u64
                };
                AdaptationSet {
                    id: 0,
                    mime: "video/mp4",
                    codecs: vc.clone(),
                    bandwidth: bps(bytes.saturating_sub(audio_bytes)),
                    extra: video_attrs(*w, *h, fps),
                    timescale: first.timescale,
                    pto: first.start,
                    init: names.track_init(first.init, TrackKind::Video),
                    media: names.track_template(TrackKind::Video),
                    timeline: video_timeline,
                    ato: None,
                }
                .write(&mut out, first.msn);
                AdaptationSet {
                    id: 1,
                    mime: "audio/mp4",
                    codecs: ac.clone(),
                    bandwidth: bps(audio_bytes),
                    extra: format!(r#" audioSamplingRate="{rate}""#),
                    timescale: rate,
                    pto: to_audio(first.start),
                    init: names.track_init(first.init, TrackKind::Audio),
                    media: names.track_template(TrackKind::Audio),
                    timeline: period
                        .iter()
                        .map(|s| match s.audio_start {
                            Some(t) => (t, s.audio_duration),
                            None => (to_audio(s.start), to_audio(s.duration)),
                        })
                        .collect(),
                    ato: None,
                }
                .write(&mut out, first.msn);
            }
            (video, audio) => {
                let (mime, codecs, extra) = match (video, audio) {
                    (Some((c, w, h)), _) => ("video/mp4", c.clone(), video_attrs(*w, *h, fps)),
                    (_, Some((c, rate))) => (
                        "audio/mp4",
                        c.clone(),
                        format!(r#" audioSamplingRate="{rate}""#),
                    ),
                    _ => ("video/mp4", String::new(), String::new()),
                };
                AdaptationSet {
                    id: 0,
                    mime,
                    codecs,
                    bandwidth: bps(bytes),
                    extra,
                    timescale: first.timescale,
                    pto: first.start,
                    init: names.init(first.init),
                    media: names.segment_template(),
                    timeline: video_timeline,
                    ato: None,
                }
                .write(&mut out, first.msn);
            }
        }
        let _ = writeln!(out, "  </Period>");
    }
    out.push_str("</MPD>\n");
    out
}

/// Renders the manifest of the recording in `dir` (named `id`) from its sidecar, over the
/// segments its playlist lists. `None` without a sidecar.
pub async fn for_dir(dir: &Path, id: &str, playlist: &str) -> Option<String> {
    let sidecar = tokio::fs::read_to_string(dir.join(SIDECAR)).await.ok()?;
    let (inits, segs) = parse(&sidecar);
    let names = Names {
        prefix: id.to_string(),
    };
    let listed: std::collections::HashSet<&str> = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let segs: Vec<SegmentInfo> = segs
        .into_iter()
        .filter(|s| listed.contains(names.segment(s.msn).as_str()))
        .collect();
    Some(render(&inits, &segs, &names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(msn: u64, init: u32, discontinuity: bool, start: u64) -> SegmentInfo {
        SegmentInfo {
            msn,
            init,
            discontinuity,
            start,
            timescale: 90_000,
            duration: 180_000,
            audio_start: Some(start * 48_000 / 90_000),
            audio_duration: 96_000,
            audio_bytes: 8_000,
            bytes: 250_000,
            video_samples: 60,
        }
    }

    fn init(id: u32) -> InitInfo {
        InitInfo {
            id,
            video: Some(("avc1.64001f".into(), 1280, 720)),
            audio: Some(("mp4a.40.2".into(), 48_000)),
        }
    }

    #[test]
    fn periods_split_at_discontinuities_and_play_back_to_back() {
        let names = Names {
            prefix: "ab".into(),
        };
        let segs = [
            seg(0, 1, false, 900_000),
            seg(1, 1, false, 1_080_000),
            // A reconnect: its timeline jumps.
            seg(2, 1, true, 5_000_000),
            seg(3, 1, false, 5_180_000),
        ];
        let mpd = render(&[init(1)], &segs, &names);
        assert!(mpd.contains(r#"type="static""#), "{mpd}");
        assert!(
            mpd.contains(r#"mediaPresentationDuration="PT8.000S""#),
            "{mpd}"
        );
        assert_eq!(mpd.matches("<Period ").count(), 2, "{mpd}");
        assert!(
            mpd.contains(r#"<Period id="p2" start="PT4.000S" duration="PT4.000S">"#),
            "{mpd}"
        );
        assert!(mpd.contains(r#"presentationTimeOffset="5000000" startNumber="2" initialization="ab-init1v.mp4" media="ab-v$Number$.m4s""#), "{mpd}");
        assert!(mpd.contains(r#"<S t="900000" d="180000" r="1"/>"#), "{mpd}");
        assert!(mpd.contains(r#"timescale="48000""#), "{mpd}");
        assert!(!mpd.contains("availabilityTimeOffset"), "{mpd}");
    }

    #[test]
    fn the_sidecar_round_trips_and_a_torn_line_is_skipped() {
        let lines = [Line::Init(init(1)), Line::Segment(seg(0, 1, false, 0))];
        let mut text: String = lines
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect();
        text.push_str(r#"{"kind":"segment","msn":1,"in"#);
        let (inits, segs) = parse(&text);
        assert_eq!(inits, [init(1)]);
        assert_eq!(segs, [seg(0, 1, false, 0)]);
    }
}
