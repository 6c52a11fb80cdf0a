//! Per-stream fan-out from one publisher to many consumers over bounded queues.
//!
//! Sans-IO apart from `tokio::sync::mpsc::Sender::try_send`, which never blocks: the publisher
//! is never slowed by a consumer. A consumer whose queue is full is marked lagging; it then
//! receives nothing until the next keyframe, where it is resynced with the current codec
//! configs first. Every message it misses is counted.
//!
//! The media since the last keyframe (the current GOP, bounded) is kept and replayed to a new
//! consumer, so one that joins mid-stream (a destination added through the API, the forward to
//! a managed platform, which starts after the platform stream exists) starts at once instead of
//! up to a GOP later, and starts complete: the frames it gets first decode.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::media::{AacConfig, AvcConfig, MediaMessage};

struct Slot {
    tx: mpsc::Sender<MediaMessage>,
    lagging: bool,
    /// Shared with the consumer so it can report its own losses.
    dropped: Arc<AtomicU64>,
}

/// The consumers of one stream and the codec configs a late or resynced consumer needs.
#[derive(Default)]
pub struct Hub {
    slots: Vec<Slot>,
    video_config: Option<Arc<AvcConfig>>,
    audio_config: Option<Arc<AacConfig>>,
    dropped_total: u64,
    /// Video and audio since the last keyframe; empty when there is none or it grew past
    /// [`GOP_MAX_BYTES`] / [`GOP_MAX_MESSAGES`] (then new consumers start at the next one).
    gop: Vec<MediaMessage>,
    gop_bytes: usize,
    gop_open: bool,
}

