//! What must be the same on every node, as digests, and what differs.
//!
//! Why: every node is given its services, zones, keys and token by hand;
//! a node with another target list votes on targets the others do not
//! have and answers differently, and nothing noticed. Each node publishes
//! digests of what must be identical (`conf/NODE/CHUNK`, bound to its
//! lease): one per service definition (name, answer, failback, quorum,
//! orders, every target's addresses and check), one per zone file, one per
//! signed zone's key files, and one of the control token file. Every node
//! compares each member's with the leader's ([`differences`]): the result
//! names the node and what differs, and the services defined differently
//! are handed to the controller, which keeps their last agreed state and
//! refuses operator changes to them until the nodes agree.
//!
//! Per-service digests are spread over [`CHUNKS`] keys by the vote bucket
//! of the service's name, so no key grows past about 40 KB at 30,000
//! services. A digest is the first 64 bits of a SHA-256, in hex: it tells
//! "differs", never the content (the token's digest does not reveal it).
//!
//! Must not decide anything: it describes; the controller applies the
//! rule.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::config::{Config, ServiceConfig, ZoneMode};

/// Keys the per-service digests are spread over.
pub const CHUNKS: u32 = 16;

/// How many names of one kind a difference lists before "and N more".
const LIST: usize = 5;

/// One node's digests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Service name → digest of its definition.
    pub services: BTreeMap<String, String>,
    /// Zone origin → digest of its file (zones ggond answers from a file).
    pub zones: BTreeMap<String, String>,
    /// Signed zone origin → digest of its key files.
    pub dnssec: BTreeMap<String, String>,
    /// Digest of the control token file ("" when it cannot be read).
    pub token: String,
}

/// One `conf/NODE/CHUNK` key: the services of that chunk, and in chunk 0
/// the zones, keys and token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rest: Option<Rest>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rest {
    pub zones: BTreeMap<String, String>,
    pub dnssec: BTreeMap<String, String>,
    pub token: String,
}

fn hex64(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref()[..8].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The definition of a service in a form that does not depend on where it
/// stands in the file (no spans, no comments).
fn canonical(s: &ServiceConfig) -> String {
    let mut out = format!(
        "{}|{}|{}|{:?}|{:?}|{:?}|{:?}|",
        s.name.get_ref(),
        s.fqdn.get_ref().trim_end_matches('.').to_ascii_lowercase(),
        s.ttl,
        s.failback,
        s.hold_down,
        s.quorum,
        s.active
    );
    if let Some(orders) = &s.order {
        for (region, list) in orders.get_ref() {
            let names: Vec<&str> = list.iter().map(|n| n.get_ref().as_str()).collect();
            let _ = write!(out, "order {region}={};", names.join(","));
        }
    }
    for t in s.targets.get_ref() {
        let c = &t.check;
        let _ = write!(
            out,
            "\n{}|{:?}|{:?}|{:?}|{:?}|{}|{}|{:?}",
            t.name.get_ref(),
            t.addresses.get_ref(),
            c.kind,
            c.interval,
            c.timeout,
            c.rise,
            c.fall,
            c.jitter
        );
    }
    out
}

impl Digest {
    /// The digests of `cfg` and of the files it names (read now; a file
    /// that cannot be read has the digest of nothing, which differs from
    /// any node that can read it).
    pub fn of(cfg: &Config) -> Digest {
        let read = |p: &std::path::Path| std::fs::read(p).unwrap_or_default();
        let mut zones = BTreeMap::new();
        let mut dnssec = BTreeMap::new();
        for z in &cfg.zones {
            let origin = z
                .origin
                .get_ref()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if let (ZoneMode::Local, Some(file)) = (&z.mode, &z.file) {
                zones.insert(origin.clone(), hex64(&read(file.get_ref())));
            }
            if let Some(d) = &z.dnssec {
                let mut all = Vec::new();
                for k in d.keys.iter().chain(&d.published) {
                    let mut path = k.get_ref().clone().into_os_string();
                    if !path.to_string_lossy().ends_with(".key") {
                        path.push(".key");
                    }
                    all.extend(read(std::path::Path::new(&path)));
                }
                dnssec.insert(origin, hex64(&all));
            }
        }
        Digest {
            services: cfg
                .services
                .iter()
                .map(|s| (s.name.get_ref().clone(), hex64(canonical(s).as_bytes())))
                .collect(),
            zones,
            dnssec,
            token: hex64(&read(&cfg.token_file())),
        }
    }

    /// The `conf/NODE/CHUNK` values, every chunk (an empty one too: a
    /// node's digest is complete only with all of them).
    pub fn chunks(&self) -> Vec<(u32, String)> {
        let mut chunks: Vec<Chunk> = vec![Chunk::default(); CHUNKS as usize];
        for (name, d) in &self.services {
            let k = super::votes::bucket_of(name) % CHUNKS;
            chunks[k as usize].services.insert(name.clone(), d.clone());
        }
        chunks[0].rest = Some(Rest {
            zones: self.zones.clone(),
            dnssec: self.dnssec.clone(),
            token: self.token.clone(),
        });
        chunks
            .iter()
            .enumerate()
            .map(|(k, c)| (k as u32, serde_json::to_string(c).expect("plain data")))
            .collect()
    }

    /// A node's digest from its chunks, once all are there.
    pub fn from_chunks(chunks: &HashMap<u32, Chunk>) -> Option<Digest> {
        if (0..CHUNKS).any(|k| !chunks.contains_key(&k)) {
            return None;
        }
        let rest = chunks.get(&0)?.rest.clone()?;
        Some(Digest {
            services: chunks
                .values()
                .flat_map(|c| c.services.iter().map(|(n, d)| (n.clone(), d.clone())))
                .collect(),
            zones: rest.zones,
            dnssec: rest.dnssec,
            token: rest.token,
        })
    }
}

/// What differs in `other` from `reference`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Differences {
    /// One line per kind of difference, for operators.
    pub lines: Vec<String>,
    /// Services defined differently, present on one side only included.
    pub services: BTreeSet<String>,
}

