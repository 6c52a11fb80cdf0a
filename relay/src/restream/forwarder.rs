//! What one destination connection sends, decided without I/O: sequence headers first, media
//! from a keyframe, timestamps rebased to start at 0 for every connection, and continuous
//! across a publisher reconnect (the destination must never see time go backwards).
//!
//! Payloads are the publisher's FLV tag bodies, forwarded byte for byte.

use std::sync::Arc;

use bytes::Bytes;

use crate::media::{AacConfig, AvcConfig, MediaMessage};

/// One thing to send on the destination connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// `@setDataFrame` / `onMetaData` describing the stream.
    Metadata(Metadata),
    Video {
        timestamp: u32,
        data: Bytes,
    },
    Audio {
        timestamp: u32,
        data: Bytes,
    },
}

/// The onMetaData fields a destination looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub audio_sample_rate: Option<u32>,
    pub audio_channels: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for a keyframe (or, without video, any audio frame) to start from.
    Waiting,
    /// Output timestamp = `offset + (dts - base)`.
    Forwarding { base: u32, offset: u32 },
}

/// FLV audio tag header for AAC (sound format 10; the rate/size/type bits are fixed for AAC).
const FLV_AAC: u8 = 0xaf;
/// The synthesized track: AAC-LC, 44.1 kHz, mono.
const SILENT_ASC_TAG: &[u8] = &[FLV_AAC, 0, 0x12, 0x08];
/// One AAC-LC mono access unit of digital silence (what ffmpeg's encoder emits for silence).
const SILENT_FRAME_TAG: &[u8] = &[FLV_AAC, 1, 0x01, 0x18, 0x20, 0x07];
const SILENT_RATE: u64 = 44_100;
const AAC_FRAME: u64 = 1024;

