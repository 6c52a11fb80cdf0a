//! The RTMP chunk stream, reading side: splits the bytes after the handshake into messages,
//! per chunk stream id, whatever the interleaving (a chunk of one message between two chunks
//! of another is legal and some encoders do it). Sans-IO: `push` bytes, `next` messages.
//!
//! Nothing the peer declares is trusted: a message is buffered as its bytes arrive (never
//! allocated from its declared length), and the message length, the number of chunk streams
//! and the reassembly memory of the connection are bounded.

use bytes::{Buf, Bytes, BytesMut};

/// One complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    pub type_id: u8,
    pub stream_id: u32,
    /// Milliseconds (32 bits, wrapping).
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Limits on what one connection may make this side hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Longest message accepted (RTMP allows 16 MiB - 1).
    pub max_message: usize,
    /// Bytes of partial messages held across all chunk streams.
    pub max_reassembly: usize,
    /// Chunk stream ids in use at once.
    pub max_chunk_streams: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self {
            // A 4K keyframe at a high bitrate is a few MiB.
            max_message: 8 << 20,
            max_reassembly: 16 << 20,
            max_chunk_streams: 64,
        }
    }
}

/// Why the chunk stream cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("message of {0} bytes is over the limit")]
    MessageTooLarge(usize),
    #[error("more than {0} chunk streams in use")]
    TooManyChunkStreams(usize),
    #[error("partial messages would hold more than {0} bytes")]
    ReassemblyMemory(usize),
    #[error("chunk of type {fmt} on chunk stream {csid}, which has no previous header")]
    NoPreviousHeader { fmt: u8, csid: u32 },
    #[error("chunk size {0} is invalid")]
    ChunkSize(u32),
}

impl ChunkError {
    /// `rtmp_errors_total{kind}` label.
    pub fn kind(&self) -> &'static str {
        match self {
            ChunkError::MessageTooLarge(_) => "message_too_large",
            ChunkError::TooManyChunkStreams(_) => "too_many_chunk_streams",
            ChunkError::ReassemblyMemory(_) => "reassembly_memory",
            ChunkError::NoPreviousHeader { .. } | ChunkError::ChunkSize(_) => "protocol",
        }
    }
}

/// What a chunk stream remembers between chunks.
#[derive(Debug, Default)]
struct ChunkStream {
    /// The message header fields of the last chunk that carried them.
    timestamp: u32,
    /// The value type-3 headers repeat: the last delta, or for a type 0 header its timestamp
    /// (RTMP 1.0, 5.3.1.2.4).
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The last header used the extended timestamp field (type 3 chunks may repeat it).
    extended: bool,
    /// The 32-bit value last read from an extended timestamp field.
    extended_value: u32,
    /// The message being assembled (empty between messages).
    partial: BytesMut,
    /// A message is in progress (its first chunk was read).
    in_progress: bool,
}

/// The reading side of a chunk stream.
#[derive(Debug)]
pub struct ChunkReader {
    limits: ChunkLimits,
    chunk_size: usize,
    buf: BytesMut,
    streams: std::collections::HashMap<u32, ChunkStream>,
    /// Bytes held in partial messages.
    held: usize,
}

fn u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

