//! The CMAF fragmenter: media messages in, init segments, parts and segment boundaries out.
//!
//! Sans-IO. Feed it with [`Fragmenter::handle_message`] (passing the wall-clock arrival time,
//! used only to stamp PROGRAM-DATE-TIME), then drain [`Fragmenter::poll_event`] until `None`.
//!
//! Rules it keeps:
//! - Video and audio are muxed (track 1 video, track 2 audio). A part is a run of CMAF chunks
//!   (`moof` + `mdat` each): one per video frame, carrying that frame and the audio up to its
//!   end (audio-only streams: about every [`AUDIO_CHUNK_MS`]). Each chunk is emitted as soon
//!   as it is made, so a part can be served while it is being made; the complete part is the
//!   same chunks, byte for byte.
//! - The "master" track (video when present, else audio) decides where parts and segments end.
//! - A segment starts with an IDR picture (checked on the NAL type) and is cut at the first IDR
//!   at or after the segment target. A part ends when adding the next master sample would
//!   make it longer than the part target, so no part exceeds the target unless a single
//!   sample already does.
//! - Input timestamps are 32-bit milliseconds: they are unwrapped, and a backward jump, a
//!   forward gap larger than `max_gap`, a publisher change or a codec change ends the current
//!   segment and marks the next one as a discontinuity. Output time never goes backwards:
//!   after a discontinuity the timeline continues where it stopped.
//! - Audio decode times come from a sample counter (1024 samples per AAC frame), re-synced
//!   to the input timestamps when they drift apart by more than two frames.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use relay::media::{AacConfig, AudioFrame, AvcConfig, MediaMessage, VideoFrame};

use crate::cmaf::{Sample, TrackRun, TrackSet, VIDEO_TIMESCALE, write_fragment, write_init};
use crate::part_builder::PartBuilder;
use crate::timeline::{Mapped, Timeline};

pub use crate::fragment::{FragmentEvent, FragmenterStats, InitSegment, Part, SegmentStart};

const AAC_FRAME: u64 = 1024;
/// Used for the last video frame of a segment closed without a successor (end of stream).
const DEFAULT_VIDEO_FRAME: u32 = VIDEO_TIMESCALE / 30;
/// Audio-only streams: a chunk closes once it holds this much audio. One chunk per AAC frame
/// (21 ms) would spend a third of the bytes on `moof` boxes.
pub const AUDIO_CHUNK_MS: u64 = 60;

/// Fragmenter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmenterConfig {
    pub part_target: Duration,
    pub segment_target: Duration,
    /// A forward timestamp jump larger than this is a discontinuity.
    pub max_gap: Duration,
}

impl Default for FragmenterConfig {
    fn default() -> Self {
        Self {
            part_target: Duration::from_millis(200),
            segment_target: Duration::from_secs(2),
            max_gap: Duration::from_secs(5),
        }
    }
}

/// Turns a stream of [`MediaMessage`]s into CMAF init segments, parts and segment boundaries.
#[derive(Debug)]
pub struct Fragmenter {
    cfg: FragmenterConfig,
    video_cfg: Option<Arc<AvcConfig>>,
    /// SPS + PPS of `video_cfg`, length-prefixed, put in front of IDR samples that lack them.
    param_sets: Bytes,
    audio_cfg: Option<Arc<AacConfig>>,
    /// Tracks of the current init segment; `None` until the stream (re)starts.
    active: Option<TrackSet>,
    last_tracks: Option<TrackSet>,
    init_id: u32,
    timeline: Timeline,
    /// Output end of everything emitted so far, in milliseconds; where a rebased timeline resumes.
    end_ms: i64,
    pending_video: Option<Sample>,
    last_video_duration: u32,
    audio_next: Option<u64>,
    audio_queue: VecDeque<Sample>,
    segment_open: bool,
    segment_start: u64,
    part_start: u64,
    /// Samples of the chunk being made.
    part_video: Vec<Sample>,
    part_audio: Vec<Sample>,
    /// The chunks of the part being made and what they hold.
    part: PartBuilder,
    discontinuity_next: bool,
    sequence: u32,
    events: VecDeque<FragmentEvent>,
    stats: FragmenterStats,
}

