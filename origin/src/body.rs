//! The origin's response body: zero or more shared buffers sent as they are (a segment is its
//! parts, never copied into one buffer), optionally followed by buffers that arrive later (a
//! part sent while it is being made).

use std::collections::VecDeque;
use std::convert::Infallible;
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
    live: Option<tokio::sync::mpsc::Receiver<Bytes>>,
}

impl Body {
    pub fn empty() -> Self {
        Self::default()
    }
    pub fn from_chunks(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            live: None,
        }
    }

    /// A body that sends what arrives on `rx` as it arrives, and ends when the sender is
    /// dropped.
    pub fn streaming(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Self {
            chunks: VecDeque::new(),
            live: Some(rx),
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
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(c) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(c))));
        }
        let Some(rx) = self.live.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(c)) => Poll::Ready(Some(Ok(Frame::data(c)))),
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
        if self.live.is_some() {
            let mut h = SizeHint::new();
            h.set_lower(known);
            h
        } else {
            SizeHint::with_exact(known)
        }
    }
}
