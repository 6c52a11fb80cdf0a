//! Cutting one track out of muxed fragments (DASH's single-track view).

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{Decode, Encode, Moof};

use super::CmafError;

/// Rewrites one track of muxed fragments (`moof` + `mdat`, one or more in a row, as in a part
/// made of chunks) as single-track fragments, for DASH, which wants one track per
/// representation. The samples are not copied: each fragment becomes a new `moof` + `mdat`
/// header followed by a slice of the original `mdat`. Fragments without samples of that
/// track contribute nothing.
pub fn extract_track(
    fragments: &Bytes,
    track_id: u32,
    new_track_id: u32,
) -> Result<Vec<Bytes>, CmafError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= fragments.len() {
        let mut cursor = &fragments[pos..];
        let moof = Moof::decode(&mut cursor)?;
        let moof_len = fragments.len() - pos - cursor.len();
        let Some(mdat_len) = fragments
            .get(pos + moof_len..pos + moof_len + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        else {
            break;
        };
        let next = pos + moof_len + mdat_len.max(8);
        if let Some(pair) = extract_one(fragments, pos, &moof, track_id, new_track_id)? {
            out.extend(pair);
        }
        pos = next;
    }
    Ok(out)
}

/// One track of the fragment whose `moof` starts at `pos`.
fn extract_one(
    fragments: &Bytes,
    pos: usize,
    moof: &Moof,
    track_id: u32,
    new_track_id: u32,
) -> Result<Option<[Bytes; 2]>, CmafError> {
    let Some(traf) = moof.traf.iter().find(|t| t.tfhd.track_id == track_id) else {
        return Ok(None);
    };
    let Some(trun) = traf.trun.first() else {
        return Ok(None);
    };
    // default-base-is-moof: offsets count from this fragment's moof.
    let offset = pos + trun.data_offset.unwrap_or(0).max(0) as usize;
    let size: usize = trun
        .samples
        .iter()
        .map(|e| e.size.unwrap_or(0) as usize)
        .sum();
    if size == 0 || offset + size > fragments.len() {
        return Ok(None);
    }
    let mut traf = traf.clone();
    traf.tfhd.track_id = new_track_id;
    let mut single = Moof {
        mfhd: moof.mfhd.clone(),
        traf: vec![traf],
    };
    let mut sized = Vec::new();
    single.encode(&mut sized)?;
    single.traf[0].trun[0].data_offset = Some((sized.len() + 8) as i32);
    let mut head = BytesMut::with_capacity(sized.len() + 8);
    let mut moof_bytes = Vec::with_capacity(sized.len());
    single.encode(&mut moof_bytes)?;
    head.put_slice(&moof_bytes);
    head.put_u32((size + 8) as u32);
    head.put_slice(b"mdat");
    Ok(Some([
        head.freeze(),
        fragments.slice(offset..offset + size),
    ]))
}
