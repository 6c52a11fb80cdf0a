//! The scripted RTMP publisher (`relay::rtmp::script`) played over TCP, and the fixture's
//! media as script messages.

use bytes::Bytes;
pub use relay::rtmp::script::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Playing a script to a server.
pub trait Play {
    /// Sends everything, closes the sending side, and reads until the server closes.
    fn play(&self, addr: std::net::SocketAddr) -> impl std::future::Future<Output = Vec<u8>>;
}

impl Play for RtmpScript {
    async fn play(&self, addr: std::net::SocketAddr) -> Vec<u8> {
        let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut rd, mut wr) = sock.split();
        let mut got = Vec::new();
        let write = async {
            let _ = wr.write_all(&self.bytes).await;
            let _ = wr.shutdown().await;
        };
        let read = async {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(30), rd.read_to_end(&mut got))
                    .await;
        };
        tokio::join!(write, read);
        got
    }
}

/// The fixture's tags as (type, timestamp + `offset`, body) media messages; its script tag
/// (metadata) is left out.
pub fn fixture_media(offset: u32) -> Vec<(u8, u32, Bytes)> {
    let data = Bytes::from(std::fs::read(super::media::FIXTURE).expect("fixture"));
    relay::flv::read_file(&data)
        .expect("fixture parses")
        .into_iter()
        .filter_map(|t| {
            let ty = match t.kind {
                relay::flv::TagKind::Audio => AUDIO,
                relay::flv::TagKind::Video => VIDEO,
                _ => return None,
            };
            Some((ty, t.timestamp.wrapping_add(offset), t.body))
        })
        .collect()
}