impl Fragmenter {
    pub fn new(cfg: FragmenterConfig) -> Self {
        Self {
            cfg,
            video_cfg: None,
            param_sets: Bytes::new(),
            audio_cfg: None,
            active: None,
            last_tracks: None,
            init_id: 0,
            timeline: Timeline::default(),
            end_ms: 0,
            pending_video: None,
            last_video_duration: DEFAULT_VIDEO_FRAME,
            audio_next: None,
            audio_queue: VecDeque::new(),
            segment_open: false,
            segment_start: 0,
            part_start: 0,
            part_video: Vec::new(),
            part_audio: Vec::new(),
            part: PartBuilder::default(),
            discontinuity_next: false,
            sequence: 0,
            events: VecDeque::new(),
            stats: FragmenterStats::default(),
        }
    }

    pub fn stats(&self) -> FragmenterStats {
        self.stats
    }

    /// The tracks of the current init segment, if the stream has started.
    pub fn tracks(&self) -> Option<&TrackSet> {
        self.active.as_ref()
    }

    /// Next output event, in order.
    pub fn poll_event(&mut self) -> Option<FragmentEvent> {
        self.events.pop_front()
    }

    /// Feeds one message. `wall_ms` is its arrival time (ms since the Unix epoch).
    /// Errors are internal MP4 encoding failures; the fragmenter stays usable afterwards.
    pub fn handle_message(
        &mut self,
        msg: MediaMessage,
        wall_ms: i64,
    ) -> Result<(), crate::cmaf::CmafError> {
        match msg {
            MediaMessage::VideoConfig(c) => {
                if self.video_cfg.as_deref().map(|v| &v.record) != Some(&c.record) {
                    self.param_sets = relay::h264::parameter_sets(&c.record, c.nal_length_size)
                        .map(Bytes::from)
                        .unwrap_or_default();
                    self.video_cfg = Some(c);
                    self.config_changed()?;
                }
            }
            MediaMessage::AudioConfig(c) => {
                if self.audio_cfg.as_deref().map(|a| &a.asc) != Some(&c.asc) {
                    self.audio_cfg = Some(c);
                    self.config_changed()?;
                }
            }
            MediaMessage::Video(f) => self.handle_video(f, wall_ms)?,
            MediaMessage::Audio(f) => self.handle_audio(f, wall_ms)?,
            MediaMessage::PublisherLeft | MediaMessage::PublisherResumed => {
                self.break_stream()?;
                self.timeline.forget_publisher();
            }
        }
        Ok(())
    }

    /// Flushes everything buffered: the current part and segment are completed.
    pub fn handle_end(&mut self) -> Result<(), crate::cmaf::CmafError> {
        self.close_segment()?;
        self.active = None;
        Ok(())
    }

    fn master_timescale(&self) -> u32 {
        match &self.active {
            Some(TrackSet { video: Some(_), .. }) | None => VIDEO_TIMESCALE,
            Some(TrackSet {
                audio: Some(a),
                video: None,
            }) => a.sample_rate,
            Some(_) => VIDEO_TIMESCALE,
        }
    }

    fn video_is_master(&self) -> bool {
        matches!(&self.active, Some(TrackSet { video: Some(_), .. }))
    }

    fn config_changed(&mut self) -> Result<(), crate::cmaf::CmafError> {
        if self.active.is_some() {
            // A new decoder configuration applies from the next IDR; what came before is
            // closed now so it keeps its own init segment.
            self.break_stream()?;
        }
        Ok(())
    }

    /// Ends the current segment (if any); the next one starts at a sync sample with a
    /// discontinuity, and with a new init segment if the tracks changed.
    fn break_stream(&mut self) -> Result<(), crate::cmaf::CmafError> {
        self.close_segment()?;
        if self.active.take().is_some() {
            self.discontinuity_next = true;
            self.stats.discontinuities += 1;
        }
        self.timeline.forget_tracks();
        Ok(())
    }

