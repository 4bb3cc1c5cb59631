//! Key rollovers (RFC 6781 §4.1): a ZSK by pre-publication, a KSK by double
//! signature. A plain state machine with time passed in; the signer applies
//! each step to its key states and saves the key set, so a restart resumes
//! where the roll stood.
//!
//! ZSK: (1) the new key enters the DNSKEY RRset without signing; after the
//! wait (the longest TTL plus propagation) every cache that holds the key
//! set holds the new key, so (2) it signs instead of the old one, which
//! stays published; after another wait no cache holds a signature by the
//! old key, so (3) it leaves the DNSKEY RRset.
//!
//! KSK: (1) the new key enters and signs the DNSKEY RRset beside the old
//! one, and CDS/CDNSKEY list both; the operator (or the parent, from CDS)
//! puts the new DS in the parent within the wait; (2) the old key leaves.
//! A resolver that cached either DS or either key set validates at every
//! step.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RollKind {
    Zsk,
    Ksk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollStep {
    /// ZSK: new key published, not signing. KSK: both keys sign the key set.
    Introduced,
    /// ZSK: new key signing, old key still published.
    Swapped,
}

/// A roll in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roll {
    pub kind: RollKind,
    pub old_tag: u16,
    pub new_tag: u16,
    pub new_file: PathBuf,
    pub step: RollStep,
    /// When the next step is due (unix seconds).
    pub next_at: u64,
    /// Seconds between steps.
    pub wait: u64,
}

/// What the signer must do when a roll's step is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollAction {
    /// ZSK step 2: the new key signs, the old one is retired.
    Swap { old: u16, new: u16 },
    /// Last step: the old key leaves the DNSKEY RRset; the roll is over.
    Remove { old: u16 },
}

impl Roll {
    /// The action due at `now`, and the roll as it stands after it (None:
    /// the roll is over).
    pub fn advance(&self, now: u64) -> Option<(RollAction, Option<Roll>)> {
        if now < self.next_at {
            return None;
        }
        Some(match (self.kind, self.step) {
            (RollKind::Zsk, RollStep::Introduced) => (
                RollAction::Swap {
                    old: self.old_tag,
                    new: self.new_tag,
                },
                Some(Roll {
                    step: RollStep::Swapped,
                    next_at: now + self.wait,
                    ..self.clone()
                }),
            ),
            _ => (RollAction::Remove { old: self.old_tag }, None),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roll(kind: RollKind) -> Roll {
        Roll {
            kind,
            old_tag: 1,
            new_tag: 2,
            new_file: PathBuf::from("K"),
            step: RollStep::Introduced,
            next_at: 100,
            wait: 50,
        }
    }

    #[test]
    fn zsk_roll_swaps_then_removes() {
        let r = roll(RollKind::Zsk);
        assert_eq!(r.advance(99), None);
        let (a, next) = r.advance(100).unwrap();
        assert_eq!(a, RollAction::Swap { old: 1, new: 2 });
        let next = next.unwrap();
        assert_eq!((next.step, next.next_at), (RollStep::Swapped, 150));
        assert_eq!(next.advance(149), None);
        assert_eq!(
            next.advance(150),
            Some((RollAction::Remove { old: 1 }, None))
        );
    }

    #[test]
    fn ksk_roll_removes_the_old_key_after_the_wait() {
        let r = roll(RollKind::Ksk);
        assert_eq!(r.advance(10), None);
        assert_eq!(r.advance(100), Some((RollAction::Remove { old: 1 }, None)));
    }
}