/// Largest GOP kept for replay (a 10 s GOP at 6 Mbit/s).
pub const GOP_MAX_BYTES: usize = 8 << 20;
/// Most messages kept for replay (10 s of 60 fps video with 48 kHz AAC).
pub const GOP_MAX_MESSAGES: usize = 1200;

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a consumer with a queue of `capacity` messages. It starts with the current codec
    /// configs, then the current GOP from its keyframe when one is kept and fits in the queue,
    /// then live media.
    pub fn subscribe(&mut self, capacity: usize) -> mpsc::Receiver<MediaMessage> {
        self.subscribe_counted(capacity).0
    }

    /// Like [`Hub::subscribe`], also returning the count of messages this consumer missed.
    pub fn subscribe_counted(
        &mut self,
        capacity: usize,
    ) -> (mpsc::Receiver<MediaMessage>, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(capacity.max(4));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut slot = Slot {
            tx,
            lagging: false,
            dropped: dropped.clone(),
        };
        if self.video_config.is_some() || self.audio_config.is_some() {
            self.send_configs(&mut slot);
        }
        if !self.gop.is_empty() && self.gop.len() + 2 < slot.tx.capacity() {
            for m in &self.gop {
                let _ = slot.tx.try_send(m.clone());
            }
        }
        self.slots.push(slot);
        (rx, dropped)
    }

    /// Number of live consumers.
    pub fn consumers(&self) -> usize {
        self.slots.len()
    }

    /// Messages dropped for lagging consumers since the stream started.
    pub fn dropped(&self) -> u64 {
        self.dropped_total
    }

    fn send_configs(&self, slot: &mut Slot) {
        if let Some(c) = &self.video_config {
            let _ = slot.tx.try_send(MediaMessage::VideoConfig(c.clone()));
        }
        if let Some(c) = &self.audio_config {
            let _ = slot.tx.try_send(MediaMessage::AudioConfig(c.clone()));
        }
    }

    /// Messages kept for replay to the next consumer.
    pub fn gop_len(&self) -> usize {
        self.gop.len()
    }

    fn keep(&mut self, msg: &MediaMessage) {
        match msg {
            MediaMessage::Video(f) if f.idr => {
                self.gop.clear();
                self.gop_bytes = 0;
                self.gop_open = true;
            }
            MediaMessage::Video(_) | MediaMessage::Audio(_) => {}
            // A new session restarts timestamps: never replay across it.
            MediaMessage::PublisherLeft | MediaMessage::PublisherResumed => {
                self.gop.clear();
                self.gop_bytes = 0;
                self.gop_open = false;
                return;
            }
            MediaMessage::VideoConfig(_) | MediaMessage::AudioConfig(_) => return,
        }
        if !self.gop_open {
            return;
        }
        self.gop_bytes += msg.payload_len();
        self.gop.push(msg.clone());
        if self.gop_bytes > GOP_MAX_BYTES || self.gop.len() > GOP_MAX_MESSAGES {
            self.gop = Vec::new();
            self.gop_bytes = 0;
            self.gop_open = false;
        }
    }

    /// Sends one message to every consumer without waiting. Closed consumers are removed.
    pub fn publish(&mut self, msg: MediaMessage) {
        match &msg {
            MediaMessage::VideoConfig(c) => self.video_config = Some(c.clone()),
            MediaMessage::AudioConfig(c) => self.audio_config = Some(c.clone()),
            _ => {}
        }
        self.keep(&msg);
        let keyframe = msg.is_keyframe();
        let mut dropped = 0;
        let (video_config, audio_config) = (self.video_config.clone(), self.audio_config.clone());
        self.slots.retain_mut(|slot| {
            if slot.tx.is_closed() {
                return false;
            }
            if slot.lagging {
                // Resync only at a keyframe, and only if the configs and the frame all fit.
                if !keyframe || slot.tx.capacity() < 3 {
                    slot.dropped.fetch_add(1, Ordering::Relaxed);
                    dropped += 1;
                    return true;
                }
                slot.lagging = false;
                if let Some(c) = &video_config {
                    let _ = slot.tx.try_send(MediaMessage::VideoConfig(c.clone()));
                }
                if let Some(c) = &audio_config {
                    let _ = slot.tx.try_send(MediaMessage::AudioConfig(c.clone()));
                }
            }
            match slot.tx.try_send(msg.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    slot.lagging = true;
                    slot.dropped.fetch_add(1, Ordering::Relaxed);
                    dropped += 1;
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.dropped_total += dropped;
    }

    /// Drops every sender: consumers see their queue end (the stream is over).
    pub fn close(&mut self) {
        self.slots.clear();
        self.gop = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::VideoFrame;

    fn frame(dts: u32, idr: bool) -> MediaMessage {
        MediaMessage::Video(VideoFrame {
            dts,
            cts: 0,
            idr,
            data: Bytes::new(),
            tag: Bytes::new(),
        })
    }

    fn dts(m: &MediaMessage) -> Option<u32> {
        match m {
            MediaMessage::Video(f) => Some(f.dts),
            _ => None,
        }
    }

    #[test]
    fn slow_consumer_resyncs_at_keyframe_without_affecting_others() {
        let mut hub = Hub::new();
        let mut fast = hub.subscribe(64);
        let (mut slow, slow_dropped) = hub.subscribe_counted(4);
        for i in 0..20 {
            hub.publish(frame(i, i % 10 == 0));
            // The fast consumer keeps up.
            assert_eq!(fast.try_recv().ok().as_ref().and_then(dts), Some(i));
        }
        // The slow one got 4, then dropped until the keyframe at 10, which did not fit
        // either (queue still full), so it is still lagging.
        let got: Vec<u32> = std::iter::from_fn(|| slow.try_recv().ok())
            .filter_map(|m| dts(&m))
            .collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(hub.dropped(), 16);
        assert_eq!(slow_dropped.load(Ordering::Relaxed), 16);
        // Now that it drained, the next keyframe resyncs it.
        for i in 20..25 {
            hub.publish(frame(i, i == 20));
        }
        let got: Vec<u32> = std::iter::from_fn(|| slow.try_recv().ok())
            .filter_map(|m| dts(&m))
            .collect();
        assert_eq!(got, vec![20, 21, 22, 23]);
    }

    #[test]
    fn a_late_consumer_starts_at_the_current_keyframe() {
        let mut hub = Hub::new();
        let _early = hub.subscribe(64);
        for i in 0..15 {
            hub.publish(frame(i, i % 10 == 0));
        }
        assert_eq!(hub.gop_len(), 5);
        let mut late = hub.subscribe(64);
        hub.publish(frame(15, false));
        let got: Vec<u32> = std::iter::from_fn(|| late.try_recv().ok())
            .filter_map(|m| dts(&m))
            .collect();
        assert_eq!(got, vec![10, 11, 12, 13, 14, 15]);
        // A GOP that does not fit the new queue is not replayed (live media only).
        let mut small = hub.subscribe(4);
        hub.publish(frame(16, false));
        assert_eq!(small.try_recv().ok().as_ref().and_then(dts), Some(16));
        // Nothing is replayed across a publisher reconnect.
        hub.publish(MediaMessage::PublisherLeft);
        let mut after = hub.subscribe(64);
        hub.publish(MediaMessage::PublisherResumed);
        hub.publish(frame(0, false));
        let got: Vec<u32> = std::iter::from_fn(|| after.try_recv().ok())
            .filter_map(|m| dts(&m))
            .collect();
        assert_eq!(got, vec![0]);
        assert_eq!(hub.gop_len(), 0, "no keyframe of the new session yet");
    }

    #[test]
    fn an_oversized_gop_is_not_kept() {
        let mut hub = Hub::new();
        hub.publish(frame(0, true));
        for i in 1..=GOP_MAX_MESSAGES as u32 {
            hub.publish(frame(i, false));
        }
        assert_eq!(hub.gop_len(), 0);
        hub.publish(frame(5000, true));
        assert_eq!(hub.gop_len(), 1);
    }

    #[test]
    fn closed_consumers_are_removed() {
        let mut hub = Hub::new();
        let rx = hub.subscribe(4);
        drop(rx);
        hub.publish(frame(0, true));
        assert_eq!(hub.consumers(), 0);
    }
}