    /// Completes the pending frame, the current part and the current segment.
    fn close_segment(&mut self) -> Result<(), crate::cmaf::CmafError> {
        if let Some(mut p) = self.pending_video.take() {
            p.duration = self.last_video_duration;
            let end = p.dts + u64::from(p.duration);
            self.on_master_sample(p, end, false)?;
        }
        if self.segment_open {
            // Audio still queued belongs to this segment.
            let queued: Vec<Sample> = self.audio_queue.drain(..).collect();
            self.part_audio.extend(queued);
            self.flush_part()?;
            self.end_segment();
        }
        // Audio left after the segment's last video frame cannot open the next segment.
        self.part_video.clear();
        self.part_audio.clear();
        self.audio_queue.clear();
        self.audio_next = None;
        Ok(())
    }

    /// Maps a raw timestamp to output milliseconds; a jump on the given track ends the
    /// current segment first, and the timeline resumes where the emitted media ends.
    fn map_time(&mut self, raw: u32, video: bool) -> Result<i64, crate::cmaf::CmafError> {
        let max_gap = self.cfg.max_gap.as_millis() as i64;
        match self.timeline.map(raw, video, self.end_ms, max_gap) {
            Mapped::At(ms) => Ok(ms),
            Mapped::Jump(jump) => {
                self.break_stream()?;
                Ok(self.timeline.rebase(jump, self.end_ms))
            }
        }
    }

    /// Starts (or restarts) the stream with the current configs; emits an init if they changed.
    fn start(&mut self, out_ms: i64, wall_ms: i64) -> Result<(), crate::cmaf::CmafError> {
        let tracks = TrackSet {
            video: self.video_cfg.clone(),
            audio: self.audio_cfg.clone(),
        };
        if self.last_tracks.as_ref() != Some(&tracks) {
            self.init_id += 1;
            let data = write_init(&tracks)?;
            self.events
                .push_back(FragmentEvent::Init(Arc::new(InitSegment {
                    id: self.init_id,
                    data,
                    tracks: tracks.clone(),
                })));
            self.last_tracks = Some(tracks.clone());
        }
        self.active = Some(tracks);
        self.timeline.start(out_ms, wall_ms);
        Ok(())
    }

    /// Moves the PDT mapping earlier if this frame arrived earlier than it predicts (see
    /// [`Timeline::refine`]), revising the open segment's PDT.
    fn refine_anchor(&mut self, out_ms: i64, wall_ms: i64) {
        if self.timeline.refine(out_ms, wall_ms) && self.segment_open {
            let start_ms = self.ms_of(self.segment_start);
            self.events
                .push_back(FragmentEvent::PdtRevised(self.timeline.wall_ms(start_ms)));
        }
    }

    fn handle_video(&mut self, f: VideoFrame, wall_ms: i64) -> Result<(), crate::cmaf::CmafError> {
        self.stats.video_frames += 1;
        if self.video_cfg.is_none() {
            self.stats.dropped_waiting += 1;
            return Ok(());
        }
        let out_ms = self.map_time(f.dts, true)?;
        if self.active.is_none() {
            if !f.idr {
                self.stats.dropped_waiting += 1;
                return Ok(());
            }
            self.start(out_ms, wall_ms)?;
        } else if !self.video_is_master() {
            // Video appeared in an audio-only stream without a config change event; ignore.
            self.stats.dropped_waiting += 1;
            return Ok(());
        }
        self.refine_anchor(out_ms, wall_ms);
        let t = out_ms as u64 * u64::from(VIDEO_TIMESCALE / 1000);
        if let Some(mut prev) = self.pending_video.take() {
            let d = t.saturating_sub(prev.dts).max(1);
            prev.duration = d.min(u64::from(u32::MAX)) as u32;
            self.last_video_duration = prev.duration;
            self.on_master_sample(prev, t, false)?;
        }
        if f.idr && self.segment_open {
            let seg_target = self.ticks(self.cfg.segment_target);
            if t - self.segment_start >= seg_target {
                self.flush_part_until(t)?;
                self.end_segment();
            }
        }
        // Parameter sets in-band at every IDR (identical to the init's, as avc1 requires):
        // readers that keep a previous init's decoder configuration across an EXT-X-MAP
        // change (ffmpeg) or join with a stale init still decode.
        let nal_len = self.video_cfg.as_ref().map_or(4, |c| c.nal_length_size);
        let data = if f.idr
            && !self.param_sets.is_empty()
            && !relay::h264::contains_nal(&f.data, nal_len, 7)
        {
            let mut d = Vec::with_capacity(self.param_sets.len() + f.data.len());
            d.extend_from_slice(&self.param_sets);
            d.extend_from_slice(&f.data);
            Bytes::from(d)
        } else {
            f.data
        };
        self.pending_video = Some(Sample {
            dts: t,
            duration: 0,
            cts: f.cts * (VIDEO_TIMESCALE / 1000) as i32,
            sync: f.idr,
            data,
        });
        Ok(())
    }

