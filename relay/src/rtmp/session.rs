//! The RTMP server session, sans-IO: handshake, chunk stream, protocol control, and the
//! command flow publishers use (`connect`, `releaseStream`, `FCPublish`, `createStream`,
//! `publish`, `FCUnpublish`, `deleteStream`), answered the way ffmpeg, OBS, librtmp and
//! GStreamer expect. Media and metadata come out as [`Event`]s; a publish waits for the
//! caller's [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`].
//!
//! `handle_input(bytes)` then `poll_event()` until `None`, and `poll_transmit()` for what to
//! send. Nothing here blocks, reads a clock or allocates from a length the peer declared.

use std::collections::VecDeque;

use bytes::Bytes;

use super::amf0::{self, Value};
use super::chunk::{ChunkError, ChunkLimits, ChunkReader, ChunkWriter, Message};
use super::handshake::{Handshake, HandshakeError};

/// Session settings.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    pub limits: ChunkLimits,
    /// Our Window Acknowledgement Size and Set Peer Bandwidth.
    pub window: u32,
    /// The chunk size we send with.
    pub out_chunk_size: u32,
    /// Seeds the handshake's random bytes.
    pub seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            limits: ChunkLimits::default(),
            window: 2_500_000,
            out_chunk_size: 4096,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// What the session tells its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `connect` (answered already).
    Connected { app: String },
    /// `publish`: answer with [`ServerSession::accept_publish`] or
    /// [`ServerSession::reject_publish`]. `app` and `name` may hold credentials.
    PublishRequested {
        request_id: u32,
        app: String,
        name: String,
    },
    /// The publisher stopped (`FCUnpublish`, `deleteStream`, `closeStream`).
    PublishFinished,
    /// `play`: this relay serves no RTMP playback; answer with [`ServerSession::reject_play`].
    PlayRequested { request_id: u32 },
    /// `@setDataFrame`/`onMetaData` values, decoded.
    Metadata(Vec<Value>),
    /// An FLV video tag body with its timestamp (ms).
    Video { timestamp: u32, data: Bytes },
    /// An FLV audio tag body with its timestamp (ms).
    Audio { timestamp: u32, data: Bytes },
}

/// Why the session cannot go on; the connection should close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("{0}")]
    Protocol(String),
}

impl SessionError {
    /// `rtmp_errors_total{kind}` label.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionError::Handshake(_) => "handshake",
            SessionError::Chunk(e) => e.kind(),
            SessionError::Protocol(_) => "protocol",
        }
    }
}

/// Message type ids.
mod ty {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
}

/// Chunk stream ids we send on.
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_STATUS: u32 = 5;

/// A publish waiting for the caller's answer.
#[derive(Debug, Clone)]
struct Pending {
    request_id: u32,
    stream_id: u32,
}

/// One RTMP server connection.
#[derive(Debug)]
pub struct ServerSession {
    cfg: SessionConfig,
    handshake: Handshake,
    /// Input the handshake has not consumed yet.
    hs_buf: Vec<u8>,
    reader: ChunkReader,
    writer: ChunkWriter,
    out: Vec<u8>,
    events: VecDeque<Event>,
    app: Option<String>,
    next_stream_id: u32,
    next_request: u32,
    pending: Option<Pending>,
    /// The message stream being published.
    publishing: Option<u32>,
    /// The peer's Window Acknowledgement Size: acknowledge every time this many bytes came.
    peer_window: u32,
    received: u64,
    acked: u64,
    /// Media that arrived before a publish was accepted (ignored).
    pub early_media: u64,
}

fn status(level: &str, code: &str, description: &str) -> Value {
    Value::Object(vec![
        ("level".into(), Value::String(level.into())),
        ("code".into(), Value::String(code.into())),
        ("description".into(), Value::String(description.into())),
    ])
}

