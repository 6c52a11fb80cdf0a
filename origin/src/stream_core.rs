//! The per-stream core: what the fragmenter produces, applied to the stream's LL-HLS playlist
//! and its media store, kept consistent (a part listed is a part stored, under the number the
//! playlist gave it).
//!
//! Pure and synchronous: no locks, no channels, no clock. [`crate::stream`] holds it behind
//! its mutex, answers held requests from the playlist and wakes streaming responses when
//! [`Applied::media`] says bytes were added.

use crate::fragmenter::{FragmentEvent, Part};
use crate::naming::{MediaName, Names};
use crate::playlist::{PartInfo, Playlist, PlaylistConfig};
use crate::recording::CompletedSegment;
use crate::store::{Making, MediaStore, Progress};

/// What the playlist needs to know of a part.
pub fn part_info(p: &Part) -> PartInfo {
    PartInfo {
        duration: p.duration,
        independent: p.independent,
        bytes: p.len(),
        video_samples: u64::from(p.video_samples),
        audio: p.audio,
        audio_bytes: p.audio_bytes,
    }
}

/// What one event changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Media bytes were added (a chunk, a part, a segment's end): streams being served may
    /// have more to send.
    pub media: bool,
    pub part: bool,
    pub segment: bool,
}

/// One stream's playlist and media (see the module documentation).
#[derive(Debug)]
pub struct StreamCore {
    pub playlist: Playlist,
    pub store: MediaStore,
    /// DASH's availabilityStartTime, set when the first segment completes.
    ast_ms: Option<i64>,
}

impl StreamCore {
    pub fn new(cfg: PlaylistConfig, names: Names, extra_segments: usize) -> Self {
        Self {
            playlist: Playlist::new(cfg, names),
            store: MediaStore::new(extra_segments),
            ast_ms: None,
        }
    }

    /// Applies one fragmenter event.
    pub fn handle_event(&mut self, ev: FragmentEvent) -> Applied {
        let mut applied = Applied::default();
        match ev {
            FragmentEvent::Init(init) => {
                self.playlist.handle_init(init.id);
                self.store.handle_init(init);
            }
            FragmentEvent::SegmentStart(s) => {
                self.playlist
                    .handle_segment_start(s.discontinuity, s.pdt_ms, s.start, s.timescale);
                self.store.handle_segment_start(s.init_id);
            }
            FragmentEvent::PdtRevised(pdt_ms) => self.playlist.handle_pdt_revised(pdt_ms),
            FragmentEvent::Chunk(c) => {
                self.store.handle_chunk(c);
                applied.media = true;
            }
            FragmentEvent::Part(p) => {
                if let Some(index) = self.playlist.handle_part(part_info(&p)) {
                    self.store.handle_part(index, p.chunks);
                    applied.media = true;
                    applied.part = true;
                }
            }
            FragmentEvent::SegmentEnd => {
                if let Some((msn, evicted)) = self.playlist.handle_segment_end() {
                    // DASH's availabilityStartTime, from the first complete segment (its PDT
                    // is final by then, and the MPD is served only from then on).
                    if self.ast_ms.is_none()
                        && let Some(s) = self.playlist.segments().last()
                    {
                        let start_ms = (s.start as f64 * 1000.0 / f64::from(s.timescale)) as i64;
                        self.ast_ms = Some(s.pdt_ms - start_ms);
                    }
                    self.store.handle_segment_end(msn, evicted);
                    applied.media = true;
                    applied.segment = true;
                }
            }
        }
        applied
    }

    /// The newest complete segment, as a recording keeps it (call when [`Applied::segment`]).
    pub fn completed_segment(&mut self) -> Option<CompletedSegment> {
        let s = self.playlist.segments().last()?;
        let (msn, discontinuity, init_id, pdt_ms) = (s.msn, s.discontinuity, s.init_id, s.pdt_ms);
        let duration_s = s.duration();
        let timing = crate::recording::SegmentTiming {
            start: s.start,
            timescale: s.timescale,
            duration: s.duration_ticks,
            audio_start: s.audio_start,
            audio_duration: s.audio_duration,
            audio_bytes: s.audio_bytes,
            video_samples: s.video_samples,
        };
        let init = self.store.init(init_id)?;
        let chunks = self.store.complete(MediaName::Segment(msn))?.chunks;
        Some(CompletedSegment {
            msn,
            discontinuity,
            init,
            duration_s,
            pdt_ms,
            chunks,
            timing,
        })
    }

    /// The stream ended: the playlist gets its ENDLIST.
    pub fn handle_end(&mut self) {
        self.playlist.handle_end();
    }