    fn handle_audio(&mut self, f: AudioFrame, wall_ms: i64) -> Result<(), crate::cmaf::CmafError> {
        self.stats.audio_frames += 1;
        let Some(cfg) = self.audio_cfg.clone() else {
            self.stats.dropped_waiting += 1;
            return Ok(());
        };
        let out_ms = self.map_time(f.dts, false)?;
        if self.active.is_none() {
            if self.video_cfg.is_some() {
                // Wait for the first video IDR.
                self.stats.dropped_waiting += 1;
                return Ok(());
            }
            self.start(out_ms, wall_ms)?;
        }
        if !matches!(&self.active, Some(TrackSet { audio: Some(_), .. })) {
            self.stats.dropped_waiting += 1;
            return Ok(());
        }
        if !self.video_is_master() {
            self.refine_anchor(out_ms, wall_ms);
        }
        let rate = u64::from(cfg.sample_rate);
        let actual = out_ms.max(0) as u64 * rate / 1000;
        let tolerance = 2 * AAC_FRAME;
        let dts = match self.audio_next {
            None => actual,
            Some(expected) if actual > expected + tolerance => {
                self.stats.audio_resyncs += 1;
                actual
            }
            Some(expected) if actual + tolerance < expected => {
                self.stats.dropped_audio_overlap += 1;
                return Ok(());
            }
            Some(expected) => expected,
        };
        self.audio_next = Some(dts + AAC_FRAME);
        let sample = Sample {
            dts,
            duration: AAC_FRAME as u32,
            cts: 0,
            sync: true,
            data: f.data,
        };
        if self.video_is_master() {
            self.audio_queue.push_back(sample);
        } else {
            let end = dts + AAC_FRAME;
            self.on_master_sample(sample, end, true)?;
        }
        Ok(())
    }

    fn ticks(&self, d: Duration) -> u64 {
        (d.as_micros() as u64) * u64::from(self.master_timescale()) / 1_000_000
    }

    /// A master-track sample is complete (its duration known). Applies the part and
    /// segment rules. `check_segment_cut` is used by the audio-only path, where every
    /// sample is a possible segment start.
    fn on_master_sample(
        &mut self,
        sample: Sample,
        end: u64,
        check_segment_cut: bool,
    ) -> Result<(), crate::cmaf::CmafError> {
        let start = sample.dts;
        if check_segment_cut && self.segment_open && sample.sync {
            let seg_target = self.ticks(self.cfg.segment_target);
            if start - self.segment_start >= seg_target {
                self.flush_part_until(start)?;
                self.end_segment();
            }
        }
        if !self.segment_open {
            if !sample.sync {
                self.stats.dropped_waiting += 1;
                return Ok(());
            }
            self.open_segment(start);
        } else if !self.part_video_or_master_is_empty()
            && end - self.part_start > self.ticks(self.cfg.part_target)
        {
            self.flush_part_until(start)?;
        }
        if self.part_video_or_master_is_empty() {
            self.part_start = start;
        }
        if self.video_is_master() {
            self.part_video.push(sample);
            // The frame is complete: it and the audio up to its end go out as a chunk now.
            self.take_audio_until(end);
            self.flush_chunk()?;
        } else {
            self.part_audio.push(sample);
            let first = self.part_audio.first().map_or(start, |s| s.dts);
            if end - first >= self.ticks(Duration::from_millis(AUDIO_CHUNK_MS)) {
                self.flush_chunk()?;
            }
        }
        self.end_ms = self.end_ms.max(self.ms_of(end));
        if end - self.part_start >= self.ticks(self.cfg.part_target) {
            self.flush_part_until(end)?;
        }
        Ok(())
    }

    fn ms_of(&self, ticks: u64) -> i64 {
        (ticks * 1000 / u64::from(self.master_timescale())) as i64
    }

