//! The origin's response body: zero or more shared buffers sent as they are (a segment is its
//! parts, never copied into one buffer), optionally followed by buffers that arrive later (a
//! part sent while it is being made).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// A response body made of zero or more shared buffers (a segment is its parts), then
/// whatever arrives on its channel until the sender is dropped.
#[derive(Debug, Default)]
pub struct Body {
    chunks: VecDeque<Bytes>,
    /// More to come: its length is unknown, so HTTP/1.1 sends it chunked.
    live: Option<tokio::sync::mpsc::Receiver<Result<Bytes, Aborted>>>,
    /// The whole length of a streamed body, when known in advance (sent as Content-Length).
    len: Option<u64>,
}

/// A streamed body could not be completed (the media it was sending is gone). The response
/// is cut off rather than ended, so no client or cache takes the short body for the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the media being streamed ended before it was complete")]
pub struct Aborted;

impl Body {
    pub fn empty() -> Self {
        Self::default()
    }
    pub fn from_chunks(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            live: None,
            len: None,
        }
    }

    /// A body that sends what arrives on `rx` as it arrives, and ends when the sender is
    /// dropped (or is cut off at an [`Aborted`]).
    pub fn streaming(rx: tokio::sync::mpsc::Receiver<Result<Bytes, Aborted>>) -> Self {
        Self {
            chunks: VecDeque::new(),
            live: Some(rx),
            len: None,
        }
    }

    /// Like [`Body::streaming`], for a body whose whole length `len` is known in advance
    /// (a file assembled on the fly): it is sent with a Content-Length. The sender must
    /// send exactly `len` bytes.
    pub fn streaming_sized(
        rx: tokio::sync::mpsc::Receiver<Result<Bytes, Aborted>>,
        len: u64,
    ) -> Self {
        Self {
            len: Some(len),
            ..Self::streaming(rx)
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::from_chunks([b])
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::from(Bytes::from(s))
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self::from(Bytes::from_static(s.as_bytes()))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        if let Some(c) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        let Some(rx) = self.live.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(c))) => {
                if let Some(len) = self.len.as_mut() {
                    *len = len.saturating_sub(c.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(c))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.live = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.live = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.live.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let known: u64 = self.chunks.iter().map(|c| c.len() as u64).sum();
        if let Some(len) = self.len.filter(|_| self.live.is_some()) {
            SizeHint::with_exact(known + len)
        } else if self.live.is_some() {
            let mut h = SizeHint::new();
            h.set_lower(known);
            h
        } else {
            SizeHint::with_exact(known)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn streaming_sends_what_arrives_and_is_cut_off_when_aborted() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut body = Body::streaming(rx);
        assert_eq!(body.size_hint().exact(), None, "no length while streaming");
        tx.send(Ok(Bytes::from_static(b"moof"))).await.unwrap();
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), Bytes::from_static(b"moof"));
        tx.send(Err(Aborted)).await.unwrap();
        assert_eq!(body.frame().await.unwrap().unwrap_err(), Aborted);
        assert!(body.is_end_stream());
        // A sender that goes away ends the body normally.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Aborted>>(1);
        drop(tx);
        let mut body = Body::streaming(rx);
        assert!(body.frame().await.is_none());
    }
}