    /// What is being made, as the playlist numbers it.
    pub fn making(&self) -> Making {
        Making {
            part: self.playlist.next_part_index(),
            segment: self.playlist.open_segment().map(|s| s.msn),
            next_segment: self.playlist.next_msn(),
            ended: self.playlist.is_ended(),
        }
    }

    /// A media file as far as it exists, including what is being made.
    pub fn progress(&mut self, name: MediaName) -> Progress {
        let making = self.making();
        self.store.progress(name, making)
    }

    /// DASH's availabilityStartTime (ms since the epoch), once the first segment completed.
    pub fn ast_ms(&self) -> Option<i64> {
        self.ast_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmaf::tests::{aac, avc};
    use crate::fragmenter::{Fragmenter, FragmenterConfig};
    use bytes::Bytes;
    use relay::media::{AudioFrame, MediaMessage, VideoFrame};

    /// Every part the playlist lists is stored under its number with the bytes the fragmenter
    /// made, segments are their parts, and availabilityStartTime maps the first segment's start
    /// to its PDT.
    #[test]
    fn listed_is_stored() {
        let mut f = Fragmenter::new(FragmenterConfig::default());
        let mut core = StreamCore::new(PlaylistConfig::default(), Names { prefix: "x".into() }, 1);
        let mut made = Vec::new();
        let mut completed = Vec::new();
        let mut msgs = vec![
            (MediaMessage::VideoConfig(avc()), 0),
            (MediaMessage::AudioConfig(aac()), 0),
        ];
        for i in 0..150u32 {
            let t = i * 1000 / 30;
            let idr = i % 60 == 0;
            let data = Bytes::from(vec![0, 0, 0, 2, if idr { 0x65 } else { 0x41 }, i as u8]);
            msgs.push((
                MediaMessage::Video(VideoFrame {
                    dts: t,
                    cts: 0,
                    idr,
                    data,
                    tag: Bytes::new(),
                }),
                i64::from(t),
            ));
            if i % 2 == 0 {
                let data = Bytes::from(vec![i as u8; 5]);
                msgs.push((
                    MediaMessage::Audio(AudioFrame {
                        dts: t,
                        data,
                        tag: Bytes::new(),
                    }),
                    i64::from(t),
                ));
            }
        }
        for (m, wall) in msgs {
            f.handle_message(m, 1_700_000_000_000 + wall).unwrap();
            while let Some(ev) = f.poll_event() {
                if let FragmentEvent::Part(p) = &ev {
                    made.push(p.chunks.concat());
                }
                let applied = core.handle_event(ev);
                assert!(!applied.part || applied.media);
                if applied.segment {
                    completed.push(
                        core.completed_segment()
                            .expect("the segment just completed"),
                    );
                }
            }
        }
        // What a recording gets: every segment once, in order, with its init and the bytes
        // the playlist's segment has.
        assert_eq!(
            completed.iter().map(|c| c.msn).collect::<Vec<_>>(),
            (0..completed.len() as u64).collect::<Vec<_>>()
        );
        assert!(completed.len() >= 2);
        for c in &completed {
            assert_eq!(c.init.id, 1);
            assert!(!c.discontinuity);
            assert!((c.duration_s - 2.0).abs() < 0.05, "{}", c.duration_s);
            let Progress::Complete(stored) = core.progress(MediaName::Segment(c.msn)) else {
                panic!("segment {} not stored", c.msn);
            };
            assert_eq!(stored.concat(), c.chunks.concat(), "segment {}", c.msn);
        }
        assert!(made.len() > 20);
        for (i, bytes) in made.iter().enumerate() {
            let Progress::Complete(stored) = core.progress(MediaName::Part(i as u64)) else {
                panic!("part {i} not stored");
            };
            assert_eq!(&stored.concat(), bytes, "part {i}");
        }
        let seg0 = core
            .playlist
            .segments()
            .next()
            .expect("a complete segment")
            .clone();
        let parts: Vec<u8> = seg0
            .parts
            .iter()
            .flat_map(|p| made[p.index as usize].clone())
            .collect();
        let Progress::Complete(stored) = core.progress(MediaName::Segment(seg0.msn)) else {
            panic!("segment not stored");
        };
        assert_eq!(stored.concat(), parts);
        assert_eq!(
            core.ast_ms(),
            Some(seg0.pdt_ms - (seg0.start * 1000 / 90_000) as i64)
        );
        assert!(matches!(
            core.progress(MediaName::Part(made.len() as u64)),
            Progress::Partial(_)
        ));
        core.handle_end();
        assert_eq!(
            core.progress(MediaName::Part(made.len() as u64)),
            Progress::Absent
        );
    }
}
