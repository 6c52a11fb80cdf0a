//! RTMP: our own server side (AMF0, the chunk stream, the server session), sans-IO, and the
//! one publishing client (a sans-IO core around rml_rtmp's client session plus
//! [`client::connect_and_publish`], its only async part). The cores read no socket, sleep or
//! spawn; the shells feed bytes in and write out what the cores ask for.

pub mod amf0;
pub mod chunk;
pub mod client;
pub mod handshake;
pub mod script;
pub mod session;
