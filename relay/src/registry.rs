//! The live streams: who publishes where, the fan-out of each, and the reconnect grace period.
//!
//! A path has at most one publisher. When the publisher leaves, the stream stays alive for
//! the grace period so a reconnecting publisher (glasses on cellular) continues the same
//! stream; consumers see [`MediaMessage::PublisherLeft`] then [`MediaMessage::PublisherResumed`].
//! When the grace period passes, or at shutdown, the stream ends: every consumer's queue closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::hub::Hub;
use crate::media::MediaMessage;
use crate::path::StreamPath;

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("stream {0} already has a publisher")]
    AlreadyPublishing(StreamPath),
    #[error("the relay is shutting down")]
    ShuttingDown,
}

struct StreamState {
    hub: Hub,
    publisher: Option<u64>,
    /// Address of the latest publisher.
    client: Option<std::net::IpAddr>,
    /// Bumped on every attach and detach; a grace timer only ends the stream it was started for.
    generation: u64,
    ended: bool,
}

/// One live stream (a publishing session, possibly spanning reconnects).
pub struct Stream {
    pub path: StreamPath,
    /// Unique per stream within this process; also used to name media files.
    pub session_id: u64,
    pub started_at: SystemTime,
    state: Mutex<StreamState>,
    bytes_in: AtomicU64,
    /// The ingest rate, sampled when asked.
    rate: Mutex<crate::rate::RateMeter>,
    publishes: AtomicU64,
    ended: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("path", &self.path)
            .field("session_id", &self.session_id)
            .finish()
    }
}

impl Stream {
    fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A panic while holding this lock cannot leave the state half-updated in a way that
        // matters more than losing the stream, so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new consumer queue. It receives the current codec configs, then media from the next
    /// keyframe. The queue ends when the stream ends.
    pub fn subscribe(&self, capacity: usize) -> mpsc::Receiver<MediaMessage> {
        self.lock().hub.subscribe(capacity)
    }

    /// Like [`Stream::subscribe`], also returning the count of messages this consumer missed
    /// because it fell behind.
    pub fn subscribe_counted(
        &self,
        capacity: usize,
    ) -> (mpsc::Receiver<MediaMessage>, Arc<AtomicU64>) {
        self.lock().hub.subscribe_counted(capacity)
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Ingest bits per second over about the last five seconds.
    pub fn ingest_bitrate(&self, now: Instant) -> u64 {
        let total = self.bytes_in();
        self.rate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .handle_sample(now, total)
    }

    /// Number of publishing connections this stream has had (1 + reconnects).
    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.lock().hub.dropped()
    }

    /// Resolves when the stream has ended (grace period over, kicked, or shutdown).
    pub async fn wait_ended(&self) {
        let mut rx = self.ended.subscribe();
        // An error means the sender is gone, which only happens with the stream itself.
        let _ = rx.wait_for(|ended| *ended).await;
    }

    /// True once the stream has ended.
    pub fn has_ended(&self) -> bool {
        *self.ended.borrow()
    }

    /// True while a publisher is connected (false during the reconnect grace period).
    pub fn is_publishing(&self) -> bool {
        self.lock().publisher.is_some()
    }

    /// Address of the latest publisher, when the ingest told it.
    pub fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.lock().client
    }
}

type Hook = Box<dyn Fn(&Arc<Stream>) + Send + Sync>;

/// All streams of this relay.
pub struct Registry {
    streams: Mutex<HashMap<StreamPath, Arc<Stream>>>,
    grace: Duration,
    next_id: AtomicU64,
    hooks: Mutex<Vec<Hook>>,
    end_hooks: Mutex<Vec<Hook>>,
    shutting_down: std::sync::atomic::AtomicBool,
}