impl ChunkReader {
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            limits,
            chunk_size: 128,
            buf: BytesMut::new(),
            streams: std::collections::HashMap::new(),
            held: 0,
        }
    }

    /// Applies the peer's Set Chunk Size (1 to 2^31 - 1; larger than a message is the same as
    /// a message's length).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > 0x7fff_ffff {
            return Err(ChunkError::ChunkSize(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Drops a partially received message (Abort message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.get_mut(&csid) {
            self.held -= s.partial.len();
            s.partial = BytesMut::new();
            s.in_progress = false;
        }
    }

    /// Bytes buffered, unparsed or in partial messages.
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.held
    }

    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ChunkError> {
        loop {
            match self.chunk()? {
                Step::Message(m) => return Ok(Some(m)),
                Step::Partial => {}
                Step::NeedMore => return Ok(None),
            }
        }
    }

    /// Reads one chunk if it is all there.
    fn chunk(&mut self) -> Result<Step, ChunkError> {
        let b = &self.buf[..];
        let Some(&first) = b.first() else {
            return Ok(Step::NeedMore);
        };
        let fmt = first >> 6;
        let (csid, mut pos) = match first & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (64 + u32::from(x), 2),
                None => return Ok(Step::NeedMore),
            },
            1 => match b.get(1..3) {
                Some(x) => (64 + u32::from(x[0]) + (u32::from(x[1]) << 8), 3),
                None => return Ok(Step::NeedMore),
            },
            n => (u32::from(n), 1),
        };
        let header_len = [11, 7, 3, 0][fmt as usize];
        let mut h = [0u8; 11];
        match b.get(pos..pos + header_len) {
            Some(x) => h[..header_len].copy_from_slice(x),
            None => return Ok(Step::NeedMore),
        }
        pos += header_len;
        // Type 2 and 3 only make sense after a header on the same chunk stream; a first type
        // 1 (some clients) starts a fresh stream on message stream 0.
        if !self.streams.contains_key(&csid) && self.streams.len() >= self.limits.max_chunk_streams
        {
            return Err(ChunkError::TooManyChunkStreams(
                self.limits.max_chunk_streams,
            ));
        }
        let st = self.streams.get(&csid);
        let prev_extended = st.is_some_and(|s| s.extended);
        let prev_extended_value = st.map_or(0, |s| s.extended_value);
        let in_progress = st.is_some_and(|s| s.in_progress);
        // The 24-bit time field and whether an extended one follows.
        let field = if fmt < 3 { u24(&h[0..3]) } else { 0 };
        let mut extended = fmt < 3 && field == 0xff_ffff;
        let mut ext_value = 0;
        if extended {
            let Some(x) = b.get(pos..pos + 4) else {
                return Ok(Step::NeedMore);
            };
            ext_value = u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
            pos += 4;
        } else if fmt == 3 && prev_extended {
            // Most encoders repeat the extended field on type 3 chunks, some do not. Within a
            // message the value must be the same as before, so a match means it is there.
            // At a new message there is no way to tell; the spec and ffmpeg repeat it.
            let Some(x) = b.get(pos..pos + 4) else {
                return Ok(Step::NeedMore);
            };
            let v = u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
            if !in_progress || v == prev_extended_value {
                extended = true;
                ext_value = v;
                pos += 4;
            }
        }
        // The header this chunk gives its message, computed before anything is changed (the
        // chunk may not be complete yet, and then it is read again).
        let prev = st.map(|s| (s.timestamp, s.delta, s.length, s.type_id, s.stream_id));
        let (timestamp, delta, length, type_id, stream_id) = match (in_progress, fmt, prev) {
            // A header on a chunk that continues a message (after a lost abort, say): the
            // message in progress wins.
            (true, _, Some(p)) => p,
            (_, 0, _) => {
                let ts = if extended { ext_value } else { field };
                (
                    ts,
                    ts,
                    u24(&h[3..6]) as usize,
                    h[6],
                    u32::from_le_bytes([h[7], h[8], h[9], h[10]]),
                )
            }
            (_, 1, p) => {
                let d = if extended { ext_value } else { field };
                let (ts, _, _, _, sid) = p.unwrap_or_default();
                (ts.wrapping_add(d), d, u24(&h[3..6]) as usize, h[6], sid)
            }
            (_, 2, Some((ts, _, len, ty, sid))) => {
                let d = if extended { ext_value } else { field };
                (ts.wrapping_add(d), d, len, ty, sid)
            }
            (_, 3, Some((ts, d, len, ty, sid))) => (ts.wrapping_add(d), d, len, ty, sid),
            _ => return Err(ChunkError::NoPreviousHeader { fmt, csid }),
        };
        if length > self.limits.max_message {
            return Err(ChunkError::MessageTooLarge(length));
        }
        let have = st.map_or(0, |s| s.partial.len());
        let want = length - have;
        let take = want.min(self.chunk_size);
        if self.buf.len() < pos + take {
            return Ok(Step::NeedMore);
        }
        if take < want && self.held + take > self.limits.max_reassembly {
            return Err(ChunkError::ReassemblyMemory(self.limits.max_reassembly));
        }
        let st = self.streams.entry(csid).or_default();
        if !in_progress {
            (st.timestamp, st.delta, st.length, st.type_id, st.stream_id) =
                (timestamp, delta, length, type_id, stream_id);
            if fmt < 3 {
                st.extended = extended;
                st.extended_value = ext_value;
            }
        }
        self.buf.advance(pos);
        let data = self.buf.split_to(take);
        if take == want && !in_progress {
            // The whole message in one chunk: no copy.
            return Ok(Step::Message(Message {
                csid,
                type_id,
                stream_id,
                timestamp,
                payload: data.freeze(),
            }));
        }
        st.in_progress = true;
        st.partial.extend_from_slice(&data);
        self.held += take;
        if st.partial.len() < st.length {
            return Ok(Step::Partial);
        }
        self.held -= st.partial.len();
        st.in_progress = false;
        let payload = std::mem::take(&mut st.partial).freeze();
        Ok(Step::Message(Message {
            csid,
            type_id: st.type_id,
            stream_id: st.stream_id,
            timestamp: st.timestamp,
            payload,
        }))
    }
}

enum Step {
    Message(Message),
    Partial,
    NeedMore,
}

/// Writes messages as chunks (the server's side: type 0 headers, then type 3 continuations).
#[derive(Debug)]
pub struct ChunkWriter {
    chunk_size: usize,
}

impl ChunkWriter {
    pub fn new(chunk_size: usize) -> Self {
        Self { chunk_size }
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    pub fn set_chunk_size(&mut self, n: usize) {
        self.chunk_size = n.max(1);
    }

    /// Appends `m` as chunks to `out`.
    pub fn write(&self, out: &mut Vec<u8>, m: &Message) {
        let basic = |out: &mut Vec<u8>, fmt: u8| {
            if m.csid < 64 {
                out.push((fmt << 6) | m.csid as u8);
            } else if m.csid < 320 {
                out.push(fmt << 6);
                out.push((m.csid - 64) as u8);
            } else {
                out.push((fmt << 6) | 1);
                let v = m.csid - 64;
                out.push((v & 0xff) as u8);
                out.push((v >> 8) as u8);
            }
        };
        let extended = m.timestamp >= 0xff_ffff;
        basic(out, 0);
        let ts = if extended { 0xff_ffff } else { m.timestamp };
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.extend_from_slice(&(m.payload.len() as u32).to_be_bytes()[1..]);
        out.push(m.type_id);
        out.extend_from_slice(&m.stream_id.to_le_bytes());
        if extended {
            out.extend_from_slice(&m.timestamp.to_be_bytes());
        }
        for (i, c) in m.payload.chunks(self.chunk_size).enumerate() {
            if i > 0 {
                basic(out, 3);
                if extended {
                    out.extend_from_slice(&m.timestamp.to_be_bytes());
                }
            }
            out.extend_from_slice(c);
        }
    }
}

#[cfg(test)]
mod tests;