impl ServerSession {
    pub fn new(cfg: SessionConfig) -> Self {
        Self {
            cfg,
            handshake: Handshake::new(cfg.seed),
            hs_buf: Vec::new(),
            reader: ChunkReader::new(cfg.limits),
            writer: ChunkWriter::new(128),
            out: Vec::new(),
            events: VecDeque::new(),
            app: None,
            next_stream_id: 1,
            next_request: 1,
            pending: None,
            publishing: None,
            peer_window: 2_500_000,
            received: 0,
            acked: 0,
            early_media: 0,
        }
    }

    /// Bytes held for partial messages and unparsed input.
    pub fn buffered(&self) -> usize {
        self.hs_buf.len() + self.reader.buffered()
    }

    /// True once a publish was accepted (and not finished).
    pub fn is_publishing(&self) -> bool {
        self.publishing.is_some()
    }

    /// The next event, in the order the peer caused them.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to send now (empty when there are none).
    pub fn poll_transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Handles received bytes. Events and replies queue up until polled.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<(), SessionError> {
        self.received += input.len() as u64;
        let mut rest = input;
        if !self.handshake.is_done() {
            self.hs_buf.extend_from_slice(rest);
            let p = self.handshake.handle(&self.hs_buf)?;
            self.out.extend_from_slice(&p.reply);
            self.hs_buf.drain(..p.consumed);
            if !p.done {
                return Ok(());
            }
            let after = std::mem::take(&mut self.hs_buf);
            self.reader.push(&after);
            rest = &[];
        }
        self.reader.push(rest);
        self.drain()?;
        // Cumulative acknowledgements: the total received, each time a window's worth came.
        if self.peer_window > 0 && self.received - self.acked >= u64::from(self.peer_window) {
            self.acked = self.received;
            self.control(ty::ACK, &(self.received as u32).to_be_bytes());
        }
        Ok(())
    }

    /// Handles buffered messages, stopping at a publish (or play) that awaits its answer:
    /// what follows it is handled once it is answered.
    fn drain(&mut self) -> Result<(), SessionError> {
        while self.pending.is_none() {
            match self.reader.next_message()? {
                Some(m) => self.handle_message(m)?,
                None => break,
            }
        }
        Ok(())
    }

    fn send(&mut self, csid: u32, type_id: u8, stream_id: u32, payload: Vec<u8>) {
        let m = Message {
            csid,
            type_id,
            stream_id,
            timestamp: 0,
            payload: Bytes::from(payload),
        };
        self.writer.write(&mut self.out, &m);
    }

    fn control(&mut self, type_id: u8, payload: &[u8]) {
        self.send(CSID_CONTROL, type_id, 0, payload.to_vec());
    }

    fn user_control(&mut self, event: u16, data: &[u8]) {
        let mut p = event.to_be_bytes().to_vec();
        p.extend_from_slice(data);
        self.send(CSID_CONTROL, ty::USER_CONTROL, 0, p);
    }

    fn command(&mut self, csid: u32, stream_id: u32, values: &[Value]) {
        self.send(csid, ty::COMMAND_AMF0, stream_id, amf0::encode_all(values));
    }

    fn result(&mut self, transaction: f64, values: Vec<Value>) {
        let mut v = vec![Value::String("_result".into()), Value::Number(transaction)];
        v.extend(values);
        self.command(CSID_COMMAND, 0, &v);
    }

    fn on_status(&mut self, stream_id: u32, status_obj: Value) {
        self.command(
            CSID_STATUS,
            stream_id,
            &[
                Value::String("onStatus".into()),
                Value::Number(0.0),
                Value::Null,
                status_obj,
            ],
        );
    }

