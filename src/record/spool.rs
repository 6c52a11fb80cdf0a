//! The upload queue in front of object storage: which stored file goes up next. Pure: the
//! uploader shell ([`super::s3`]) tells it what was stored, uploaded or failed, with the time,
//! and asks what to do.
//!
//! - A recording's files go up in the order they were stored (an init before the segments
//!   that need it, a playlist after the media it lists), one at a time; several recordings
//!   upload side by side, up to `concurrency`.
//! - A playlist waiting in the queue is replaced by a newer one: the newer lists everything.
//! - A failed upload stays at the head of its recording's queue and is retried after a
//!   backoff that doubles up to [`MAX_BACKOFF`].
//! - The files waiting are the spool, on local disk. When its media outgrows `max_bytes`, the
//!   oldest recording is given up first: its waiting files are handed back for deletion and
//!   whatever it stores later is refused. It never decides for the live stream; it only
//!   decides what is kept.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// First retry delay of a failed upload.
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest retry delay: a store that comes back is used within this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A recording, in the order recordings started (`seq`), with its directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecKey {
    pub seq: u64,
    /// The recording's directory relative to the recording root (`{userId}/{streamId}/{id}`).
    pub dir: String,
}

/// One file to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub rec: RecKey,
    /// File name inside the recording's directory.
    pub file: String,
    /// Size on disk (playlists count as 0: they are small and always kept).
    pub bytes: u64,
    pub kind: Kind,
}

/// What an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An init segment or a segment: deleted locally once uploaded.
    Media,
    /// A playlist or manifest: kept locally (the catalog), replaced by a newer one in the queue.
    Manifest,
}

/// What the shell must do besides uploading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A recording whose broadcast ended has every file in the store.
    Complete(RecKey),
    /// The spool outgrew its bound: these files of a recording given up are to be deleted.
    GivenUp(RecKey, Vec<Item>),
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    in_flight: bool,
    failures: u32,
    retry_at: Option<Instant>,
    ended: bool,
    given_up: bool,
}

/// See the module documentation.
pub struct Spool {
    max_bytes: u64,
    concurrency: usize,
    queues: BTreeMap<RecKey, Queue>,
    bytes: u64,
    in_flight: usize,
    events: VecDeque<Event>,
}

impl Spool {
    pub fn new(max_bytes: u64, concurrency: usize) -> Self {
        Self {
            max_bytes,
            concurrency: concurrency.max(1),
            queues: BTreeMap::new(),
            bytes: 0,
            in_flight: 0,
            events: VecDeque::new(),
        }
    }

    /// Bytes of media waiting on local disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Nothing waits or uploads.
    pub fn is_empty(&self) -> bool {
        self.in_flight == 0 && self.queues.values().all(|q| q.items.is_empty())
    }

