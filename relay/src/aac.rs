//! AAC AudioSpecificConfig parsing (ISO/IEC 14496-3 1.6.2.1), just enough to describe the track.

use crate::bits::BitReader;

const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// What was read from an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AscInfo {
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AscError {
    #[error("AudioSpecificConfig is truncated")]
    Truncated,
    #[error("AudioSpecificConfig has invalid sampling frequency index {0}")]
    SampleRate(u32),
    #[error("AudioSpecificConfig has unsupported channel configuration {0}")]
    Channels(u32),
}

/// Parses the start of an AudioSpecificConfig.
pub fn parse_asc(asc: &[u8]) -> Result<AscInfo, AscError> {
    let mut r = BitReader::new(asc);
    let mut object_type = r.bits(5).map_err(|_| AscError::Truncated)?;
    if object_type == 31 {
        object_type = 32 + r.bits(6).map_err(|_| AscError::Truncated)?;
    }
    let freq_index = r.bits(4).map_err(|_| AscError::Truncated)?;
    let sample_rate = if freq_index == 15 {
        r.bits(24).map_err(|_| AscError::Truncated)?
    } else {
        *SAMPLE_RATES
            .get(freq_index as usize)
            .ok_or(AscError::SampleRate(freq_index))?
    };
    if sample_rate == 0 {
        return Err(AscError::SampleRate(freq_index));
    }
    let channel_config = r.bits(4).map_err(|_| AscError::Truncated)?;
    let channels = match channel_config {
        1..=6 => channel_config as u8,
        7 => 8,
        other => return Err(AscError::Channels(other)),
    };
    Ok(AscInfo {
        object_type: object_type as u8,
        sample_rate,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_44100_mono() {
        // AAC-LC, index 4 (44100), mono: 00010 0100 0001 000
        assert_eq!(
            parse_asc(&[0x12, 0x08]),
            Ok(AscInfo {
                object_type: 2,
                sample_rate: 44100,
                channels: 1
            })
        );
    }

    #[test]
    fn lc_48000_stereo() {
        assert_eq!(
            parse_asc(&[0x11, 0x90]),
            Ok(AscInfo {
                object_type: 2,
                sample_rate: 48000,
                channels: 2
            })
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse_asc(&[0x12]), Err(AscError::Truncated));
        assert_eq!(parse_asc(&[0x16, 0x88]), Err(AscError::SampleRate(13)));
        assert_eq!(parse_asc(&[0x12, 0x00]), Err(AscError::Channels(0)));
    }
}