    /// True while the part being made holds no master sample (emitted or not).
    fn part_video_or_master_is_empty(&self) -> bool {
        let chunk_empty = if self.video_is_master() {
            self.part_video.is_empty()
        } else {
            self.part_audio.is_empty()
        };
        chunk_empty && self.part.has_no_master_samples()
    }

    fn open_segment(&mut self, start: u64) {
        self.segment_open = true;
        self.segment_start = start;
        self.part_start = start;
        let pdt_ms = self.timeline.wall_ms(self.ms_of(start));
        self.events
            .push_back(FragmentEvent::SegmentStart(SegmentStart {
                discontinuity: std::mem::take(&mut self.discontinuity_next),
                init_id: self.init_id,
                pdt_ms,
                start,
                timescale: self.master_timescale(),
            }));
    }

    fn end_segment(&mut self) {
        if self.segment_open {
            self.segment_open = false;
            self.timeline.settle();
            self.events.push_back(FragmentEvent::SegmentEnd);
        }
    }

    /// Moves queued audio that starts before `end` (master ticks) into the part, then flushes.
    fn flush_part_until(&mut self, end: u64) -> Result<(), crate::cmaf::CmafError> {
        self.take_audio_until(end);
        self.flush_part()
    }

    /// Moves queued audio that starts before `end` (master ticks) into the chunk being made.
    fn take_audio_until(&mut self, end: u64) {
        if !self.video_is_master() {
            return;
        }
        let rate = self
            .active
            .as_ref()
            .and_then(|t| t.audio.as_ref())
            .map(|a| u128::from(a.sample_rate));
        if let Some(rate) = rate {
            while let Some(a) = self.audio_queue.front() {
                if u128::from(a.dts) * u128::from(VIDEO_TIMESCALE) < u128::from(end) * rate {
                    let a = self.audio_queue.pop_front().expect("front exists");
                    self.part_audio.push(a);
                } else {
                    break;
                }
            }
        }
    }

    /// Writes the samples gathered since the last chunk as the part's next chunk.
    fn flush_chunk(&mut self) -> Result<(), crate::cmaf::CmafError> {
        if self.part_video.is_empty() && self.part_audio.is_empty() {
            return Ok(());
        }
        let Some(tracks) = &self.active else {
            self.part_video.clear();
            self.part_audio.clear();
            return Ok(());
        };
        self.sequence = self.sequence.wrapping_add(1);
        let mut runs = Vec::with_capacity(2);
        if let Some(id) = tracks.video_track_id() {
            runs.push(TrackRun {
                track_id: id,
                samples: &self.part_video,
            });
        }
        if let Some(id) = tracks.audio_track_id() {
            runs.push(TrackRun {
                track_id: id,
                samples: &self.part_audio,
            });
        }
        let data = write_fragment(self.sequence, &runs)?;
        let master = if self.video_is_master() {
            &self.part_video
        } else {
            &self.part_audio
        };
        self.part
            .add_chunk(data.clone(), master, &self.part_video, &self.part_audio);
        // A rebased timeline must resume after every track's last sample, not just the master's.
        for (samples, rate) in [
            (&self.part_video, VIDEO_TIMESCALE),
            (
                &self.part_audio,
                tracks.audio.as_ref().map_or(1, |a| a.sample_rate),
            ),
        ] {
            if let Some(last) = samples.last() {
                let end = last.dts + u64::from(last.duration);
                self.end_ms = self
                    .end_ms
                    .max(end.saturating_mul(1000).div_ceil(u64::from(rate)) as i64);
            }
        }
        self.part_video.clear();
        self.part_audio.clear();
        self.events.push_back(FragmentEvent::Chunk(data));
        Ok(())
    }

    fn flush_part(&mut self) -> Result<(), crate::cmaf::CmafError> {
        if self.part_video_or_master_is_empty() {
            return Ok(());
        }
        self.flush_chunk()?;
        let part = self.part.finish(self.master_timescale());
        self.part_start += part.duration;
        self.events.push_back(FragmentEvent::Part(part));
        Ok(())
    }
}

#[cfg(test)]
#[path = "fragmenter_tests.rs"]
mod tests;
