//! Numbered link frames: how a receiver finds the frames it never got.
//!
//! A sender numbers the frames it accepts for one peer 1, 2, 3 ... under an epoch,
//! a random id of the sending process's links (or of one reply stream), and every
//! batch carries its epoch and the number of its first frame (its frames are
//! consecutive). The queue of a broken link is dropped and frames in flight are
//! lost, but numbering goes on across reconnects: a receiver that sees a batch of
//! the epoch it knows start past the next number it expected counts a gap and the
//! frames missed ([`Receiving::arrive`]). A new epoch (the sender restarted, or a new
//! reply stream) starts counting afresh; number 0 means an unnumbered batch.

/// What the receiver knows of one sender's numbering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Receiving {
    /// The sender's epoch and the next frame number expected, once a batch came.
    at: Option<(u64, u64)>,
}

/// What one batch revealed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Arrival {
    /// Frames numbered between the last batch and this one that never arrived.
    pub missed: u64,
}

impl Arrival {
    /// True when frames were missed before this batch.
    pub fn gap(&self) -> bool {
        self.missed > 0
    }
}

impl Receiving {
    /// Takes note of a batch of `count` frames numbered from `first` under `epoch`.
    pub fn arrive(&mut self, epoch: u64, first: u64, count: u64) -> Arrival {
        if first == 0 || count == 0 {
            return Arrival::default();
        }
        let end = first + count;
        match &mut self.at {
            Some((known, next)) if *known == epoch => {
                let missed = first.saturating_sub(*next);
                *next = (*next).max(end);
                Arrival { missed }
            }
            _ => {
                self.at = Some((epoch, end));
                Arrival::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_batches_have_no_gap() {
        let mut r = Receiving::default();
        assert_eq!(r.arrive(7, 1, 3), Arrival { missed: 0 });
        assert_eq!(r.arrive(7, 4, 1), Arrival { missed: 0 });
        assert_eq!(r.arrive(7, 5, 10), Arrival { missed: 0 });
    }

    #[test]
    fn frames_lost_across_a_reconnect_are_a_gap() {
        let mut r = Receiving::default();
        r.arrive(7, 1, 4);
        let after_break = r.arrive(7, 12, 2);
        assert!(after_break.gap());
        assert_eq!(after_break.missed, 7, "frames 5..=11 never arrived");
        assert_eq!(r.arrive(7, 14, 1), Arrival { missed: 0 });
    }

    #[test]
    fn a_new_epoch_starts_afresh() {
        let mut r = Receiving::default();
        r.arrive(7, 1, 4);
        assert_eq!(r.arrive(8, 1, 2), Arrival { missed: 0 }, "the sender restarted");
        assert_eq!(r.arrive(8, 5, 1).missed, 2);
        assert_eq!(Receiving::default().arrive(9, 40, 1), Arrival { missed: 0 }, "first batch seen");
    }

    #[test]
    fn repeated_and_unnumbered_batches_count_nothing() {
        let mut r = Receiving::default();
        r.arrive(7, 1, 4);
        assert_eq!(r.arrive(7, 2, 2), Arrival { missed: 0 });
        assert_eq!(r.arrive(7, 0, 5), Arrival { missed: 0 });
        assert_eq!(r.arrive(7, 5, 1), Arrival { missed: 0 }, "still expecting 5");
    }
}
