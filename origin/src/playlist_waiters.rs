//! The blocking playlist requests a [`super::Playlist`] holds: each waits for a part position
//! or a segment, until its deadline. The playlist decides whether a request waits and tells
//! this when parts and segments appear; answered ids come out of `poll_ready`, each once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use super::{Outcome, Position, WaiterId};

#[derive(Debug)]
enum WaitKey {
    /// `_HLS_msn` + `_HLS_part`: a part at or after this position.
    Position(Position),
    /// `_HLS_msn` alone: segment msn complete.
    Segment(u64),
}

/// Held requests by what they wait for and by deadline.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    by_position: BTreeMap<Position, Vec<WaiterId>>,
    by_segment: BTreeMap<u64, Vec<WaiterId>>,
    deadlines: BTreeMap<(Instant, WaiterId), ()>,
    waiting: HashMap<WaiterId, (Instant, WaitKey)>,
    ready: VecDeque<(WaiterId, Outcome)>,
}

impl Waiters {
    /// Holds `id` until a part at or after `pos` exists, at most until `deadline`.
    pub(super) fn hold_position(&mut self, id: WaiterId, pos: Position, deadline: Instant) {
        self.by_position.entry(pos).or_default().push(id);
        self.hold(id, WaitKey::Position(pos), deadline);
    }

    /// Holds `id` until segment `msn` is complete, at most until `deadline`.
    pub(super) fn hold_segment(&mut self, id: WaiterId, msn: u64, deadline: Instant) {
        self.by_segment.entry(msn).or_default().push(id);
        self.hold(id, WaitKey::Segment(msn), deadline);
    }

    fn hold(&mut self, id: WaiterId, key: WaitKey, deadline: Instant) {
        self.deadlines.insert((deadline, id), ());
        self.waiting.insert(id, (deadline, key));
    }

    /// The part at `pos` exists: everyone waiting for it or an earlier one is answered.
    pub(super) fn release_positions_through(&mut self, pos: Position) {
        let ready: Vec<Position> = self.by_position.range(..=pos).map(|(k, _)| *k).collect();
        for k in ready {
            for id in self.by_position.remove(&k).unwrap_or_default() {
                self.finish(id, Outcome::Ready);
            }
        }
    }

    /// Segment `msn` is complete: everyone waiting for it or an earlier one is answered.
    pub(super) fn release_segments_through(&mut self, msn: u64) {
        let ready: Vec<u64> = self.by_segment.range(..=msn).map(|(k, _)| *k).collect();
        for k in ready {
            for id in self.by_segment.remove(&k).unwrap_or_default() {
                self.finish(id, Outcome::Ready);
            }
        }
    }

    /// The stream ended: every held request is answered (with the final playlist).
    pub(super) fn release_all(&mut self) {
        let held: Vec<WaiterId> = std::mem::take(&mut self.by_position)
            .into_values()
            .chain(std::mem::take(&mut self.by_segment).into_values())
            .flatten()
            .collect();
        for id in held {
            self.finish(id, Outcome::Ready);
        }
    }

    /// Forgets `id` (its client went away).
    pub(super) fn cancel(&mut self, id: WaiterId) {
        if let Some((deadline, key)) = self.waiting.remove(&id) {
            self.deadlines.remove(&(deadline, id));
            let list = match key {
                WaitKey::Position(p) => self.by_position.get_mut(&p),
                WaitKey::Segment(m) => self.by_segment.get_mut(&m),
            };
            if let Some(list) = list {
                list.retain(|w| *w != id);
            }
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(t, _)| *t)
    }

    /// Answers `TimedOut` to every request whose deadline has passed.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        while let Some((&(deadline, id), _)) = self.deadlines.iter().next() {
            if deadline > now {
                break;
            }
            self.cancel(id);
            self.ready.push_back((id, Outcome::TimedOut));
        }
    }

    pub(super) fn poll_ready(&mut self) -> Option<(WaiterId, Outcome)> {
        self.ready.pop_front()
    }

    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    fn finish(&mut self, id: WaiterId, outcome: Outcome) {
        if let Some((deadline, _)) = self.waiting.remove(&id) {
            self.deadlines.remove(&(deadline, id));
            self.ready.push_back((id, outcome));
        }
    }
}
