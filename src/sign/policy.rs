//! The key policy: when a key has signed long enough to be rolled. Pure:
//! the clocks are plain data (saved beside the key set, and meant to be
//! kept elsewhere by a cluster's leader later), time is passed in, and the
//! answer is which roll to begin; the signer begins it (a new key file)
//! and [`super::roll`] takes it through its steps.
//!
//! A key's age is counted from when the policy first saw it signing: the
//! moment a roll made it active, or, for the keys in the config, the first
//! start with a policy (key files' own dates are not trusted: a key copied
//! from elsewhere would be rolled at once).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::roll::{ParentTiming, RollKind};

/// A zone's key policy (seconds), from `dnssec.policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPolicy {
    pub zsk_lifetime: u64,
    /// None: KSKs are rolled by an operator only.
    pub ksk_lifetime: Option<u64>,
    /// Asked for the DS during a KSK roll; empty: the old KSK leaves after
    /// the wait, as in an operator's roll without a policy.
    pub parent_servers: Vec<SocketAddr>,
    pub check_interval: u64,
    pub parent_propagation: u64,
    pub parent_ds_ttl: Option<u64>,
}

impl KeyPolicy {
    pub fn parent_timing(&self) -> ParentTiming {
        ParentTiming {
            check_interval: self.check_interval,
            propagation: self.parent_propagation,
            ds_ttl: self.parent_ds_ttl.unwrap_or(0),
        }
    }
}

/// Since when the active keys sign, as far as the policy knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clocks {
    pub zsk: Option<KeyClock>,
    pub ksk: Option<KeyClock>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyClock {
    pub tag: u16,
    /// Unix seconds.
    pub since: u64,
}

/// A roll the policy wants begun: which, and why (for the history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub kind: RollKind,
    pub tag: u16,
    pub age: u64,
    pub lifetime: u64,
}

impl Clocks {
    /// The clocks for the keys signing at `now`: a key already timed keeps
    /// its time, a new one starts now, a kind with no key has none.
    pub fn observe(&self, zsk: Option<u16>, ksk: Option<u16>, now: u64) -> Clocks {
        let keep = |old: Option<KeyClock>, tag: Option<u16>| {
            tag.map(|tag| match old {
                Some(c) if c.tag == tag => c,
                _ => KeyClock { tag, since: now },
            })
        };
        Clocks {
            zsk: keep(self.zsk, zsk),
            ksk: keep(self.ksk, ksk),
        }
    }

    /// The roll due at `now`, if any (ZSK first: it needs no parent). The
    /// caller begins it only when no roll is under way.
    pub fn due(&self, p: &KeyPolicy, now: u64) -> Option<Wanted> {
        let over = |c: Option<KeyClock>, lifetime: u64, kind| {
            c.filter(|c| now.saturating_sub(c.since) >= lifetime)
                .map(|c| Wanted {
                    kind,
                    tag: c.tag,
                    age: now - c.since,
                    lifetime,
                })
        };
        over(self.zsk, p.zsk_lifetime, RollKind::Zsk).or_else(|| {
            p.ksk_lifetime
                .filter(|_| !p.parent_servers.is_empty())
                .and_then(|l| over(self.ksk, l, RollKind::Ksk))
        })
    }

    /// When the next roll falls due (for status), if any.
    pub fn next_due(&self, p: &KeyPolicy) -> Vec<(RollKind, u64)> {
        let mut out = Vec::new();
        if let Some(c) = self.zsk {
            out.push((RollKind::Zsk, c.since + p.zsk_lifetime));
        }
        if let (Some(c), Some(l)) = (self.ksk, p.ksk_lifetime) {
            out.push((RollKind::Ksk, c.since + l));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> KeyPolicy {
        KeyPolicy {
            zsk_lifetime: 100,
            ksk_lifetime: Some(1000),
            parent_servers: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            check_interval: 10,
            parent_propagation: 5,
            parent_ds_ttl: None,
        }
    }

    #[test]
    fn clocks_start_when_a_key_is_first_seen_and_keep_their_time() {
        let c = Clocks::default().observe(Some(7), Some(9), 50);
        assert_eq!(c.zsk, Some(KeyClock { tag: 7, since: 50 }));
        let later = c.observe(Some(7), Some(9), 80);
        assert_eq!(later, c, "a key already timed keeps its start");
        let rolled = later.observe(Some(8), Some(9), 90);
        assert_eq!(rolled.zsk, Some(KeyClock { tag: 8, since: 90 }));
        assert_eq!(rolled.ksk, c.ksk);
        assert_eq!(rolled.observe(None, Some(9), 95).zsk, None);
    }

    #[test]
    fn a_key_past_its_lifetime_is_due_zsk_first() {
        let p = policy();
        let c = Clocks::default().observe(Some(7), Some(9), 0);
        assert_eq!(c.due(&p, 99), None);
        let w = c.due(&p, 100).unwrap();
        assert_eq!((w.kind, w.tag, w.age), (RollKind::Zsk, 7, 100));
        // Both over: the ZSK goes first; after its roll the KSK's turn.
        assert_eq!(c.due(&p, 5000).unwrap().kind, RollKind::Zsk);
        let after = c.observe(Some(8), Some(9), 5000);
        assert_eq!(after.due(&p, 5000).unwrap().kind, RollKind::Ksk);
        assert_eq!(
            c.next_due(&p),
            vec![(RollKind::Zsk, 100), (RollKind::Ksk, 1000)]
        );
    }

    #[test]
    fn no_ksk_roll_without_lifetime_or_parent_servers() {
        let c = Clocks::default().observe(None, Some(9), 0);
        let mut p = policy();
        p.ksk_lifetime = None;
        assert_eq!(c.due(&p, 1_000_000), None);
        let mut p = policy();
        p.parent_servers.clear();
        assert_eq!(c.due(&p, 1_000_000), None);
    }
}
