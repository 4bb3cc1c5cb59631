//! The signer's side of key rolls and the key policy: the saved key set,
//! beginning a roll (a new key file), applying the steps [`super::roll`]
//! decides and the answers of the parent's servers, and what
//! `ggon-ctl dnssec status` shows. Deciding is done by the pure functions
//! of `roll.rs` and `policy.rs`; here their decisions are carried out
//! (key files, key states, the saved state), and nothing touches a socket:
//! the parent's servers are asked by the publisher ([`ParentQuestion`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};

use super::policy::{Clocks, KeyPolicy};
use super::roll::{DsCheck, Due, ParentGate, Roll, RollAction, RollKind, RollStep};
use super::{keys, readable, KeyError, KeyState, RollError, Signer, ZoneKey};

/// The least time between two tries to begin a roll that failed.
const RETRY: u64 = 60;

/// The saved key set of a zone (`state_dir/dnssec/<zone>.json`).
#[derive(Serialize, Deserialize)]
struct Saved {
    keys: Vec<(PathBuf, KeyState)>,
    roll: Option<Roll>,
}

/// What the publisher asks the parent's servers for a KSK roll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentQuestion {
    pub zone: Name,
    pub servers: Vec<SocketAddr>,
    /// The new KSK's DNSKEY RDATA: its DS is looked for.
    pub new_dnskey: Vec<u8>,
    pub new_tag: u16,
}

/// One key as `ggon-ctl dnssec status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyView {
    pub tag: u16,
    pub role: String,
    pub state: KeyState,
    pub file: PathBuf,
    /// Unix seconds since it signs, when the key policy times it.
    pub since: Option<u64>,
}

/// A zone's key policy as `ggon-ctl dnssec status` shows it (seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    pub zsk_lifetime: u64,
    pub ksk_lifetime: Option<u64>,
    pub parent_servers: Vec<SocketAddr>,
    pub check_interval: u64,
    pub parent_propagation: u64,
    /// When each kind's next roll falls due (unix seconds).
    pub next_zsk_roll: Option<u64>,
    pub next_ksk_roll: Option<u64>,
    /// In a cluster, on a follower: the leader runs the policy and this
    /// node takes its steps from etcd.
    #[serde(default)]
    pub follows: bool,
}

/// A signed zone's keys, roll and policy (`GET /v1/dnssec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneKeysView {
    pub zone: String,
    pub keys: Vec<KeyView>,
    pub roll: Option<Roll>,
    pub policy: Option<PolicyView>,
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RollError> {
    let io = |source| RollError::Save {
        path: path.to_path_buf(),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io)?;
    }
    // Temp file, fsync, rename, fsync of the directory: a crash leaves the
    // old state or the new one, and a roll's step is not taken twice.
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(value).expect("json"))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(d) = path.parent() {
            std::fs::File::open(d)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(io)
}

/// Whether `ds` (DS RDATA) is the DS of `dnskey` (DNSKEY RDATA) of the
/// zone whose wire name is `zone_wire`: key tag, algorithm and digest, for
/// the digest types a parent uses (SHA-1, SHA-256, SHA-384).
pub fn ds_matches(zone_wire: &[u8], dnskey: &[u8], ds: &[u8]) -> bool {
    if ds.len() < 5 || dnskey.len() < 4 {
        return false;
    }
    let tag = u16::from_be_bytes([ds[0], ds[1]]);
    if tag != keys::key_tag(dnskey) || ds[2] != dnskey[3] {
        return false;
    }
    let alg = match ds[3] {
        1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        2 => &ring::digest::SHA256,
        4 => &ring::digest::SHA384,
        _ => return false,
    };
    let mut input = zone_wire.to_vec();
    input.extend_from_slice(dnskey);
    ring::digest::digest(alg, &input).as_ref() == &ds[4..]
}

