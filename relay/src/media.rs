//! Media types shared by ingest, the stream hub, the packager and (later) restream.
//!
//! Every payload is a [`Bytes`] slice of what the publisher sent: nothing here copies media.
//! Each frame also keeps its complete FLV tag body so a restream can forward it byte for byte.

use std::sync::Arc;

use bytes::Bytes;

/// An H.264 decoder configuration (AVCDecoderConfigurationRecord) and what was read from its SPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// The AVCDecoderConfigurationRecord exactly as received.
    pub record: Bytes,
    /// The whole FLV video tag body carrying the record (for restream).
    pub tag: Bytes,
    pub profile: u8,
    pub compatibility: u8,
    pub level: u8,
    /// Bytes in each NAL unit length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    pub width: u32,
    pub height: u32,
}

impl AvcConfig {
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

/// An AAC decoder configuration (AudioSpecificConfig) and what was read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// The AudioSpecificConfig exactly as received.
    pub asc: Bytes,
    /// The whole FLV audio tag body carrying it (for restream).
    pub tag: Bytes,
    /// Audio object type (2 = AAC-LC).
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

impl AacConfig {
    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

/// One coded video picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Decode timestamp in milliseconds, as the RTMP peer sent it (32 bits, may wrap).
    pub dts: u32,
    /// Composition offset in milliseconds (PTS - DTS), signed.
    pub cts: i32,
    /// The picture contains an IDR slice (NAL type 5), so decoding can start here.
    pub idr: bool,
    /// Length-prefixed NAL units, as they go into an `mdat`.
    pub data: Bytes,
    /// The whole FLV video tag body (for restream).
    pub tag: Bytes,
}

/// One AAC access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// Decode timestamp in milliseconds, as the RTMP peer sent it (32 bits, may wrap).
    pub dts: u32,
    /// Raw AAC access unit.
    pub data: Bytes,
    /// The whole FLV audio tag body (for restream).
    pub tag: Bytes,
}

/// What flows from a publisher through the hub to every consumer of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaMessage {
    VideoConfig(Arc<AvcConfig>),
    AudioConfig(Arc<AacConfig>),
    Video(VideoFrame),
    Audio(AudioFrame),
    /// The publisher left; a new one may continue the stream within the grace period.
    PublisherLeft,
    /// A publisher (re)attached to a stream that was in its grace period: timestamps restart,
    /// codec configs will be sent again.
    PublisherResumed,
}

impl MediaMessage {
    /// True for a video frame a decoder can start at.
    pub fn is_keyframe(&self) -> bool {
        matches!(self, MediaMessage::Video(f) if f.idr)
    }

    /// Payload size in bytes (0 for control messages).
    pub fn payload_len(&self) -> usize {
        match self {
            MediaMessage::Video(f) => f.tag.len(),
            MediaMessage::Audio(f) => f.tag.len(),
            MediaMessage::VideoConfig(c) => c.tag.len(),
            MediaMessage::AudioConfig(c) => c.tag.len(),
            _ => 0,
        }
    }
}
