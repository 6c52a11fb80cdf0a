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
    extract(fragments, track_id, new_track_id, true)
}

/// [`extract_track`]; `in_place`: cut fragments of our own shape without decoding them.
fn extract(
    fragments: &Bytes,
    track_id: u32,
    new_track_id: u32,
    in_place: bool,
) -> Result<Vec<Bytes>, CmafError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= fragments.len() {
        // Our own fragments (one traf per track, one trun with sizes) are cut by patching
        // their bytes; anything else is decoded and re-encoded.
        let declared = be32(fragments, pos).unwrap_or(0) as usize;
        if in_place
            && &fragments[pos + 4..pos + 8] == b"moof"
            && declared >= 8
            && let Some(cut) = cut_in_place(fragments, pos, declared, track_id, new_track_id)
        {
            let Some(mdat_len) = be32(fragments, pos + declared) else {
                break;
            };
            out.extend(cut.into_iter().flatten());
            pos += declared + (mdat_len as usize).max(8);
            continue;
        }
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

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The boxes directly inside `b[start..end]`: (type, start, end) of each; `None` if they do not
/// fill it exactly.
fn children(b: &[u8], start: usize, end: usize) -> Option<Vec<([u8; 4], usize, usize)>> {
    let mut out = Vec::new();
    let mut i = start;
    while i < end {
        let size = be32(b, i)? as usize;
        if size < 8 || i.checked_add(size)? > end {
            return None;
        }
        let kind: [u8; 4] = b.get(i + 4..i + 8)?.try_into().ok()?;
        out.push((kind, i, i + size));
        i += size;
    }
    Some(out)
}

/// [`extract_one`] without decoding: the `moof` keeps its `mfhd` and the track's `traf` as
/// they are, with the track id and the data offset patched. `None` when the fragment is not
/// of the simple shape this handles (then the caller decodes it); `Some(None)` when it has no
/// samples of that track.
fn cut_in_place(
    f: &Bytes,
    pos: usize,
    moof_len: usize,
    track_id: u32,
    new_track_id: u32,
) -> Option<Option<[Bytes; 2]>> {
    const TRUN_DATA_OFFSET: u32 = 0x1;
    const TRUN_FIRST_FLAGS: u32 = 0x4;
    const TFHD_BASE_DATA_OFFSET: u32 = 0x1;
    let moof_end = pos.checked_add(moof_len)?;
    let boxes = children(f, pos + 8, moof_end)?;
    let mut mfhd = None;
    let mut traf = None;
    for (kind, start, end) in boxes {
        match &kind {
            b"mfhd" => mfhd = Some((start, end)),
            b"traf" => {
                let inner = children(f, start + 8, end)?;
                let (_, tfhd, _) = *inner.iter().find(|(k, _, _)| k == b"tfhd")?;
                if be32(f, tfhd + 12)? == track_id {
                    if traf.is_some() {
                        return None;
                    }
                    traf = Some((start, end, inner));
                }
            }
            _ => return None,
        }
    }
    let (m_start, m_end) = mfhd?;
    let Some((t_start, t_end, inner)) = traf else {
        return Some(None);
    };
    let (_, tfhd, _) = *inner.iter().find(|(k, _, _)| k == b"tfhd")?;
    if be32(f, tfhd + 8)? & TFHD_BASE_DATA_OFFSET != 0 {
        return None;
    }
    let mut truns = inner.iter().filter(|(k, _, _)| k == b"trun");
    let (_, trun, trun_end) = *truns.next()?;
    if truns.next().is_some() {
        return None;
    }
    let flags = be32(f, trun + 8)? & 0x00ff_ffff;
    if flags & TRUN_DATA_OFFSET == 0 || flags & 0x200 == 0 {
        return None;
    }
    let count = be32(f, trun + 12)? as usize;
    let data_offset = be32(f, trun + 16)? as i32;
    let mut entries = trun + 20 + if flags & TRUN_FIRST_FLAGS != 0 { 4 } else { 0 };
    let per_entry = [0x100u32, 0x200, 0x400, 0x800]
        .iter()
        .filter(|bit| flags & **bit != 0)
        .count()
        * 4;
    let size_at = if flags & 0x100 != 0 { 4 } else { 0 };
    if entries.checked_add(count.checked_mul(per_entry)?)? > trun_end {
        return None;
    }
    let mut size = 0usize;
    for _ in 0..count {
        size += be32(f, entries + size_at)? as usize;
        entries += per_entry;
    }
    // default-base-is-moof: offsets count from this fragment's moof.
    let offset = pos + data_offset.max(0) as usize;
    if size == 0 || offset.checked_add(size)? > f.len() {
        return Some(None);
    }
    let new_len = 8 + (m_end - m_start) + (t_end - t_start);
    let mut head = BytesMut::with_capacity(new_len + 8);
    head.put_u32(new_len as u32);
    head.put_slice(b"moof");
    head.put_slice(&f[m_start..m_end]);
    let traf_at = head.len();
    head.put_slice(&f[t_start..t_end]);
    let patch = |head: &mut BytesMut, at: usize, v: u32| {
        head[at..at + 4].copy_from_slice(&v.to_be_bytes());
    };
    patch(&mut head, traf_at + (tfhd - t_start) + 12, new_track_id);
    patch(
        &mut head,
        traf_at + (trun - t_start) + 16,
        (new_len + 8) as u32,
    );
    head.put_u32((size + 8) as u32);
    head.put_slice(b"mdat");
    Some(Some([head.freeze(), f.slice(offset..offset + size)]))
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

/// The decoding path, for comparison with the in-place cut.
#[cfg(test)]
pub(crate) fn extract_track_decoded(
    fragments: &Bytes,
    track_id: u32,
    new_track_id: u32,
) -> Result<Vec<Bytes>, CmafError> {
    extract(fragments, track_id, new_track_id, false)
}

/// Whether the first fragment of `fragments` is cut in place (not decoded) for `track_id`.
#[cfg(test)]
pub(crate) fn cut_in_place_handles(fragments: &Bytes, track_id: u32) -> bool {
    let len = be32(fragments, 0).unwrap_or(0) as usize;
    matches!(cut_in_place(fragments, 0, len, track_id, 1), Some(Some(_)))
}
