//! Entry points of the fuzz targets (`fuzz/`) and of the corpus replay test: each takes
//! arbitrary bytes and must never panic, hang or grow memory without bound. Not an API.

use bytes::Bytes;

use crate::rtmp::handshake::PACKET;
use crate::rtmp::session::{Event, ServerSession, SessionConfig};

/// The RTMP server session fed `data` after a valid handshake (so the fuzzer spends its time
/// on chunks and commands), in pieces whose sizes the first byte picks; every publish is
/// accepted and every play refused, so media and later commands are reached too.
pub fn rtmp_session(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let mut s = ServerSession::new(SessionConfig::default());
    let mut hs = vec![3u8];
    hs.extend(std::iter::repeat_n(7u8, 2 * PACKET));
    if s.handle_input(&hs).is_err() {
        return;
    }
    let piece = usize::from(split).max(1);
    for chunk in data.chunks(piece) {
        if s.handle_input(chunk).is_err() {
            return;
        }
        while let Some(e) = s.poll_event() {
            let r = match e {
                Event::PublishRequested { request_id, .. } => s.accept_publish(request_id),
                Event::PlayRequested { request_id } => s.reject_play(request_id, "no"),
                _ => Ok(()),
            };
            if r.is_err() {
                return;
            }
        }
        s.poll_transmit();
    }
}

/// FLV audio and video tag bodies through one [`crate::flv::TagParser`]: `data` is a sequence
/// of `[kind, len_hi, len_lo, body…]` records (kind bit 0: video or audio).
pub fn flv_tags(data: &[u8]) {
    let mut p = crate::flv::TagParser::new();
    let mut rest = data;
    let mut dts = 0u32;
    while let [kind, hi, lo, tail @ ..] = rest {
        let n = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
        let body = Bytes::copy_from_slice(&tail[..n]);
        rest = &tail[n..];
        dts = dts.wrapping_add(33);
        let _ = if kind & 1 == 1 {
            p.handle_video(body, dts)
        } else {
            p.handle_audio(body, dts)
        };
    }
    let _ = crate::flv::read_file(&Bytes::copy_from_slice(data));
}

/// The publish path parser: app and stream name split at the first NUL byte.
pub fn publish_path(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (app, name) = text.split_once('\0').unwrap_or((&text, ""));
    let _ = crate::path::PublishTarget::from_rtmp(app, name);
    let _ = crate::path::PublishTarget::from_rtmp(name, app);
}
