//! Key rollovers (RFC 6781 §4.1, RFC 7583 §3): a ZSK by pre-publication, a
//! KSK by double signature. A plain state machine with time (and what the
//! parent's servers said) passed in: nothing here reads a clock, a file or
//! a socket, so the same steps can be driven by this node or, later, by a
//! cluster's leader from a copy kept elsewhere. The signer applies each
//! step to its key states and saves the key set, so a restart resumes where
//! the roll stood.
//!
//! ZSK: (1) the new key enters the DNSKEY RRset without signing; after the
//! wait (the longest TTL plus propagation) every cache that holds the key
//! set holds the new key, so (2) it signs instead of the old one, which
//! stays published; after another wait no cache holds a signature by the
//! old key, so (3) it leaves the DNSKEY RRset.
//!
//! KSK, operator's roll without parent servers: (1) the new key enters and
//! signs the DNSKEY RRset beside the old one, and CDS/CDNSKEY list both;
//! the operator (or the parent, from CDS) puts the new DS in the parent
//! within the wait; (2) the old key leaves.
//!
//! KSK with parent servers (a [`ParentGate`], the key policy's roll): (1)
//! as above, but no CDS yet; after the wait every cache holding the key set
//! holds the new key, so (2) CDS/CDNSKEY are published for the new key
//! alone (RFC 7344: a parent may now switch the DS) and the parent's
//! servers are asked for the DS every check interval; (3) once every one
//! of them serves the new key's DS, the old DS's TTL plus the parent's
//! propagation delay is waited out; (4) the old key and CDS/CDNSKEY leave.
//! A resolver that cached either DS or either key set validates at every
//! step, and the old key cannot leave while the parent still points at it.

use std::net::SocketAddr;
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
    /// KSK with a parent gate: CDS/CDNSKEY name the new key; the parent's
    /// servers are asked for its DS (`next_at`: the next check).
    Submitted,
    /// KSK with a parent gate: every parent server serves the new DS; the
    /// old DS is left to expire from caches (`next_at`: the old key leaves).
    DsSeen,
}

/// A roll in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roll {
    pub kind: RollKind,
    pub old_tag: u16,
    pub new_tag: u16,
    pub new_file: PathBuf,
    pub step: RollStep,
    /// When the next step (or parent check) is due (unix seconds).
    pub next_at: u64,
    /// Seconds between the timed steps.
    pub wait: u64,
    /// Started by the key policy (a lifetime ran out), not an operator.
    #[serde(default)]
    pub auto: bool,
    /// KSK: the old key leaves only once the parent serves the new DS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentGate>,
}

/// What a KSK roll knows of the parent: its last answer and when the new
/// DS was first seen everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentGate {
    pub last: Option<DsCheck>,
    pub seen_at: Option<u64>,
}

/// One round of questions to the parent's servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsCheck {
    /// Unix seconds.
    pub at: u64,
    pub servers: Vec<ServerSaid>,
}

/// What one parent server answered for the zone's DS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSaid {
    pub server: SocketAddr,
    /// The new key's DS is in its DS RRset.
    pub new_ds: bool,
    /// Key tags of the DS records it serves.
    pub tags: Vec<u16>,
    /// The DS RRset's TTL, when it has one.
    pub ttl: Option<u32>,
    /// No usable answer (timeout, REFUSED, not authoritative, …).
    pub error: Option<String>,
}

impl DsCheck {
    /// Every server asked serves the new DS (and there was one to ask).
    pub fn all_serve_new(&self) -> bool {
        !self.servers.is_empty() && self.servers.iter().all(|s| s.new_ds)
    }

    /// The longest DS TTL any server answered.
    pub fn max_ttl(&self) -> u64 {
        self.servers
            .iter()
            .filter_map(|s| s.ttl)
            .max()
            .map_or(0, u64::from)
    }

    /// One line per check for the log and history: what each server serves.
    pub fn summary(&self, new_tag: u16) -> String {
        let parts: Vec<String> = self
            .servers
            .iter()
            .map(|s| match &s.error {
                Some(e) => format!("{}: {e}", s.server),
                None if s.new_ds => format!("{}: serves the DS of {new_tag}", s.server),
                None if s.tags.is_empty() => format!("{}: no DS", s.server),
                None => format!(
                    "{}: DS of {} only, not of {new_tag} yet",
                    s.server,
                    s.tags
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
            .collect();
        parts.join("; ")
    }
}

/// What the signer must do when a roll's step is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollAction {
    /// ZSK step 2: the new key signs, the old one is retired.
    Swap { old: u16, new: u16 },
    /// Gated KSK step 2: CDS/CDNSKEY name the new key; ask the parent.
    Submit { new: u16 },
    /// Last step: the old key leaves the DNSKEY RRset; the roll is over.
    Remove { old: u16 },
}

/// What is due in a roll at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing before `next_at`.
    Nothing,
    /// Take this step; the roll as it stands after it (None: over).
    Act(RollAction, Option<Roll>),
    /// Ask the parent's servers for the DS (then [`Roll::checked`]).
    CheckParent,
}

/// The parent's timing, from the key policy (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentTiming {
    pub check_interval: u64,
    pub propagation: u64,
    /// The DS TTL when longer than what the servers answer.
    pub ds_ttl: u64,
}

impl Roll {
    /// What is due at `now`.
    pub fn due(&self, now: u64) -> Due {
        if now < self.next_at {
            return Due::Nothing;
        }
        let gated = self.parent.is_some();
        match (self.kind, self.step) {
            (RollKind::Zsk, RollStep::Introduced) => Due::Act(
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
            (RollKind::Ksk, RollStep::Introduced) if gated => Due::Act(
                RollAction::Submit { new: self.new_tag },
                Some(Roll {
                    step: RollStep::Submitted,
                    next_at: now,
                    ..self.clone()
                }),
            ),
            (_, RollStep::Submitted) => Due::CheckParent,
            _ => Due::Act(RollAction::Remove { old: self.old_tag }, None),
        }
    }

    /// The roll after the parent's servers answered `check` at `now`, and
    /// whether the new DS was seen everywhere for the first time. None: the
    /// roll is not waiting for the parent (an answer that came too late).
    pub fn checked(&self, check: DsCheck, t: ParentTiming, now: u64) -> Option<(Roll, bool)> {
        if self.step != RollStep::Submitted {
            return None;
        }
        let gate = self.parent.clone().unwrap_or_default();
        let mut next = self.clone();
        let seen = check.all_serve_new();
        if seen {
            // Caches may hold the old DS RRset for its TTL, and the
            // parent's other servers may lag: wait both out.
            let after = check.max_ttl().max(t.ds_ttl) + t.propagation;
            next.step = RollStep::DsSeen;
            next.next_at = now + after;
        } else {
            next.next_at = now + t.check_interval.max(1);
        }
        next.parent = Some(ParentGate {
            last: Some(check),
            seen_at: if seen { Some(now) } else { gate.seen_at },
        });
        Some((next, seen))
    }

    /// The key tags CDS/CDNSKEY carry during this roll; None: the signer's
    /// usual rule (see [`super::Signer`]'s `cds_keys`).
    pub fn cds(&self) -> Option<Vec<u16>> {
        match (self.kind, self.parent.is_some(), self.step) {
            (RollKind::Ksk, true, RollStep::Submitted | RollStep::DsSeen) => {
                Some(vec![self.new_tag])
            }
            (RollKind::Ksk, true, _) => Some(Vec::new()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
