//! The fragmenter's clock: input timestamps (32-bit milliseconds, per publisher) mapped to one
//! output timeline that never goes backwards, and output time mapped to the wall clock
//! (PROGRAM-DATE-TIME).
//!
//! Pure bookkeeping: it never cuts parts or segments. When an input timestamp jumps (back, or
//! forward by more than the allowed gap) it says so, and the fragmenter ends what it is making
//! before the timeline is rebased where the emitted media ends.

/// How far audio timestamps may step back without being a discontinuity.
const AUDIO_BACKWARD_TOLERANCE_MS: i64 = 500;

/// What an input timestamp maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mapped {
    /// Output milliseconds on the current timeline.
    At(i64),
    /// A jump: the caller ends the stream's current segment, then calls [`Timeline::rebase`].
    Jump(Jump),
}

/// A timestamp that did not continue the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Jump {
    unwrapped: i64,
    video: bool,
    last: Option<i64>,
}

#[derive(Debug, Default)]
pub(crate) struct Timeline {
    /// Last raw 32-bit timestamp seen on any track, and its unwrapped value.
    last_raw: Option<(u32, i64)>,
    /// Added to unwrapped input milliseconds to get output milliseconds.
    offset_ms: i64,
    last_video_ms: Option<i64>,
    last_audio_ms: Option<i64>,
    /// (output ms, wall ms) pair that maps media time to PROGRAM-DATE-TIME.
    anchor: Option<(i64, i64)>,
    /// The anchor may still move earlier: until the first segment after a (re)start ends.
    settling: bool,
}

impl Timeline {
    /// Maps a raw timestamp of the given track. `end_ms` is where the emitted media ends (a
    /// new publisher's clock starts there); `max_gap_ms` the largest forward step that is not
    /// a discontinuity.
    pub fn map(&mut self, raw: u32, video: bool, end_ms: i64, max_gap_ms: i64) -> Mapped {
        let unwrapped = match self.last_raw {
            None => {
                self.offset_ms = end_ms - i64::from(raw);
                i64::from(raw)
            }
            Some((last_raw, last)) => last + i64::from(raw.wrapping_sub(last_raw) as i32),
        };
        self.last_raw = Some((raw, unwrapped));
        let mut out = unwrapped + self.offset_ms;
        let last = if video {
            self.last_video_ms
        } else {
            self.last_audio_ms
        };
        if let Some(last) = last {
            // Audio timestamps that step back a little (encoder jitter, interleaving) are
            // absorbed by the sample counter, which drops overlapping frames; only a real jump
            // back is a discontinuity. Video decode times must not go back at all.
            let backward_ok = if video {
                0
            } else {
                AUDIO_BACKWARD_TOLERANCE_MS
            };
            if out < last - backward_ok || out > last + max_gap_ms {
                return Mapped::Jump(Jump {
                    unwrapped,
                    video,
                    last: Some(last),
                });
            }
            if video && out == last {
                // Two pictures with one decode time: keep DTS strictly increasing.
                out = last + 1;
                self.offset_ms += 1;
            }
        }
        self.note(out, video, last);
        Mapped::At(out)
    }

    /// Continues after a [`Mapped::Jump`]: the jumping timestamp now maps to `end_ms`, where
    /// the emitted media ends (updated by ending the segment). Returns its output time.
    pub fn rebase(&mut self, jump: Jump, end_ms: i64) -> i64 {
        self.offset_ms = end_ms - jump.unwrapped;
        self.note(end_ms, jump.video, jump.last);
        end_ms
    }

    fn note(&mut self, out: i64, video: bool, last: Option<i64>) {
        if video {
            self.last_video_ms = Some(out);
        } else {
            self.last_audio_ms = Some(last.map_or(out, |l| l.max(out)));
        }
    }

    /// The stream broke (discontinuity): the tracks' last times and the PDT mapping are gone.
    pub fn forget_tracks(&mut self) {
        self.last_video_ms = None;
        self.last_audio_ms = None;
        self.anchor = None;
    }

    /// A new publisher: its clock has nothing to do with the last one's.
    pub fn forget_publisher(&mut self) {
        self.last_raw = None;
    }

    /// The stream (re)starts: output `out_ms` arrived at `wall_ms`.
    pub fn start(&mut self, out_ms: i64, wall_ms: i64) {
        self.anchor = Some((out_ms, wall_ms));
        self.settling = true;
    }

    /// PROGRAM-DATE-TIME should be when a frame left the encoder, and arrival is our best
    /// sight of that. An encoder's first frames arrive late (its clock started before the
    /// RTMP handshake, so it bursts to catch up), so the first frame alone would stamp the
    /// whole stream late and every latency measured against it short. While the first
    /// segment is open, a master frame that arrives earlier than the mapping predicts moves
    /// the mapping earlier. Returns whether it moved.
    pub fn refine(&mut self, out_ms: i64, wall_ms: i64) -> bool {
        let Some((out, wall)) = self.anchor else {
            return false;
        };
        if !self.settling || wall_ms - out_ms >= wall - out {
            return false;
        }
        self.anchor = Some((out_ms, wall_ms));
        true
    }

    /// The first segment after a (re)start ended: the PDT mapping is final.
    pub fn settle(&mut self) {
        self.settling = false;
    }

    /// Wall-clock milliseconds of output time `out_ms` (0 before the stream started).
    pub fn wall_ms(&self, out_ms: i64) -> i64 {
        self.anchor.map_or(0, |(out, wall)| wall + (out_ms - out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &mut Timeline, raw: u32, video: bool) -> i64 {
        match t.map(raw, video, 0, 5000) {
            Mapped::At(ms) => ms,
            Mapped::Jump(j) => panic!("unexpected jump {j:?}"),
        }
    }

    #[test]
    fn starts_at_the_end_and_unwraps_32_bit_time() {
        let mut t = Timeline::default();
        assert_eq!(t.map(u32::MAX - 10, true, 500, 5000), Mapped::At(500));
        assert_eq!(at(&mut t, 5, true), 516, "wrapped past 2^32");
        assert_eq!(
            at(&mut t, 5, true),
            517,
            "equal decode times kept increasing"
        );
    }

    #[test]
    fn jumps_rebase_where_the_media_ends() {
        let mut t = Timeline::default();
        at(&mut t, 1000, true);
        at(&mut t, 1033, true);
        let Mapped::Jump(j) = t.map(9000, true, 0, 5000) else {
            panic!("a 8 s gap is a jump");
        };
        assert_eq!(t.rebase(j, 1066), 1066);
        assert_eq!(at(&mut t, 9033, true), 1099);
        // Audio may step back a little without a jump; video may not.
        at(&mut t, 9030, false);
        assert_eq!(at(&mut t, 9000, false), 1066);
        assert!(matches!(t.map(9000, true, 0, 5000), Mapped::Jump(_)));
    }

    #[test]
    fn pdt_anchor_moves_earlier_only_while_settling() {
        let mut t = Timeline::default();
        t.start(0, 10_000);
        assert!(!t.refine(100, 10_150), "later than predicted");
        assert!(t.refine(200, 10_150), "earlier than predicted");
        assert_eq!(t.wall_ms(200), 10_150);
        assert_eq!(t.wall_ms(0), 9_950);
        t.settle();
        assert!(!t.refine(300, 10_000));
        t.forget_tracks();
        assert_eq!(t.wall_ms(0), 0);
    }
}