fn listed(names: &[&String]) -> String {
    let mut s: Vec<String> = names.iter().take(LIST).map(|n| format!("`{n}`")).collect();
    if names.len() > LIST {
        s.push(format!("and {} more", names.len() - LIST));
    }
    s.join(", ")
}

/// Keys only in `a`, only in `b`, and in both with other values.
fn compare<'a>(
    a: &'a BTreeMap<String, String>,
    b: &'a BTreeMap<String, String>,
) -> [Vec<&'a String>; 3] {
    let only_a = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b = b.keys().filter(|k| !a.contains_key(*k)).collect();
    let changed = a
        .iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k)
        .collect();
    [only_a, only_b, changed]
}

/// How `other` differs from `reference` (the leader's), in words.
pub fn differences(reference: &Digest, other: &Digest) -> Differences {
    let mut d = Differences::default();
    let [missing, extra, changed] = compare(&reference.services, &other.services);
    for (names, what) in [
        (&extra, "has services the leader has not"),
        (&missing, "lacks services the leader has"),
        (
            &changed,
            "defines services differently (targets, addresses or checks)",
        ),
    ] {
        if !names.is_empty() {
            d.lines.push(format!("{what}: {}", listed(names)));
            d.services.extend(names.iter().map(|n| (*n).clone()));
        }
    }
    for (a, b, kind) in [
        (&reference.zones, &other.zones, "zone files"),
        (&reference.dnssec, &other.dnssec, "DNSSEC key files"),
    ] {
        let [missing, extra, changed] = compare(a, b);
        let mut all: Vec<&String> = missing.into_iter().chain(extra).chain(changed).collect();
        all.sort();
        all.dedup();
        if !all.is_empty() {
            d.lines.push(format!("{kind} differ: {}", listed(&all)));
        }
    }
    if reference.token != other.token {
        d.lines.push(
            "control token file differs (a change passed to the leader may be refused)".into(),
        );
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(services: &[(&str, &str)], token: &str) -> Digest {
        Digest {
            services: services
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect(),
            token: token.into(),
            ..Digest::default()
        }
    }

    #[test]
    fn differences_name_each_kind_and_the_services() {
        let leader = digest(&[("cic", "a"), ("web", "b")], "t");
        let same = leader.clone();
        assert_eq!(differences(&leader, &same), Differences::default());
        let other = digest(&[("cic", "a"), ("web", "c"), ("extra", "d")], "u");
        let d = differences(&leader, &other);
        assert_eq!(
            d.lines,
            vec![
                "has services the leader has not: `extra`".to_string(),
                "defines services differently (targets, addresses or checks): `web`".into(),
                "control token file differs (a change passed to the leader may be refused)".into(),
            ]
        );
        assert_eq!(
            d.services,
            ["extra", "web"].iter().map(|s| s.to_string()).collect()
        );
        let fewer = digest(&[("cic", "a")], "t");
        assert_eq!(
            differences(&leader, &fewer).lines,
            vec!["lacks services the leader has: `web`".to_string()]
        );
    }

    #[test]
    fn chunks_hold_every_digest_and_only_all_of_them_make_one() {
        let services: Vec<(String, String)> = (0..500)
            .map(|i| (format!("s{i}"), format!("{i:016x}")))
            .collect();
        let d = Digest {
            services: services.into_iter().collect(),
            zones: [("ggon.org".to_string(), "z".to_string())].into(),
            dnssec: BTreeMap::new(),
            token: "t".into(),
        };
        let chunks: HashMap<u32, Chunk> = d
            .chunks()
            .into_iter()
            .map(|(k, v)| (k, serde_json::from_str(&v).unwrap()))
            .collect();
        assert_eq!(chunks.len(), CHUNKS as usize);
        assert_eq!(Digest::from_chunks(&chunks), Some(d));
        let mut partial = chunks.clone();
        partial.remove(&3);
        assert_eq!(Digest::from_chunks(&partial), None);
    }

    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
        let refs: Vec<&String> = names.iter().collect();
        assert_eq!(listed(&refs), "`s0`, `s1`, `s2`, `s3`, `s4`, and 3 more");
    }
}