impl Signer {
    /// Save the key set under `dir` from now on; a key set saved there
    /// before (by a roll) replaces the configured one, since it is newer.
    /// The key policy's clocks are kept in `policy/<zone>.json` under `dir`.
    pub fn with_state_dir(mut self, dir: &Path) -> Result<Signer, KeyError> {
        let name = self.origin.to_string();
        let stem = name.trim_end_matches('.').to_string();
        let file = dir.join(format!("{stem}.json"));
        if let Ok(text) = std::fs::read_to_string(&file) {
            let saved: Saved = serde_json::from_str(&text).map_err(|e| KeyError::Format {
                path: file.clone(),
                why: keys::KeyFormat::Saved(e),
            })?;
            let mut keys = Vec::new();
            for (path, state) in saved.keys {
                keys.push((ZoneKey::load(&path, &name)?, state));
            }
            tracing::info!(zone = %name, file = %file.display(),
                "key set from the last roll (it replaces the configured keys)");
            self.keys = keys;
            self.roll = saved.roll;
        }
        // In a directory of their own: `<zone>.policy.json` beside the key
        // sets could be another zone's key set (a zone named `….policy`).
        let clock_file = dir.join("policy").join(format!("{stem}.json"));
        if let Ok(text) = std::fs::read_to_string(&clock_file) {
            self.clocks = serde_json::from_str(&text).map_err(|e| KeyError::Format {
                path: clock_file.clone(),
                why: keys::KeyFormat::Saved(e),
            })?;
        }
        self.state_file = Some(file);
        self.clock_file = Some(clock_file);
        Ok(self)
    }

    pub(super) fn save_clocks(&self) -> Result<(), RollError> {
        match &self.clock_file {
            Some(f) => write_json(f, &self.clocks),
            None => Ok(()),
        }
    }

