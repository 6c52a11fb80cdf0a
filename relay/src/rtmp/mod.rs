//! Our own RTMP server side, sans-IO: AMF0, the chunk stream and the server session. Nothing
//! here reads a socket, sleeps or spawns; the ingest shell feeds bytes in and writes out what
//! the session asks for.

pub mod amf0;
pub mod chunk;
pub mod handshake;
pub mod session;