    fn handle_message(&mut self, m: Message) -> Result<(), SessionError> {
        let p = &m.payload;
        let u32_at = |p: &Bytes| -> Result<u32, SessionError> {
            p.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| SessionError::Protocol("truncated control message".into()))
        };
        match m.type_id {
            ty::SET_CHUNK_SIZE => self.reader.set_chunk_size(u32_at(p)? & 0x7fff_ffff)?,
            ty::ABORT => self.reader.abort(u32_at(p)?),
            ty::ACK | ty::SET_PEER_BANDWIDTH => {}
            ty::WINDOW_ACK_SIZE => self.peer_window = u32_at(p)?,
            // PingRequest (6) -> PingResponse (7) with the same timestamp.
            ty::USER_CONTROL if p.len() >= 6 && p[..2] == [0, 6] => {
                let ts = p[2..6].to_vec();
                self.user_control(7, &ts);
            }
            ty::AUDIO | ty::VIDEO => {
                if self.publishing.is_none() {
                    self.early_media += 1;
                } else {
                    let (timestamp, data) = (m.timestamp, m.payload);
                    self.events.push_back(if m.type_id == ty::VIDEO {
                        Event::Video { timestamp, data }
                    } else {
                        Event::Audio { timestamp, data }
                    });
                }
            }
            ty::DATA_AMF0 | ty::DATA_AMF3 => {
                let body = if m.type_id == ty::DATA_AMF3 && p.first() == Some(&0) {
                    &p[1..]
                } else {
                    &p[..]
                };
                // Metadata that does not parse is dropped, never fatal: it is advisory.
                if let Ok(mut values) = amf0::decode_all(body) {
                    if values.first().and_then(Value::as_str) == Some("@setDataFrame") {
                        values.remove(0);
                    }
                    if values.first().and_then(Value::as_str) == Some("onMetaData") {
                        self.events.push_back(Event::Metadata(values));
                    }
                }
            }
            ty::COMMAND_AMF0 | ty::COMMAND_AMF3 => {
                let body = if m.type_id == ty::COMMAND_AMF3 && p.first() == Some(&0) {
                    &p[1..]
                } else {
                    &p[..]
                };
                let values = amf0::decode_all(body)
                    .map_err(|e| SessionError::Protocol(format!("undecodable command: {e}")))?;
                self.handle_command(m.stream_id, values);
            }
            // Shared objects, aggregates and unknown types: not used by publishers.
            _ => {}
        }
        Ok(())
    }

    fn handle_command(&mut self, stream_id: u32, values: Vec<Value>) {
        let name = values.first().and_then(Value::as_str).unwrap_or("");
        let transaction = values.get(1).and_then(Value::as_number).unwrap_or(0.0);
        // The first argument after the command object (a stream name, a stream id).
        let arg = values.get(3);
        match name {
            "connect" => {
                let obj = values.get(2);
                let app = obj
                    .and_then(|o| o.get("app"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let encoding = obj
                    .and_then(|o| o.get("objectEncoding"))
                    .and_then(Value::as_number)
                    .unwrap_or(0.0);
                let w = self.cfg.window.to_be_bytes();
                self.control(ty::WINDOW_ACK_SIZE, &w);
                let mut bw = w.to_vec();
                bw.push(2);
                self.control(ty::SET_PEER_BANDWIDTH, &bw);
                self.control(ty::SET_CHUNK_SIZE, &self.cfg.out_chunk_size.to_be_bytes());
                self.writer.set_chunk_size(self.cfg.out_chunk_size as usize);
                self.result(
                    transaction,
                    vec![
                        Value::Object(vec![
                            ("fmsVer".into(), Value::String("FMS/3,5,7,7009".into())),
                            ("capabilities".into(), Value::Number(31.0)),
                            ("mode".into(), Value::Number(1.0)),
                        ]),
                        Value::Object(vec![
                            ("level".into(), Value::String("status".into())),
                            (
                                "code".into(),
                                Value::String("NetConnection.Connect.Success".into()),
                            ),
                            (
                                "description".into(),
                                Value::String("Connection succeeded.".into()),
                            ),
                            ("objectEncoding".into(), Value::Number(encoding)),
                        ]),
                    ],
                );
                self.app = Some(app.clone());
                self.events.push_back(Event::Connected { app });
            }
            "releaseStream" | "FCPublish" => {
                if name == "FCPublish" {
                    let stream = arg.and_then(Value::as_str).unwrap_or("").to_string();
                    self.command(
                        CSID_COMMAND,
                        0,
                        &[
                            Value::String("onFCPublish".into()),
                            Value::Number(0.0),
                            Value::Null,
                            Value::Object(vec![
                                (
                                    "code".into(),
                                    Value::String("NetStream.Publish.Start".into()),
                                ),
                                ("description".into(), Value::String(stream)),
                            ]),
                        ],
                    );
                }
                if transaction > 0.0 {
                    self.result(transaction, vec![Value::Null, Value::Undefined]);
                }
            }
            "createStream" => {
                let id = self.next_stream_id;
                self.next_stream_id += 1;
                self.result(transaction, vec![Value::Null, Value::Number(f64::from(id))]);
            }
            "publish" => {
                let name = arg.and_then(Value::as_str).unwrap_or("").to_string();
                let request_id = self.next_request;
                self.next_request += 1;
                self.pending = Some(Pending {
                    request_id,
                    stream_id,
                });
                self.events.push_back(Event::PublishRequested {
                    request_id,
                    app: self.app.clone().unwrap_or_default(),
                    name,
                });
            }
            "FCUnpublish" | "deleteStream" | "closeStream" => {
                if name == "FCUnpublish" && transaction > 0.0 {
                    self.result(transaction, vec![Value::Null, Value::Undefined]);
                }
                if self.publishing.take().is_some() {
                    self.events.push_back(Event::PublishFinished);
                }
            }
            "play" | "play2" => {
                let request_id = self.next_request;
                self.next_request += 1;
                self.pending = Some(Pending {
                    request_id,
                    stream_id,
                });
                self.events.push_back(Event::PlayRequested { request_id });
            }
            // getStreamLength, _checkbw, and anything else: nothing a publisher waits for.
            _ => {}
        }
    }

    fn take_pending(&mut self, request_id: u32) -> Option<Pending> {
        match &self.pending {
            Some(p) if p.request_id == request_id => self.pending.take(),
            _ => None,
        }
    }

    /// Accepts the publish `request_id`: media on its stream is raised from now on, starting
    /// with what arrived while the answer was awaited.
    pub fn accept_publish(&mut self, request_id: u32) -> Result<(), SessionError> {
        let Some(p) = self.take_pending(request_id) else {
            return Ok(());
        };
        // StreamBegin for the message stream.
        self.user_control(0, &p.stream_id.to_be_bytes());
        self.on_status(
            p.stream_id,
            status("status", "NetStream.Publish.Start", "Start publishing"),
        );
        self.publishing = Some(p.stream_id);
        self.drain()
    }

    /// Refuses the publish `request_id` with `code` (`NetStream.Publish.BadName`, …) and a
    /// description the client shows (never a secret).
    /// Handling goes on after it (a connection that already publishes keeps doing so); close
    /// the connection to stop there.
    pub fn reject_publish(
        &mut self,
        request_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), SessionError> {
        if let Some(p) = self.take_pending(request_id) {
            self.on_status(p.stream_id, status("error", code, description));
        }
        self.drain()
    }

    /// Ends an accepted publish with an error status the client shows (an encoder sending a
    /// codec this relay cannot package); the connection should close once it is sent.
    pub fn fail_publish(&mut self, description: &str) {
        if let Some(id) = self.publishing.take() {
            self.on_status(
                id,
                status("error", "NetStream.Publish.Rejected", description),
            );
        }
    }

    /// Refuses a `play`; the connection goes on (a client may publish after).
    pub fn reject_play(&mut self, request_id: u32, description: &str) -> Result<(), SessionError> {
        if let Some(p) = self.take_pending(request_id) {
            self.on_status(
                p.stream_id,
                status("error", "NetStream.Play.Failed", description),
            );
        }
        self.drain()
    }
}

#[cfg(test)]
mod tests;