/// Per-destination forwarding state.
#[derive(Debug)]
pub struct Forwarder {
    video: Option<Arc<AvcConfig>>,
    audio: Option<Arc<AacConfig>>,
    state: State,
    /// Last timestamp sent on this connection.
    last_out: Option<u32>,
    /// Synthesize silent AAC when the source has video and no audio.
    silent_audio: bool,
    /// Silent frames sent on this connection, while synthesizing.
    silent_frames: Option<u64>,
    /// Output timestamp where the synthesized track started.
    silent_origin: u32,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Forwarder {
    /// `silent_audio`: give a video-only source a silent AAC-LC track (YouTube flags streams
    /// without audio).
    pub fn new(silent_audio: bool) -> Self {
        Self {
            video: None,
            audio: None,
            state: State::Waiting,
            last_out: None,
            silent_audio,
            silent_frames: None,
            silent_origin: 0,
        }
    }

    /// A new connection to the destination is publishing: start over from a keyframe at 0.
    pub fn handle_connected(&mut self) {
        self.state = State::Waiting;
        self.last_out = None;
        self.silent_frames = None;
    }

    /// Silent frames due up to output time `until` (ms).
    fn silence_until(&mut self, until: u32, out: &mut Vec<Outgoing>) {
        let Some(sent) = self.silent_frames.as_mut() else {
            return;
        };
        loop {
            let t = u64::from(self.silent_origin) + *sent * AAC_FRAME * 1000 / SILENT_RATE;
            if t > u64::from(until) {
                break;
            }
            out.push(Outgoing::Audio {
                timestamp: t as u32,
                data: Bytes::from_static(SILENT_FRAME_TAG),
            });
            *sent += 1;
        }
    }
    fn headers(&mut self, timestamp: u32, out: &mut Vec<Outgoing>) {
        out.push(Outgoing::Metadata(Metadata {
            width: self.video.as_ref().map(|v| v.width),
            height: self.video.as_ref().map(|v| v.height),
            audio_sample_rate: self.audio.as_ref().map(|a| a.sample_rate),
            audio_channels: self.audio.as_ref().map(|a| u32::from(a.channels)),
        }));
        if let Some(v) = &self.video {
            out.push(Outgoing::Video {
                timestamp,
                data: v.tag.clone(),
            });
        }
        if let Some(a) = &self.audio {
            out.push(Outgoing::Audio {
                timestamp,
                data: a.tag.clone(),
            });
        } else if self.silent_audio && self.video.is_some() {
            out.push(Outgoing::Audio {
                timestamp,
                data: Bytes::from_static(SILENT_ASC_TAG),
            });
            self.silent_frames = Some(0);
            self.silent_origin = timestamp;
        }
    }

    fn start(&mut self, dts: u32, out: &mut Vec<Outgoing>) -> u32 {
        // A resumed publisher continues just after what this connection already sent.
        let offset = self.last_out.map_or(0, |t| t.wrapping_add(1));
        self.state = State::Forwarding { base: dts, offset };
        self.headers(offset, out);
        offset
    }

    /// Maps a source timestamp; `None` for one from before the starting keyframe.
    fn map(&mut self, dts: u32) -> Option<u32> {
        let State::Forwarding { base, offset } = self.state else {
            return None;
        };
        let delta = dts.wrapping_sub(base) as i32;
        if delta < 0 {
            return None;
        }
        let t = offset.wrapping_add(delta as u32);
        self.last_out = Some(
            self.last_out
                .map_or(t, |l| if (t.wrapping_sub(l) as i32) > 0 { t } else { l }),
        );
        Some(t)
    }

    /// What to send for one message from the stream.
    pub fn handle_message(&mut self, msg: MediaMessage) -> Vec<Outgoing> {
        let mut out = Vec::new();
        match msg {
            MediaMessage::VideoConfig(c) => {
                let changed = self.video.as_ref().is_some_and(|v| v.record != c.record);
                self.video = Some(c.clone());
                if changed && let Some(t) = self.last_out {
                    out.push(Outgoing::Video {
                        timestamp: t,
                        data: c.tag.clone(),
                    });
                }
            }
            MediaMessage::AudioConfig(c) => {
                let changed = self.audio.as_ref().is_some_and(|a| a.asc != c.asc);
                self.audio = Some(c.clone());
                if changed && let Some(t) = self.last_out {
                    out.push(Outgoing::Audio {
                        timestamp: t,
                        data: c.tag.clone(),
                    });
                }
            }
            MediaMessage::Video(f) => {
                if self.state == State::Waiting {
                    if !f.idr || self.video.is_none() {
                        return out;
                    }
                    self.start(f.dts, &mut out);
                }
                if let Some(timestamp) = self.map(f.dts) {
                    self.silence_until(timestamp, &mut out);
                    out.push(Outgoing::Video {
                        timestamp,
                        data: f.tag,
                    });
                }
            }
            MediaMessage::Audio(f) => {
                if self.silent_frames.is_some() {
                    // This connection already carries a synthesized track; a real one would
                    // need new headers: it is used from the next connection on.
                    return out;
                }
                if self.state == State::Waiting {
                    // With video, start at its keyframe; audio-only starts at once.
                    if self.video.is_some() || self.audio.is_none() {
                        return out;
                    }
                    self.start(f.dts, &mut out);
                }
                if let Some(timestamp) = self.map(f.dts) {
                    out.push(Outgoing::Audio {
                        timestamp,
                        data: f.tag,
                    });
                }
            }
            MediaMessage::PublisherLeft => {}
            MediaMessage::PublisherResumed => {
                // The new publisher's clock restarts: continue from the next keyframe.
                self.state = State::Waiting;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{AudioFrame, VideoFrame};

    fn avc(level: u8) -> Arc<AvcConfig> {
        Arc::new(AvcConfig {
            record: Bytes::from(vec![1, 100, 0, level]),
            tag: Bytes::from(vec![0x17, 0, level]),
            profile: 100,
            compatibility: 0,
            level,
            nal_length_size: 4,
            width: 1280,
            height: 720,
        })
    }

    fn aac() -> Arc<AacConfig> {
        Arc::new(AacConfig {
            asc: Bytes::from_static(&[0x12, 0x08]),
            tag: Bytes::from_static(&[0xaf, 0, 0x12, 0x08]),
            object_type: 2,
            sample_rate: 44100,
            channels: 1,
        })
    }

    fn v(dts: u32, idr: bool) -> MediaMessage {
        MediaMessage::Video(VideoFrame {
            dts,
            cts: 0,
            idr,
            data: Bytes::new(),
            tag: Bytes::from(dts.to_be_bytes().to_vec()),
        })
    }

    fn a(dts: u32) -> MediaMessage {
        MediaMessage::Audio(AudioFrame {
            dts,
            data: Bytes::new(),
            tag: Bytes::from(dts.to_be_bytes().to_vec()),
        })
    }

    fn times(out: &[Outgoing]) -> Vec<(char, u32)> {
        out.iter()
            .map(|o| match o {
                Outgoing::Video { timestamp, .. } => ('v', *timestamp),
                Outgoing::Audio { timestamp, .. } => ('a', *timestamp),
                Outgoing::Metadata(_) => ('m', 0),
            })
            .collect()
    }

    #[test]
    fn starts_at_a_keyframe_with_headers_and_rebased_time() {
        let mut f = Forwarder::new(false);
        f.handle_message(MediaMessage::VideoConfig(avc(31)));
        f.handle_message(MediaMessage::AudioConfig(aac()));
        f.handle_connected();
        assert!(
            f.handle_message(v(5000, false)).is_empty(),
            "not a keyframe"
        );
        assert!(
            f.handle_message(a(5010)).is_empty(),
            "audio waits for the keyframe"
        );
        let out = f.handle_message(v(5033, true));
        assert_eq!(times(&out), vec![('m', 0), ('v', 0), ('a', 0), ('v', 0)]);
        assert_eq!(
            out[1],
            Outgoing::Video {
                timestamp: 0,
                data: avc(31).tag.clone()
            }
        );
        // Audio from before the keyframe is dropped; later audio is rebased.
        assert!(f.handle_message(a(5020)).is_empty());
        assert_eq!(times(&f.handle_message(a(5043))), vec![('a', 10)]);
        assert_eq!(times(&f.handle_message(v(5066, false))), vec![('v', 33)]);
    }

    #[test]
    fn reconnecting_destination_starts_again_at_zero() {
        let mut f = Forwarder::new(false);
        f.handle_message(MediaMessage::VideoConfig(avc(31)));
        f.handle_connected();
        f.handle_message(v(1000, true));
        f.handle_message(v(1033, false));
        f.handle_connected();
        assert!(f.handle_message(v(1066, false)).is_empty());
        assert_eq!(
            times(&f.handle_message(v(3000, true))),
            vec![('m', 0), ('v', 0), ('v', 0)]
        );
    }

    #[test]
    fn resumed_publisher_continues_forward_in_time() {
        let mut f = Forwarder::new(false);
        f.handle_message(MediaMessage::VideoConfig(avc(31)));
        f.handle_connected();
        f.handle_message(v(90_000, true));
        assert_eq!(
            times(&f.handle_message(v(92_000, false))),
            vec![('v', 2000)]
        );
        f.handle_message(MediaMessage::PublisherLeft);
        f.handle_message(MediaMessage::PublisherResumed);
        // The new publisher starts its clock at 0, with a new resolution.
        let out = f.handle_message(MediaMessage::VideoConfig(avc(40)));
        assert_eq!(
            times(&out),
            vec![('v', 2000)],
            "changed sequence header sent in-band"
        );
        assert!(f.handle_message(v(0, false)).is_empty());
        assert_eq!(
            times(&f.handle_message(v(33, true))),
            vec![('m', 0), ('v', 2001), ('v', 2001)]
        );
        assert_eq!(times(&f.handle_message(v(66, false))), vec![('v', 2034)]);
    }
    #[test]
    fn video_only_source_gets_a_silent_aac_track() {
        let mut f = Forwarder::new(true);
        f.handle_message(MediaMessage::VideoConfig(avc(31)));
        f.handle_connected();
        let out = f.handle_message(v(1000, true));
        assert_eq!(
            times(&out),
            vec![('m', 0), ('v', 0), ('a', 0), ('a', 0), ('v', 0)]
        );
        assert_eq!(
            out[2],
            Outgoing::Audio {
                timestamp: 0,
                data: Bytes::from_static(SILENT_ASC_TAG)
            }
        );
        // One second of video brings one second of silence: frames at 0, 23.2, ... 998 ms.
        let mut audio = 1;
        for i in 1..=30 {
            audio += times(&f.handle_message(v(1000 + i * 33 + i / 3, false)))
                .iter()
                .filter(|(k, _)| *k == 'a')
                .count();
        }
        assert_eq!(audio, 44);
        // Without the option there is no audio at all.
        let mut plain = Forwarder::new(false);
        plain.handle_message(MediaMessage::VideoConfig(avc(31)));
        plain.handle_connected();
        assert_eq!(
            times(&plain.handle_message(v(1000, true))),
            vec![('m', 0), ('v', 0), ('v', 0)]
        );
    }

    #[test]
    fn audio_only_starts_at_once() {
        let mut f = Forwarder::new(false);
        f.handle_message(MediaMessage::AudioConfig(aac()));
        f.handle_connected();
        assert_eq!(
            times(&f.handle_message(a(700))),
            vec![('m', 0), ('a', 0), ('a', 0)]
        );
        assert_eq!(times(&f.handle_message(a(723))), vec![('a', 23)]);
    }

    #[test]
    fn timestamps_wrap_without_going_backwards() {
        let mut f = Forwarder::new(false);
        f.handle_message(MediaMessage::VideoConfig(avc(31)));
        f.handle_connected();
        f.handle_message(v(u32::MAX - 10, true));
        assert_eq!(times(&f.handle_message(v(22, false))), vec![('v', 33)]);
    }
}