impl Registry {
    pub fn new(grace: Duration) -> Arc<Self> {
        // Session ids start from the clock so names differ across restarts of the process.
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        Arc::new(Self {
            streams: Mutex::new(HashMap::new()),
            grace,
            next_id: AtomicU64::new(seed),
            hooks: Mutex::new(Vec::new()),
            end_hooks: Mutex::new(Vec::new()),
            shutting_down: Default::default(),
        })
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<StreamPath, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a function called (synchronously, before any media flows) for every new
    /// stream. Use it to subscribe consumers such as the packager.
    pub fn on_new_stream(&self, f: impl Fn(&Arc<Stream>) + Send + Sync + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    /// Registers a function called once for every stream that ends (grace period over,
    /// kicked, or shutdown), after its consumers' queues were closed.
    pub fn on_stream_ended(&self, f: impl Fn(&Arc<Stream>) + Send + Sync + 'static) {
        self.end_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(f));
    }

    pub fn get(&self, path: &StreamPath) -> Option<Arc<Stream>> {
        self.streams().get(path).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self.streams().values().cloned().collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Claims `path` for a publisher: a new stream, or the continuation of one in its grace
    /// period.
    pub fn publish(self: &Arc<Self>, path: StreamPath) -> Result<Publisher, PublishError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(PublishError::ShuttingDown);
        }
        let publisher_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (stream, is_new) = {
            let mut streams = self.streams();
            match streams.get(&path) {
                Some(s) => {
                    let mut st = s.lock();
                    if st.publisher.is_some() {
                        return Err(PublishError::AlreadyPublishing(path));
                    }
                    st.publisher = Some(publisher_id);
                    st.generation += 1;
                    st.hub.publish(MediaMessage::PublisherResumed);
                    drop(st);
                    (s.clone(), false)
                }
                None => {
                    let s = Arc::new(Stream {
                        path: path.clone(),
                        session_id: self.next_id.fetch_add(1, Ordering::Relaxed),
                        started_at: SystemTime::now(),
                        state: Mutex::new(StreamState {
                            hub: Hub::new(),
                            publisher: Some(publisher_id),
                            client: None,
                            generation: 0,
                            ended: false,
                        }),
                        bytes_in: AtomicU64::new(0),
                        rate: Mutex::new(crate::rate::RateMeter::new(
                            Instant::now(),
                            0,
                            Duration::from_secs(5),
                        )),
                        publishes: AtomicU64::new(0),
                        ended: tokio::sync::watch::Sender::new(false),
                    });
                    streams.insert(path, s.clone());
                    (s, true)
                }
            }
        };
        stream.publishes.fetch_add(1, Ordering::Relaxed);
        if is_new {
            for hook in self.hooks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                hook(&stream);
            }
        }
        Ok(Publisher {
            registry: self.clone(),
            stream,
            id: publisher_id,
            resumed: !is_new,
        })
    }

    fn detach(self: &Arc<Self>, stream: &Arc<Stream>, publisher_id: u64) {
        let generation = {
            let mut st = stream.lock();
            if st.publisher != Some(publisher_id) {
                return;
            }
            st.publisher = None;
            st.generation += 1;
            st.hub.publish(MediaMessage::PublisherLeft);
            st.generation
        };
        if self.shutting_down.load(Ordering::Relaxed) || self.grace.is_zero() {
            self.end(stream);
            return;
        }
        let registry = self.clone();
        let stream = stream.clone();
        let grace = self.grace;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(grace).await;
                    let expired = {
                        let st = stream.lock();
                        st.generation == generation && st.publisher.is_none()
                    };
                    if expired {
                        tracing::info!(stream = %stream.path, "reconnect grace period over, stream ended");
                        registry.end(&stream);
                    }
                });
            }
            // No runtime (only in synchronous tests): end at once.
            Err(_) => self.end(&stream),
        }
    }

    /// Ends a stream now: consumers' queues close and the path is free.
    pub fn end(&self, stream: &Arc<Stream>) {
        {
            let mut st = stream.lock();
            if st.ended {
                return;
            }
            st.ended = true;
            st.publisher = None;
            st.hub.close();
        }
        stream.ended.send_replace(true);
        {
            let mut streams = self.streams();
            if streams
                .get(&stream.path)
                .is_some_and(|s| Arc::ptr_eq(s, stream))
            {
                streams.remove(&stream.path);
            }
        }
        for hook in self
            .end_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            hook(stream);
        }
    }

    /// Refuses new publishers and ends every stream (their playlists get ENDLIST).
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        for s in self.list() {
            self.end(&s);
        }
    }
}

/// The right to publish on a stream, held by one ingest connection. Dropping it detaches
/// the publisher and starts the grace period.
pub struct Publisher {
    registry: Arc<Registry>,
    stream: Arc<Stream>,
    id: u64,
    resumed: bool,
}

impl Publisher {
    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Records the publisher's address (shown by the management API).
    pub fn set_client_ip(&self, ip: std::net::IpAddr) {
        self.stream.lock().client = Some(ip);
    }

    /// True when this publisher continues a stream that was in its grace period.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Hands one message to every consumer. Never blocks.
    pub fn send(&self, msg: MediaMessage) {
        self.stream
            .bytes_in
            .fetch_add(msg.payload_len() as u64, Ordering::Relaxed);
        let mut st = self.stream.lock();
        if st.publisher == Some(self.id) {
            st.hub.publish(msg);
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.registry.detach(&self.stream, self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> StreamPath {
        StreamPath {
            user_id: "u@example.com".into(),
            stream_id: s.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn second_publisher_is_rejected() {
        let reg = Registry::new(Duration::from_secs(30));
        let p1 = reg.publish(path("a")).unwrap();
        assert!(matches!(
            reg.publish(path("a")),
            Err(PublishError::AlreadyPublishing(_))
        ));
        // Another path is fine.
        let _p2 = reg.publish(path("b")).unwrap();
        drop(p1);
    }

    #[tokio::test(start_paused = true)]
    async fn reconnect_within_grace_continues_the_stream() {
        let reg = Registry::new(Duration::from_secs(30));
        let seen = Arc::new(AtomicU64::new(0));
        let seen2 = seen.clone();
        reg.on_new_stream(move |_| {
            seen2.fetch_add(1, Ordering::Relaxed);
        });
        let p1 = reg.publish(path("a")).unwrap();
        let mut rx = p1.stream().subscribe(16);
        let session = p1.stream().session_id;
        drop(p1);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let p2 = reg.publish(path("a")).unwrap();
        assert!(p2.resumed());
        assert_eq!(p2.stream().session_id, session);
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        assert_eq!(rx.recv().await, Some(MediaMessage::PublisherLeft));
        assert_eq!(rx.recv().await, Some(MediaMessage::PublisherResumed));
        // The old grace timer must not end the resumed stream.
        tokio::time::sleep(Duration::from_secs(40)).await;
        assert!(reg.get(&path("a")).is_some());
        drop(p2);
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(reg.get(&path("a")).is_none());
        assert_eq!(rx.recv().await, Some(MediaMessage::PublisherLeft));
        assert_eq!(rx.recv().await, None, "queue closes when the stream ends");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_everything() {
        let reg = Registry::new(Duration::from_secs(30));
        let p = reg.publish(path("a")).unwrap();
        let mut rx = p.stream().subscribe(16);
        reg.shutdown();
        assert_eq!(rx.recv().await, None);
        assert!(matches!(
            reg.publish(path("b")),
            Err(PublishError::ShuttingDown)
        ));
        drop(p);
    }
}
