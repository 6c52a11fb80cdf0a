//! H.264 pieces the relay needs: the AVCDecoderConfigurationRecord, picture size from the SPS,
//! and whether a length-prefixed access unit holds an IDR slice. Never decodes pictures.

use crate::bits::{BitReader, EndOfData, unescape_rbsp};

/// What was read from an AVCDecoderConfigurationRecord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcRecord {
    pub profile: u8,
    pub compatibility: u8,
    pub level: u8,
    pub nal_length_size: u8,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvcError {
    #[error("AVC decoder configuration record is truncated")]
    Truncated,
    #[error("AVC decoder configuration record has version {0}, expected 1")]
    Version(u8),
    #[error("AVC decoder configuration record has no SPS")]
    NoSps,
    #[error("SPS could not be parsed")]
    BadSps,
}

impl From<EndOfData> for AvcError {
    fn from(_: EndOfData) -> Self {
        AvcError::BadSps
    }
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
pub fn parse_record(rec: &[u8]) -> Result<AvcRecord, AvcError> {
    if rec.len() < 7 {
        return Err(AvcError::Truncated);
    }
    if rec[0] != 1 {
        return Err(AvcError::Version(rec[0]));
    }
    let nal_length_size = (rec[4] & 0x03) + 1;
    if nal_length_size == 3 {
        // 3 is reserved/invalid in practice; nobody sends it and we could not parse it.
        return Err(AvcError::Truncated);
    }
    let num_sps = rec[5] & 0x1f;
    if num_sps == 0 {
        return Err(AvcError::NoSps);
    }
    let sps_len = usize::from(u16::from_be_bytes([
        rec[6],
        *rec.get(7).ok_or(AvcError::Truncated)?,
    ]));
    let sps = rec.get(8..8 + sps_len).ok_or(AvcError::Truncated)?;
    let (width, height) = sps_dimensions(sps)?;
    Ok(AvcRecord {
        profile: rec[1],
        compatibility: rec[2],
        level: rec[3],
        nal_length_size,
        width,
        height,
    })
}

/// Width and height in pixels from an SPS NAL unit (with its one-byte NAL header).
pub fn sps_dimensions(sps_nal: &[u8]) -> Result<(u32, u32), AvcError> {
    if sps_nal.len() < 4 || sps_nal[0] & 0x1f != 7 {
        return Err(AvcError::BadSps);
    }
    let rbsp = unescape_rbsp(&sps_nal[1..]);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)?;
    r.skip(16)?; // constraint flags + level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = 0;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    let poc_type = r.ue()?;
    if poc_type == 0 {
        r.ue()?;
    } else if poc_type == 1 {
        r.bit()?;
        r.se()?;
        r.se()?;
        let n = r.ue()?;
        if n > 255 {
            return Err(AvcError::BadSps);
        }
        for _ in 0..n {
            r.se()?;
        }
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    // In u64: every Exp-Golomb value may be up to 2^32 - 1, and the arithmetic below must not
    // overflow on a hostile SPS.
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = u64::from(r.bit()?);
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0u64, 0u64, 0u64, 0u64);
    if r.bit()? == 1 {
        crop_l = u64::from(r.ue()?);
        crop_r = u64::from(r.ue()?);
        crop_t = u64::from(r.ue()?);
        crop_b = u64::from(r.ue()?);
    }
    let chroma_array_type = if separate_colour_plane == 1 {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h): (u64, u64) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let (crop_unit_x, crop_unit_y) = if chroma_array_type == 0 {
        (1, 2 - frame_mbs_only)
    } else {
        (sub_w, sub_h * (2 - frame_mbs_only))
    };
    let width = (width_mbs * 16)
        .checked_sub(crop_unit_x * (crop_l + crop_r))
        .ok_or(AvcError::BadSps)?;
    let height = (height_map_units * 16 * (2 - frame_mbs_only))
        .checked_sub(crop_unit_y * (crop_t + crop_b))
        .ok_or(AvcError::BadSps)?;
    if width == 0 || height == 0 || width > 16384 || height > 16384 {
        return Err(AvcError::BadSps);
    }
    Ok((width as u32, height as u32))
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), EndOfData> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (i64::from(last) + i64::from(delta)).rem_euclid(256) as i32;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// The SPS and PPS NAL units of an AVCDecoderConfigurationRecord, each prefixed with a
/// `nal_length_size`-byte length, ready to be put in front of an access unit.
pub fn parameter_sets(rec: &[u8], nal_length_size: u8) -> Result<Vec<u8>, AvcError> {
    let byte = |i: usize| rec.get(i).copied().ok_or(AvcError::Truncated);
    let mut out = Vec::new();
    let mut pos = 5;
    // numOfSequenceParameterSets (low 5 bits), then numOfPictureParameterSets (8 bits).
    for count_mask in [0x1f, 0xff] {
        let count = byte(pos)? & count_mask;
        pos += 1;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([byte(pos)?, byte(pos + 1)?]));
            let nal = rec.get(pos + 2..pos + 2 + len).ok_or(AvcError::Truncated)?;
            let prefix = (len as u32).to_be_bytes();
            out.extend_from_slice(&prefix[4 - usize::from(nal_length_size.clamp(1, 4))..]);
            out.extend_from_slice(nal);
            pos += 2 + len;
        }
    }
    Ok(out)
}

