//! A scripted RTMP publisher for tests and tools: builds exactly the bytes a client sends
//! (any chunk size, chunks of different messages interleaved, any AMF0 value, extended
//! timestamps), so what real encoders do differently can be played to a server in one go.
//! Pure: it only builds bytes.

use bytes::Bytes;

use super::amf0::{self, Value};
use super::chunk::{ChunkWriter, Message};
use super::handshake::PACKET;

/// Message type ids used here.
pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const DATA_AMF0: u8 = 18;
pub const DATA_AMF3: u8 = 15;

pub struct RtmpScript {
    pub bytes: Vec<u8>,
    chunk_size: usize,
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

impl Default for RtmpScript {
    fn default() -> Self {
        Self::new()
    }
}

impl RtmpScript {
    /// Starts with C0, C1 and C2.
    pub fn new() -> Self {
        let mut bytes = vec![3u8];
        bytes.extend((0..PACKET).map(|i| (i * 31) as u8));
        bytes.extend(vec![0u8; PACKET]);
        Self {
            bytes,
            chunk_size: 128,
        }
    }

    /// The chunk size the script writes with now.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    fn writer(&self) -> ChunkWriter {
        ChunkWriter::new(self.chunk_size)
    }

    pub fn message(&mut self, csid: u32, type_id: u8, stream_id: u32, ts: u32, payload: Bytes) {
        self.writer().write(
            &mut self.bytes,
            &Message {
                csid,
                type_id,
                stream_id,
                timestamp: ts,
                payload,
            },
        );
    }

    pub fn set_chunk_size(&mut self, n: u32) {
        self.message(2, 1, 0, 0, Bytes::copy_from_slice(&n.to_be_bytes()));
        self.chunk_size = n as usize;
    }

    pub fn command(&mut self, stream_id: u32, values: &[Value]) {
        self.message(3, 20, stream_id, 0, Bytes::from(amf0::encode_all(values)));
    }

    /// `connect` to `app` with extra command-object properties.
    pub fn connect(&mut self, app: &str, extra: Vec<(String, Value)>) {
        let mut obj = vec![
            ("app".to_string(), s(app)),
            ("type".into(), s("nonprivate")),
            ("tcUrl".into(), s(&format!("rtmp://127.0.0.1/{app}"))),
        ];
        obj.extend(extra);
        self.command(0, &[s("connect"), Value::Number(1.0), Value::Object(obj)]);
    }

    pub fn call(&mut self, name: &str, tid: f64, arg: Option<Value>) {
        let mut v = vec![s(name), Value::Number(tid), Value::Null];
        v.extend(arg);
        self.command(0, &v);
    }

    pub fn create_stream(&mut self) {
        self.call("createStream", 4.0, None);
    }

    pub fn publish(&mut self, name: &str) {
        self.command(
            1,
            &[
                s("publish"),
                Value::Number(5.0),
                Value::Null,
                s(name),
                s("live"),
            ],
        );
    }

    /// The usual ffmpeg sequence up to `publish`.
    pub fn ffmpeg_like(&mut self, app: &str, name: &str) {
        self.connect(app, Vec::new());
        self.call("releaseStream", 2.0, Some(s(name)));
        self.call("FCPublish", 3.0, Some(s(name)));
        self.create_stream();
        self.publish(name);
    }

    /// `@setDataFrame onMetaData {…}` (AMF0).
    pub fn metadata(&mut self, props: Vec<(String, Value)>) {
        let v = [s("@setDataFrame"), s("onMetaData"), Value::EcmaArray(props)];
        self.message(4, DATA_AMF0, 1, 0, Bytes::from(amf0::encode_all(&v)));
    }

    /// Media messages (type, timestamp, FLV tag body) with the chunks of an audio and a video
    /// message interleaved: A's first chunk, B's first chunk, A's second, … (legal: each chunk
    /// stream has its own). Audio goes on chunk stream 4, video on 6; two messages of the same
    /// kind are never interleaved (they share a chunk stream).
    pub fn media_interleaved(&mut self, msgs: &[(u8, u32, Bytes)]) {
        let mut groups: Vec<Vec<(u8, u32, Bytes)>> = Vec::new();
        let mut pending: Option<(u8, u32, Bytes)> = None;
        for m in msgs {
            match pending.take() {
                Some(p) if p.0 != m.0 => groups.push(vec![p, m.clone()]),
                Some(p) => {
                    groups.push(vec![p]);
                    pending = Some(m.clone());
                }
                None => pending = Some(m.clone()),
            }
        }
        groups.extend(pending.map(|p| vec![p]));
        for pair in &groups {
            let mut parts: Vec<Vec<Vec<u8>>> = Vec::new();
            for (type_id, ts, body) in pair {
                let mut one = Vec::new();
                let csid = if *type_id == AUDIO { 4 } else { 6 };
                self.writer().write(
                    &mut one,
                    &Message {
                        csid,
                        type_id: *type_id,
                        stream_id: 1,
                        timestamp: *ts,
                        payload: body.clone(),
                    },
                );
                parts.push(split_chunks(&one, self.chunk_size));
            }
            let longest = parts.iter().map(Vec::len).max().unwrap_or(0);
            for i in 0..longest {
                for p in &parts {
                    if let Some(c) = p.get(i) {
                        self.bytes.extend_from_slice(c);
                    }
                }
            }
        }
    }

    /// Media messages one after the other.
    pub fn media(&mut self, msgs: &[(u8, u32, Bytes)]) {
        for (type_id, ts, body) in msgs {
            let csid = if *type_id == AUDIO { 4 } else { 6 };
            self.message(csid, *type_id, 1, *ts, body.clone());
        }
    }
}

/// Splits one message written by [`ChunkWriter`] back into its chunks (headers included):
/// the first has a type 0 header (12 bytes with a one-byte basic header, 16 with an extended
/// timestamp), the others type 3 (1 byte, 5 with an extended timestamp).
fn split_chunks(one: &[u8], chunk_size: usize) -> Vec<Vec<u8>> {
    let extended = one[1..4] == [0xff, 0xff, 0xff];
    let first_header = if extended { 16 } else { 12 };
    let cont_header = if extended { 5 } else { 1 };
    let mut out = Vec::new();
    let mut pos = 0;
    let mut header = first_header;
    while pos < one.len() {
        let end = (pos + header + chunk_size).min(one.len());
        out.push(one[pos..end].to_vec());
        pos = end;
        header = cont_header;
    }
    out
}
