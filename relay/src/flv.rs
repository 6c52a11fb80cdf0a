//! FLV audio/video tag bodies (as carried in RTMP messages) to [`MediaMessage`]s.
//!
//! Sans-IO: [`TagParser`] holds only the codec state needed to interpret the next tag
//! (the NAL length size from the last AVC sequence header). It never copies payloads.

use std::sync::Arc;

use bytes::Bytes;

use crate::aac::{AscError, parse_asc};
use crate::h264::{AvcError, contains_idr, parse_record};
use crate::media::{AacConfig, AudioFrame, AvcConfig, MediaMessage, VideoFrame};

const CODEC_AVC: u8 = 7;
const SOUND_AAC: u8 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("{kind} tag is truncated ({len} bytes)")]
    Truncated { kind: &'static str, len: usize },
    #[error("video codec id {0} is not supported (only H.264/AVC, id 7)")]
    UnsupportedVideoCodec(u8),
    /// Enhanced RTMP: a FourCC video header (`hvc1`, `av01`, `vp09`, …).
    #[error("video codec {0} ({fourcc}) is not supported yet: publish H.264/AVC", fourcc = codec_name(.0))]
    UnsupportedFourCc(String),
    #[error("audio format {0} is not supported (only AAC, format 10)")]
    UnsupportedAudioFormat(u8),
    #[error("invalid AVC sequence header: {0}")]
    Avc(#[from] AvcError),
    #[error("invalid AAC sequence header: {0}")]
    Aac(#[from] AscError),
    #[error("AVC packet type {0} is unknown")]
    AvcPacketType(u8),
    #[error("not an FLV file (bad signature)")]
    NotFlv,
}

/// A readable name for an Enhanced RTMP FourCC.
fn codec_name(fourcc: &str) -> &'static str {
    match fourcc {
        "hvc1" => "HEVC",
        "av01" => "AV1",
        "vp09" => "VP9",
        "avc1" => "H.264 in an Enhanced RTMP header",
        _ => "unknown",
    }
}

impl FlvError {
    /// True when the publisher's video can never be packaged (a codec we do not support):
    /// the publish should be refused rather than served without picture.
    pub fn is_unsupported_video_codec(&self) -> bool {
        matches!(
            self,
            FlvError::UnsupportedVideoCodec(_) | FlvError::UnsupportedFourCc(_)
        )
    }
}

/// The type of a tag in an FLV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
    Script,
}

/// One tag of an FLV file: what an RTMP publisher sends as one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTag {
    pub kind: TagKind,
    /// Milliseconds (timestamp + extended byte).
    pub timestamp: u32,
    pub body: Bytes,
}

/// Splits an FLV file into its tags (for replaying fixtures in tests, benchmarks and the load
/// generator). Unknown tag types are skipped; a truncated last tag is an error.
pub fn read_file(data: &Bytes) -> Result<Vec<FileTag>, FlvError> {
    if data.len() < 9 || &data[..3] != b"FLV" {
        return Err(FlvError::NotFlv);
    }
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut pos = header_len + 4; // header, then PreviousTagSize0
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let size = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = pos + 11;
        let end = start + size;
        if end > data.len() {
            return Err(FlvError::Truncated {
                kind: "file",
                len: data.len() - start,
            });
        }
        let kind = match h[0] & 0x1f {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        };
        if let Some(kind) = kind {
            tags.push(FileTag {
                kind,
                timestamp,
                body: data.slice(start..end),
            });
        }
        pos = end + 4; // PreviousTagSize
    }
    Ok(tags)
}

/// Turns FLV tag bodies into media messages, remembering the codec state between tags.
#[derive(Debug, Default)]
pub struct TagParser {
    nal_length_size: Option<u8>,
}