    /// A file was stored locally and waits for upload. Returns false when its recording was
    /// given up (the caller deletes the file).
    pub fn handle_stored(&mut self, item: Item) -> bool {
        let q = self.queues.entry(item.rec.clone()).or_default();
        if q.given_up {
            return false;
        }
        if item.kind == Kind::Manifest {
            // A queued (not uploading) copy of the same manifest is superseded.
            let skip = usize::from(q.in_flight);
            let mut i = skip;
            while i < q.items.len() {
                if q.items[i].kind == Kind::Manifest && q.items[i].file == item.file {
                    q.items.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        self.bytes += item.bytes;
        q.items.push_back(item);
        self.enforce_bound();
        true
    }

    /// The broadcast of `rec` ended: once its queue is empty it is complete.
    pub fn handle_ended(&mut self, rec: &RecKey) {
        let q = self.queues.entry(rec.clone()).or_default();
        q.ended = true;
        self.check_complete(rec);
    }

    /// The next upload to start, if one may start now.
    pub fn poll_upload(&mut self, now: Instant) -> Option<Item> {
        if self.in_flight >= self.concurrency {
            return None;
        }
        let (_, q) = self.queues.iter_mut().find(|(_, q)| {
            !q.in_flight && !q.items.is_empty() && q.retry_at.is_none_or(|t| t <= now)
        })?;
        q.in_flight = true;
        self.in_flight += 1;
        q.items.front().cloned()
    }

    /// When a retry is due (the earliest), if one waits.
    pub fn poll_wake(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter(|q| !q.in_flight && !q.items.is_empty())
            .filter_map(|q| q.retry_at)
            .min()
    }

    /// What the shell must do (see [`Event`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The upload of `item` succeeded.
    pub fn handle_uploaded(&mut self, item: &Item) {
        let Some(q) = self.queues.get_mut(&item.rec) else {
            return;
        };
        if q.in_flight {
            q.in_flight = false;
            self.in_flight -= 1;
        }
        q.failures = 0;
        q.retry_at = None;
        if q.items.front() == Some(item) {
            q.items.pop_front();
            self.bytes -= item.bytes;
        }
        self.check_complete(&item.rec);
    }

    /// The upload of `item` failed: it is retried after a backoff. Returns the delay.
    pub fn handle_failed(&mut self, item: &Item, now: Instant) -> Duration {
        let Some(q) = self.queues.get_mut(&item.rec) else {
            return Duration::ZERO;
        };
        if q.in_flight {
            q.in_flight = false;
            self.in_flight -= 1;
        }
        let delay = MIN_BACKOFF
            .saturating_mul(1 << q.failures.min(16))
            .min(MAX_BACKOFF);
        q.failures += 1;
        q.retry_at = Some(now + delay);
        delay
    }

    /// Whether `rec` has anything left to upload (or is uploading).
    pub fn pending(&self, rec: &RecKey) -> bool {
        self.queues
            .get(rec)
            .is_some_and(|q| q.in_flight || !q.items.is_empty())
    }

    /// Forgets `rec` entirely (it was deleted); returns its waiting files.
    pub fn handle_removed(&mut self, rec: &RecKey) -> Vec<Item> {
        let Some(q) = self.queues.remove(rec) else {
            return Vec::new();
        };
        if q.in_flight {
            self.in_flight -= 1;
        }
        let items: Vec<Item> = q.items.into_iter().collect();
        self.bytes -= items.iter().map(|i| i.bytes).sum::<u64>();
        items
    }

    fn check_complete(&mut self, rec: &RecKey) {
        let Some(q) = self.queues.get(rec) else {
            return;
        };
        if q.ended && !q.in_flight && q.items.is_empty() {
            if !q.given_up {
                self.events.push_back(Event::Complete(rec.clone()));
            }
            self.queues.remove(rec);
        }
    }

    /// Gives up the oldest recordings until the media waiting fits in `max_bytes`. The file
    /// being uploaded is kept (its upload is under way); the rest are handed back.
    fn enforce_bound(&mut self) {
        while self.bytes > self.max_bytes {
            let Some((rec, q)) = self
                .queues
                .iter_mut()
                .find(|(_, q)| !q.given_up && q.items.len() > usize::from(q.in_flight))
            else {
                return;
            };
            q.given_up = true;
            let keep = usize::from(q.in_flight);
            let dropped: Vec<Item> = q.items.drain(keep..).collect();
            self.bytes -= dropped.iter().map(|i| i.bytes).sum::<u64>();
            self.events.push_back(Event::GivenUp(rec.clone(), dropped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(seq: u64) -> RecKey {
        RecKey {
            seq,
            dir: format!("u/s/r{seq}"),
        }
    }

    fn media(r: u64, name: &str, bytes: u64) -> Item {
        Item {
            rec: rec(r),
            file: name.into(),
            bytes,
            kind: Kind::Media,
        }
    }

    fn manifest(r: u64) -> Item {
        Item {
            rec: rec(r),
            file: "index.m3u8".into(),
            bytes: 0,
            kind: Kind::Manifest,
        }
    }

    #[test]
    fn a_recordings_files_go_up_in_order_one_at_a_time() {
        let t = Instant::now();
        let mut s = Spool::new(1 << 30, 4);
        for item in [
            media(0, "init", 1),
            media(0, "s0", 10),
            manifest(0),
            media(0, "s1", 10),
            manifest(0),
        ] {
            assert!(s.handle_stored(item));
        }
        let mut order = Vec::new();
        while let Some(item) = s.poll_upload(t) {
            assert_eq!(s.poll_upload(t), None, "one at a time per recording");
            order.push(item.file.clone());
            s.handle_uploaded(&item);
        }
        // The first playlist was superseded by the second, which lists both segments.
        assert_eq!(order, ["init", "s0", "s1", "index.m3u8"]);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn a_failure_backs_off_and_retries_the_same_file_first() {
        let t = Instant::now();
        let mut s = Spool::new(1 << 30, 1);
        s.handle_stored(media(0, "s0", 10));
        s.handle_stored(media(0, "s1", 10));
        let first = s.poll_upload(t).unwrap();
        assert_eq!(s.handle_failed(&first, t), MIN_BACKOFF);
        assert_eq!(s.poll_upload(t), None, "backing off");
        assert_eq!(s.poll_wake(), Some(t + MIN_BACKOFF));
        let again = s.poll_upload(t + MIN_BACKOFF).unwrap();
        assert_eq!(again.file, "s0");
        assert_eq!(s.handle_failed(&again, t), MIN_BACKOFF * 2);
        // Backoff is capped.
        let mut now = t;
        for _ in 0..20 {
            now += MAX_BACKOFF;
            let i = s.poll_upload(now).unwrap();
            assert!(s.handle_failed(&i, now) <= MAX_BACKOFF);
        }
        now += MAX_BACKOFF;
        let i = s.poll_upload(now).unwrap();
        s.handle_uploaded(&i);
        assert_eq!(
            s.poll_upload(now).unwrap().file,
            "s1",
            "no backoff after a success"
        );
    }

    #[test]
    fn recordings_upload_side_by_side_up_to_the_concurrency() {
        let t = Instant::now();
        let mut s = Spool::new(1 << 30, 2);
        for r in 0..3 {
            s.handle_stored(media(r, "s0", 1));
        }
        let a = s.poll_upload(t).unwrap();
        let b = s.poll_upload(t).unwrap();
        assert_eq!((a.rec.seq, b.rec.seq), (0, 1), "oldest first");
        assert_eq!(s.poll_upload(t), None);
        s.handle_uploaded(&a);
        assert_eq!(s.poll_upload(t).unwrap().rec.seq, 2);
    }

    #[test]
    fn complete_once_ended_and_everything_is_up() {
        let t = Instant::now();
        let mut s = Spool::new(1 << 30, 1);
        s.handle_stored(media(0, "s0", 1));
        s.handle_ended(&rec(0));
        assert_eq!(s.poll_event(), None);
        let i = s.poll_upload(t).unwrap();
        s.handle_uploaded(&i);
        assert_eq!(s.poll_event(), Some(Event::Complete(rec(0))));
        // Nothing stored and ended: complete at once.
        s.handle_ended(&rec(1));
        assert_eq!(s.poll_event(), Some(Event::Complete(rec(1))));
    }

    #[test]
    fn the_oldest_recording_is_given_up_when_the_spool_is_full() {
        let t = Instant::now();
        let mut s = Spool::new(100, 1);
        s.handle_stored(media(0, "s0", 40));
        let uploading = s.poll_upload(t).unwrap();
        s.handle_stored(media(0, "s1", 40));
        s.handle_stored(media(1, "s0", 40)); // 120 > 100
        match s.poll_event() {
            Some(Event::GivenUp(r, items)) => {
                assert_eq!(r, rec(0));
                let files: Vec<_> = items.iter().map(|i| i.file.as_str()).collect();
                assert_eq!(files, ["s1"], "the file being uploaded is kept");
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(s.bytes(), 80);
        assert!(!s.handle_stored(media(0, "s2", 1)), "refused from now on");
        s.handle_uploaded(&uploading);
        s.handle_ended(&rec(0));
        assert_eq!(s.poll_event(), None, "a recording given up never completes");
        assert_eq!(s.poll_upload(t).unwrap().rec, rec(1));
    }

    proptest! {
        /// Whatever happens, the spool's bytes are what waits, it stays within its bound
        /// (beyond files being uploaded), and every recording's files go up in stored order.
        #[test]
        fn bounds_and_order_hold(ops in proptest::collection::vec((0u8..4, 0u64..4, 1u64..50), 1..200)) {
            let t = Instant::now();
            let mut s = Spool::new(120, 2);
            let mut next_name = [0u64; 4];
            let mut uploaded: Vec<Vec<u64>> = vec![Vec::new(); 4];
            let mut in_flight: Vec<Item> = Vec::new();
            let mut given_up = [false; 4];
            for (op, r, bytes) in ops {
                match op {
                    0 | 1 => {
                        let n = next_name[r as usize];
                        next_name[r as usize] += 1;
                        s.handle_stored(media(r, &n.to_string(), bytes));
                    }
                    2 => {
                        if let Some(i) = s.poll_upload(t) {
                            in_flight.push(i);
                        }
                    }
                    _ => {
                        if !in_flight.is_empty() {
                            let i = in_flight.remove((bytes as usize) % in_flight.len());
                            if bytes % 3 == 0 {
                                s.handle_failed(&i, t - MAX_BACKOFF);
                            } else {
                                uploaded[i.rec.seq as usize].push(i.file.parse().unwrap());
                                s.handle_uploaded(&i);
                            }
                        }
                    }
                }
                while let Some(e) = s.poll_event() {
                    if let Event::GivenUp(r, _) = e {
                        given_up[r.seq as usize] = true;
                    }
                }
                let in_flight_bytes: u64 = in_flight.iter().map(|i| i.bytes).sum();
                prop_assert!(s.bytes() <= 120 + in_flight_bytes);
            }
            for (r, up) in uploaded.iter().enumerate() {
                prop_assert!(up.windows(2).all(|w| w[0] < w[1]), "recording {} out of order: {:?}", r, up);
                if !given_up[r] {
                    // Nothing skipped: uploaded is a prefix of what was stored.
                    prop_assert!(up.iter().enumerate().all(|(i, n)| *n == i as u64));
                }
            }
        }
    }
}