    pub(super) fn save(&self) -> Result<(), RollError> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let saved = Saved {
            keys: self
                .keys
                .iter()
                .map(|(k, s)| (k.file.clone(), *s))
                .collect(),
            roll: self.roll.clone(),
        };
        write_json(path, &saved)
    }

    pub fn roll(&self) -> Option<&Roll> {
        self.roll.as_ref()
    }

    /// The keys CDS and CDNSKEY carry: during a roll gated on the parent,
    /// what the roll says (none, then the new KSK alone); with a key policy
    /// and no KSK roll, none (they are withdrawn once the parent has the
    /// DS); otherwise (no policy, or an operator's KSK roll without parent
    /// servers) every active KSK, as always.
    pub(super) fn cds_keys(&self) -> Vec<&ZoneKey> {
        let tags = self.roll.as_ref().and_then(Roll::cds);
        let ksk_roll = self.roll.as_ref().is_some_and(|r| r.kind == RollKind::Ksk);
        let ksk = |k: &ZoneKey, s: KeyState| k.is_ksk() && s == KeyState::Active;
        self.keys
            .iter()
            .filter(|(k, s)| match &tags {
                Some(t) => t.contains(&k.tag),
                None if self.policy.key_policy.is_some() && !ksk_roll => false,
                None => ksk(k, *s),
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// Begin a roll of the active ZSK or KSK (an operator's command): a
    /// new key of the same algorithm is made beside the old one's files.
    /// `zone`: the data served now (its longest TTL sets the wait).
    pub fn start_roll(
        &mut self,
        kind: RollKind,
        zone: &crate::proto::zone::ZoneData,
        now: u64,
    ) -> Result<String, RollError> {
        self.begin(kind, zone, now, false)
    }

    fn begin(
        &mut self,
        kind: RollKind,
        zone: &crate::proto::zone::ZoneData,
        now: u64,
        auto: bool,
    ) -> Result<String, RollError> {
        if let Some(r) = &self.roll {
            return Err(RollError::Busy {
                kind: r.kind,
                at: readable(r.next_at),
            });
        }
        let ksk = kind == RollKind::Ksk;
        let Some((old, _)) = self
            .keys
            .iter()
            .find(|(k, s)| *s == KeyState::Active && k.is_ksk() == ksk)
        else {
            return Err(RollError::NoKey(if ksk { "KSK" } else { "ZSK" }));
        };
        let dir = old.file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let base = keys::generate(&self.origin.to_string(), old.algorithm, ksk, &dir)?;
        let new = ZoneKey::load(&base, &self.origin.to_string())?;
        let max_ttl = zone
            .rrsets
            .values()
            .flat_map(|t| t.values())
            .map(|s| s.ttl)
            .max()
            .unwrap_or(0);
        let wait = u64::from(max_ttl) + u64::from(self.policy.propagation);
        let servers = self.parent_servers();
        let roll = Roll {
            kind,
            old_tag: old.tag,
            new_tag: new.tag,
            new_file: base,
            step: RollStep::Introduced,
            next_at: now + wait,
            wait,
            auto,
            parent: (ksk && !servers.is_empty()).then(ParentGate::default),
        };
        let (o, n, z) = (old.tag, new.tag, &self.origin);
        let what = match (kind, roll.parent.is_some()) {
            // Pre-publication: in the key set, not signing yet.
            (RollKind::Zsk, _) => format!(
                "ZSK roll of {z}: new ZSK {n} published (not signing); it signs from {}, \
                 and ZSK {o} leaves the key set about {}",
                readable(now + wait),
                readable(now + 2 * wait)
            ),
            // Double signature: both sign the key set from now on.
            (RollKind::Ksk, false) => format!(
                "KSK roll of {z}: new KSK {n} signs the key set beside KSK {o}; put its DS in the \
                 parent now (ggon-ctl dnssec status shows it, CDS/CDNSKEY carry it); KSK {o} \
                 leaves at {}",
                readable(now + wait)
            ),
            (RollKind::Ksk, true) => format!(
                "KSK roll of {z}: new KSK {n} signs the key set beside KSK {o}; CDS/CDNSKEY name \
                 it from {}, and KSK {o} leaves only once the parent's servers ({}) serve its DS",
                readable(now + wait),
                list(&servers)
            ),
        };
        let state = if ksk {
            KeyState::Active
        } else {
            KeyState::Published
        };
        self.keys.push((new, state));
        self.roll = Some(roll);
        self.save()?;
        Ok(what)
    }

    fn parent_servers(&self) -> Vec<SocketAddr> {
        self.policy
            .key_policy
            .as_ref()
            .map(|p| p.parent_servers.clone())
            .unwrap_or_default()
    }

    /// Take the roll's next timed step if it is due; what happened, if
    /// anything. A parent check that is due is not taken here (see
    /// [`Signer::parent_question`]).
    pub fn advance_roll(&mut self, now: u64) -> Result<Option<String>, RollError> {
        let Some(Due::Act(action, next)) = self.roll.as_ref().map(|r| r.due(now)) else {
            return Ok(None);
        };
        let z = self.origin.clone();
        let gated = self.roll.as_ref().is_some_and(|r| r.parent.is_some());
        let what = match action {
            RollAction::Swap { old, new } => {
                for (k, s) in &mut self.keys {
                    if k.tag == new {
                        *s = KeyState::Active;
                    } else if k.tag == old {
                        *s = KeyState::Retired;
                    }
                }
                format!("{z}: ZSK {new} signs now; ZSK {old} retired (still published)")
            }
            RollAction::Submit { new } => {
                let every = self
                    .policy
                    .key_policy
                    .as_ref()
                    .map_or(0, |p| p.check_interval);
                format!(
                    "{z}: CDS/CDNSKEY now name KSK {new}; asking the parent's servers ({}) for \
                     its DS every {}",
                    list(&self.parent_servers()),
                    humantime::format_duration(std::time::Duration::from_secs(every))
                )
            }
            RollAction::Remove { old } => {
                self.keys.retain(|(k, _)| k.tag != old);
                let cds = if gated { "; CDS/CDNSKEY withdrawn" } else { "" };
                format!("{z}: key {old} removed from the key set{cds}; roll complete")
            }
        };
        self.roll = next;
        // CDS/CDNSKEY may change without the key states changing: sign
        // the whole zone again.
        self.prev = None;
        self.save()?;
        Ok(Some(what))
    }

    /// The parent's servers to ask now, if a KSK roll waits for its DS.
    pub fn parent_question(&self, now: u64) -> Option<ParentQuestion> {
        let r = self.roll.as_ref()?;
        if r.due(now) != Due::CheckParent {
            return None;
        }
        let new = self.keys.iter().find(|(k, _)| k.tag == r.new_tag)?;
        // No servers (the policy was removed mid-roll): nothing to ask, and
        // the old key stays until they are configured again.
        let servers = self.parent_servers();
        if servers.is_empty() {
            return None;
        }
        Some(ParentQuestion {
            zone: self.origin.clone(),
            servers,
            new_dnskey: new.0.dnskey_rdata(),
            new_tag: r.new_tag,
        })
    }

    /// What the parent's servers answered: the roll moves on when all
    /// serve the new DS. What to record, when it is news (the first answer,
    /// a change in what the servers say, the DS seen everywhere).
    pub fn parent_checked(
        &mut self,
        check: DsCheck,
        now: u64,
    ) -> Result<Option<String>, RollError> {
        let (Some(r), Some(p)) = (&self.roll, &self.policy.key_policy) else {
            return Ok(None);
        };
        let said = check.summary(r.new_tag);
        let before = r
            .parent
            .as_ref()
            .and_then(|g| g.last.as_ref())
            .map(|c| c.summary(r.new_tag));
        let Some((next, seen)) = r.checked(check, p.parent_timing(), now) else {
            return Ok(None);
        };
        let what = if seen {
            Some(format!(
                "{}: the parent's servers serve the DS of KSK {} ({said}); KSK {} leaves at {} \
                 (the DS TTL plus parent_propagation)",
                self.origin,
                next.new_tag,
                next.old_tag,
                readable(next.next_at)
            ))
        } else {
            (before.as_deref() != Some(said.as_str())).then(|| {
                format!(
                    "{}: waiting for the parent to serve the DS of KSK {} ({said}); KSK {} stays",
                    self.origin, next.new_tag, next.old_tag
                )
            })
        };
        self.roll = Some(next);
        self.save()?;
        Ok(what)
    }

    /// The key policy's turn: time the signing keys, and begin the roll
    /// of a key past its lifetime when no roll is under way. What began.
    pub fn policy_tick(
        &mut self,
        zone: &crate::proto::zone::ZoneData,
        now: u64,
    ) -> Result<Option<String>, RollError> {
        let Some(p) = self.policy.key_policy.clone() else {
            return Ok(None);
        };
        let active = |ksk: bool| {
            self.keys
                .iter()
                .find(|(k, s)| *s == KeyState::Active && k.is_ksk() == ksk)
                .map(|(k, _)| k.tag)
        };
        let clocks = self.clocks.observe(active(false), active(true), now);
        if clocks != self.clocks {
            self.clocks = clocks;
            self.save_clocks()?;
        }
        if self.roll.is_some() || now < self.policy_retry_at {
            return Ok(None);
        }
        let Some(w) = self.clocks.due(&p, now) else {
            return Ok(None);
        };
        let what = match self.begin(w.kind, zone, now, true) {
            Ok(what) => what,
            Err(e) => {
                self.policy_retry_at = now + p.check_interval.max(RETRY);
                return Err(e);
            }
        };
        let d = |s| humantime::format_duration(std::time::Duration::from_secs(s));
        Ok(Some(format!(
            "key policy: {} {} has signed for {} (lifetime {}): {what}",
            if w.kind == RollKind::Ksk {
                "KSK"
            } else {
                "ZSK"
            },
            w.tag,
            d(w.age),
            d(w.lifetime)
        )))
    }

    /// Keys, roll and policy for `ggon-ctl dnssec status`.
    pub fn view(&self, follows: bool) -> ZoneKeysView {
        let since = |tag: u16| {
            [self.clocks.zsk, self.clocks.ksk]
                .into_iter()
                .flatten()
                .find(|c| c.tag == tag)
                .map(|c| c.since)
        };
        let keys = self
            .keys
            .iter()
            .map(|(k, s)| KeyView {
                tag: k.tag,
                role: if k.is_ksk() { "KSK" } else { "ZSK" }.to_string(),
                state: *s,
                file: k.file.clone(),
                since: since(k.tag),
            })
            .collect();
        let policy = self
            .policy
            .key_policy
            .as_ref()
            .map(|p| policy_view(p, &self.clocks, follows));
        ZoneKeysView {
            zone: self.origin.to_string(),
            keys,
            roll: self.roll.clone(),
            policy,
        }
    }
}

fn policy_view(p: &KeyPolicy, clocks: &Clocks, follows: bool) -> PolicyView {
    let next = clocks.next_due(p);
    let at = |kind| next.iter().find(|(k, _)| *k == kind).map(|(_, t)| *t);
    PolicyView {
        zsk_lifetime: p.zsk_lifetime,
        ksk_lifetime: p.ksk_lifetime,
        parent_servers: p.parent_servers.clone(),
        check_interval: p.check_interval,
        parent_propagation: p.parent_propagation,
        next_zsk_roll: at(RollKind::Zsk),
        next_ksk_roll: at(RollKind::Ksk),
        follows,
    }
}

fn list(servers: &[SocketAddr]) -> String {
    servers
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