/// True when the length-prefixed access unit contains a NAL unit of type `nal_type`.
/// A malformed length prefix ends the scan and counts as "not found".
pub fn contains_nal(au: &[u8], nal_length_size: u8, nal_type: u8) -> bool {
    let n = usize::from(nal_length_size);
    let mut pos = 0;
    while pos + n < au.len() {
        let mut len = 0usize;
        for &b in &au[pos..pos + n] {
            len = (len << 8) | usize::from(b);
        }
        pos += n;
        if len == 0 || pos + len > au.len() {
            return false;
        }
        if au[pos] & 0x1f == nal_type {
            return true;
        }
        pos += len;
    }
    false
}

/// True when the length-prefixed access unit contains an IDR slice (NAL type 5).
/// A malformed length prefix ends the scan and counts as "no IDR".
pub fn contains_idr(au: &[u8], nal_length_size: u8) -> bool {
    contains_nal(au, nal_length_size, 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPS from an x264 1280x720 High profile stream (level 3.1).
    const SPS_720P: [u8; 28] = [
        103, 100, 0, 31, 172, 217, 128, 80, 5, 187, 1, 106, 2, 2, 2, 128, 0, 0, 3, 0, 128, 0, 0,
        30, 7, 140, 24, 205,
    ];

    #[test]
    fn sps_720p() {
        assert_eq!(sps_dimensions(&SPS_720P), Ok((1280, 720)));
    }

    #[test]
    fn record_720p() {
        let mut rec = vec![1, 100, 0, 31, 0xff, 0xe1, 0, SPS_720P.len() as u8];
        rec.extend_from_slice(&SPS_720P);
        rec.extend_from_slice(&[1, 0, 5, 104, 233, 123, 44, 139]);
        let r = parse_record(&rec).expect("valid record");
        assert_eq!((r.width, r.height, r.nal_length_size), (1280, 720, 4));
        assert_eq!((r.profile, r.level), (100, 31));
    }

    #[test]
    fn record_errors() {
        assert_eq!(parse_record(&[1, 2, 3]), Err(AvcError::Truncated));
        assert_eq!(
            parse_record(&[0, 100, 0, 31, 0xff, 0xe1, 0, 1]),
            Err(AvcError::Version(0))
        );
        assert_eq!(
            parse_record(&[1, 100, 0, 31, 0xff, 0xe0, 0]),
            Err(AvcError::NoSps)
        );
        assert_eq!(
            parse_record(&[1, 100, 0, 31, 0xff, 0xe1, 0, 40, 103]),
            Err(AvcError::Truncated)
        );
    }

    #[test]
    fn parameter_sets_are_length_prefixed() {
        let mut rec = vec![1, 100, 0, 31, 0xff, 0xe1, 0, SPS_720P.len() as u8];
        rec.extend_from_slice(&SPS_720P);
        rec.extend_from_slice(&[1, 0, 5, 104, 233, 123, 44, 139]);
        let ps = parameter_sets(&rec, 4).unwrap();
        assert_eq!(&ps[..4], &[0, 0, 0, SPS_720P.len() as u8]);
        assert_eq!(&ps[4..4 + SPS_720P.len()], &SPS_720P);
        assert_eq!(
            &ps[4 + SPS_720P.len()..],
            &[0, 0, 0, 5, 104, 233, 123, 44, 139]
        );
        assert!(contains_nal(&ps, 4, 7) && contains_nal(&ps, 4, 8));
        assert_eq!(parameter_sets(&rec[..12], 4), Err(AvcError::Truncated));
    }

    #[test]
    fn idr_detection() {
        let non_idr = [0, 0, 0, 2, 0x41, 0x9a];
        let sei_then_idr = [0, 0, 0, 2, 0x06, 0x05, 0, 0, 0, 2, 0x65, 0x88];
        assert!(!contains_idr(&non_idr, 4));
        assert!(contains_idr(&sei_then_idr, 4));
        // A length that runs past the end is not trusted.
        assert!(!contains_idr(&[0, 0, 0, 9, 0x65], 4));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(data: Vec<u8>) {
            let _ = parse_record(&data);
            let _ = sps_dimensions(&data);
            let _ = contains_idr(&data, 4);
            let _ = contains_idr(&data, 1);
            let _ = parameter_sets(&data, 4);
        }
    }
}
