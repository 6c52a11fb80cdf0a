//! Per-stream fan-out from one publisher to many consumers over bounded queues.
//!
//! Sans-IO apart from `tokio::sync::mpsc::Sender::try_send`, which never blocks: the publisher
//! is never slowed by a consumer. A consumer whose queue is full is marked lagging; it then
//! receives nothing until the next keyframe, where it is resynced with the current codec
//! configs first. Every message it misses is counted.

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
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a consumer with a queue of `capacity` messages. It starts with the current codec
    /// configs and then waits for a keyframe, like a resynced consumer.
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

    /// Sends one message to every consumer without waiting. Closed consumers are removed.
    pub fn publish(&mut self, msg: MediaMessage) {
        match &msg {
            MediaMessage::VideoConfig(c) => self.video_config = Some(c.clone()),
            MediaMessage::AudioConfig(c) => self.audio_config = Some(c.clone()),
            _ => {}
        }
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
    fn closed_consumers_are_removed() {
        let mut hub = Hub::new();
        let rx = hub.subscribe(4);
        drop(rx);
        hub.publish(frame(0, true));
        assert_eq!(hub.consumers(), 0);
    }
}