impl TagParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one video tag body. `Ok(None)` for tags that carry nothing to package
    /// (AVC end-of-sequence, empty keepalive tags).
    pub fn handle_video(&mut self, tag: Bytes, dts: u32) -> Result<Option<MediaMessage>, FlvError> {
        if tag.is_empty() {
            return Ok(None);
        }
        if tag[0] & 0x80 != 0 {
            // Enhanced RTMP (IsExHeader): a FourCC follows the packet type.
            let fourcc = tag
                .get(1..5)
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .unwrap_or_default();
            return Err(FlvError::UnsupportedFourCc(fourcc));
        }
        let codec = tag[0] & 0x0f;
        if codec != CODEC_AVC {
            return Err(FlvError::UnsupportedVideoCodec(codec));
        }
        if tag.len() < 5 {
            return Err(FlvError::Truncated {
                kind: "video",
                len: tag.len(),
            });
        }
        let frame_type = tag[0] >> 4;
        if frame_type == 5 {
            // Video info/command frame: no picture.
            return Ok(None);
        }
        // SI24 composition time offset.
        let cts =
            ((i32::from(tag[2]) << 24) | (i32::from(tag[3]) << 16) | (i32::from(tag[4]) << 8)) >> 8;
        match tag[1] {
            0 => {
                let record = tag.slice(5..);
                let info = parse_record(&record)?;
                self.nal_length_size = Some(info.nal_length_size);
                Ok(Some(MediaMessage::VideoConfig(Arc::new(AvcConfig {
                    record,
                    tag,
                    profile: info.profile,
                    compatibility: info.compatibility,
                    level: info.level,
                    nal_length_size: info.nal_length_size,
                    width: info.width,
                    height: info.height,
                }))))
            }
            1 => {
                let data = tag.slice(5..);
                if data.is_empty() {
                    return Ok(None);
                }
                let idr = match self.nal_length_size {
                    Some(n) => contains_idr(&data, n),
                    // No sequence header yet: nothing can be decoded anyway.
                    None => false,
                };
                Ok(Some(MediaMessage::Video(VideoFrame {
                    dts,
                    cts,
                    idr,
                    data,
                    tag,
                })))
            }
            2 => Ok(None),
            other => Err(FlvError::AvcPacketType(other)),
        }
    }

    /// Parses one audio tag body. `Ok(None)` for empty tags.
    pub fn handle_audio(&mut self, tag: Bytes, dts: u32) -> Result<Option<MediaMessage>, FlvError> {
        if tag.is_empty() {
            return Ok(None);
        }
        let format = tag[0] >> 4;
        if format != SOUND_AAC {
            return Err(FlvError::UnsupportedAudioFormat(format));
        }
        if tag.len() < 2 {
            return Err(FlvError::Truncated {
                kind: "audio",
                len: tag.len(),
            });
        }
        if tag[1] == 0 {
            let asc = tag.slice(2..);
            let info = parse_asc(&asc)?;
            return Ok(Some(MediaMessage::AudioConfig(Arc::new(AacConfig {
                asc,
                tag,
                object_type: info.object_type,
                sample_rate: info.sample_rate,
                channels: info.channels,
            }))));
        }
        let data = tag.slice(2..);
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(MediaMessage::Audio(AudioFrame { dts, data, tag })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: [u8; 28] = [
        103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2, 2, 128, 0, 0, 3, 0, 128, 0, 0,
        30, 7, 140, 24, 205,
    ];

    fn avc_seq_header() -> Bytes {
        let mut t = vec![
            0x17,
            0,
            0,
            0,
            0,
            1,
            100,
            0,
            31,
            0xff,
            0xe1,
            0,
            SPS.len() as u8,
        ];
        t.extend_from_slice(&SPS);
        t.extend_from_slice(&[1, 0, 5, 104, 233, 123, 44, 139]);
        Bytes::from(t)
    }

    #[test]
    fn video_config_then_frames() {
        let mut p = TagParser::new();
        let Some(MediaMessage::VideoConfig(c)) = p.handle_video(avc_seq_header(), 0).unwrap()
        else {
            panic!("expected config")
        };
        assert_eq!((c.width, c.height), (1280, 720));
        assert_eq!(c.codec_string(), "avc1.64001f");

        // Keyframe with composition offset +66 ms and an IDR NAL.
        let idr = Bytes::from_static(&[0x17, 1, 0, 0, 66, 0, 0, 0, 2, 0x65, 0x88]);
        let Some(MediaMessage::Video(f)) = p.handle_video(idr, 1000).unwrap() else {
            panic!("expected frame")
        };
        assert_eq!((f.dts, f.cts, f.idr), (1000, 66, true));
        assert_eq!(&f.data[..], &[0, 0, 0, 2, 0x65, 0x88]);

        // Negative composition offset (-33 ms as SI24).
        let b = Bytes::from_static(&[0x27, 1, 0xff, 0xff, 0xdf, 0, 0, 0, 2, 0x41, 0x9a]);
        let Some(MediaMessage::Video(f)) = p.handle_video(b, 1033).unwrap() else {
            panic!("expected frame")
        };
        assert_eq!((f.cts, f.idr), (-33, false));
    }

    #[test]
    fn keyframe_flag_without_idr_nal_is_not_idr() {
        let mut p = TagParser::new();
        p.handle_video(avc_seq_header(), 0).unwrap();
        let recovery_point = Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a]);
        let Some(MediaMessage::Video(f)) = p.handle_video(recovery_point, 0).unwrap() else {
            panic!("expected frame")
        };
        assert!(!f.idr);
    }

    #[test]
    fn audio_config_and_frame() {
        let mut p = TagParser::new();
        let Some(MediaMessage::AudioConfig(c)) = p
            .handle_audio(Bytes::from_static(&[0xaf, 0, 0x12, 0x08]), 0)
            .unwrap()
        else {
            panic!("expected config")
        };
        assert_eq!((c.sample_rate, c.channels), (44100, 1));
        let Some(MediaMessage::Audio(f)) = p
            .handle_audio(Bytes::from_static(&[0xaf, 1, 0x21, 0x10]), 23)
            .unwrap()
        else {
            panic!("expected frame")
        };
        assert_eq!(&f.data[..], &[0x21, 0x10]);
    }

    #[test]
    fn errors_are_reported() {
        let mut p = TagParser::new();
        assert_eq!(
            p.handle_video(Bytes::from_static(&[0x12, 0]), 0),
            Err(FlvError::UnsupportedVideoCodec(2))
        );
        assert_eq!(
            p.handle_audio(Bytes::from_static(&[0x2f, 0]), 0),
            Err(FlvError::UnsupportedAudioFormat(2))
        );
        assert!(matches!(
            p.handle_video(Bytes::from_static(&[0x17, 0]), 0),
            Err(FlvError::Truncated { .. })
        ));
        assert_eq!(
            p.handle_video(Bytes::from_static(&[0x17, 9, 0, 0, 0]), 0),
            Err(FlvError::AvcPacketType(9))
        );
    }

    #[test]
    fn fixture_file_parses_completely() {
        let data = Bytes::from_static(include_bytes!(
            "../../origin/benches/fixtures/glasses-720p30.flv"
        ));
        let tags = read_file(&data).unwrap();
        let mut p = TagParser::new();
        let (mut video, mut audio, mut idr, mut configs) = (0, 0, 0, 0);
        for t in tags {
            let msg = match t.kind {
                TagKind::Video => p.handle_video(t.body, t.timestamp).unwrap(),
                TagKind::Audio => p.handle_audio(t.body, t.timestamp).unwrap(),
                TagKind::Script => None,
            };
            match msg {
                Some(MediaMessage::Video(f)) => {
                    video += 1;
                    idr += usize::from(f.idr);
                }
                Some(MediaMessage::Audio(_)) => audio += 1,
                Some(MediaMessage::VideoConfig(c)) => {
                    configs += 1;
                    assert_eq!((c.width, c.height), (1280, 720));
                }
                Some(MediaMessage::AudioConfig(c)) => {
                    configs += 1;
                    assert_eq!((c.sample_rate, c.channels), (44100, 1));
                }
                _ => {}
            }
        }
        // 4 s at 30 fps with a 2 s GOP; AAC at 44.1 kHz (ffprobe counts the same packets).
        assert_eq!((video, idr, audio, configs), (120, 2, 174, 2));
    }

    #[test]
    fn file_errors() {
        assert_eq!(
            read_file(&Bytes::from_static(b"MP4")),
            Err(FlvError::NotFlv)
        );
        let mut f = b"FLV\x01\x05\0\0\0\x09\0\0\0\0".to_vec();
        f.extend_from_slice(&[9, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert!(matches!(
            read_file(&Bytes::from(f)),
            Err(FlvError::Truncated { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_garbage(v: Vec<u8>, a: Vec<u8>, ts: u32) {
            let mut p = TagParser::new();
            let _ = p.handle_video(Bytes::from(v), ts);
            let _ = p.handle_audio(Bytes::from(a.clone()), ts);
            let mut file = b"FLV\x01\x05\0\0\0\x09".to_vec();
            file.extend_from_slice(&a);
            let _ = read_file(&Bytes::from(file));
        }
    }
}
