//! The `etcd` target: what ggond makes of the keys and values etcd hands
//! it (a watch's events and full reads of ggon's prefix), fed any bytes:
//! the cluster model (`ggon::cluster::model`: members, vote buckets, the
//! leader key, the shared state, the configuration digests), the verdicts
//! counted from it, the state a new leader reads
//! (`ggon::cluster::leader_read`), the state a node starts from
//! (`Keys::parse_state`), the followers' applied revisions and the shared
//! history.
//!
//! Input: a list of operations on one etcd: put (a key under one of ggon's
//! prefixes plus any bytes, any value bytes, a lease), delete, a full read
//! (a fresh model from every key, as at start or after a compaction), and
//! a count of the verdicts. Each step is applied as the watch delivers it.
//!
//! Invariants: no panic; after every full read, the model the watch built
//! key by key is the model a full read builds (so a node that followed the
//! watch and one that just started agree), and their verdicts are the same;
//! a verdict "down" has at least the needed votes; the new leader's read
//! and a starting node's read hold the same services and serials; a vote
//! bucket reads back from its own encoding; a node's complete digest has
//! no differences from itself.

use std::collections::BTreeMap;

use ggon::cluster::digest::{differences, Digest};
use ggon::cluster::etcd::Kv;
use ggon::cluster::model::{Changed, Model, Service};
use ggon::cluster::{history_entries, leader_read, votes, Keys};
use ggon::config::Quorum;

const PREFIXES: [&str; 9] = [
    "nodes/",
    "votes/",
    "leader",
    "state/svc/",
    "state/serials",
    "conf/",
    "applied/",
    "history/",
    "",
];

/// What is read from the input, byte by byte; short input ends it.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (b, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        b
    }
    /// A key under ggon's prefix (not UTF-8: replaced, as `Kv` does).
    fn key(&mut self, keys: &Keys) -> Option<String> {
        let p = PREFIXES[self.byte()? as usize % PREFIXES.len()];
        let n = self.byte()? as usize % 48;
        let rest = String::from_utf8_lossy(self.bytes(n)).into_owned();
        Some(format!("{}{p}{rest}", keys.prefix))
    }
}

fn services() -> Vec<Service> {
    vec![
        Service {
            name: "cic".into(),
            targets: vec!["primary".into(), "backup".into()],
            quorum: Quorum::Majority,
        },
        Service {
            name: "www".into(),
            targets: vec!["a".into()],
            quorum: Quorum::Count(2),
        },
    ]
}

/// The `etcd` target.
pub fn etcd(data: &[u8]) {
    let keys = Keys {
        prefix: "/ggon/".into(),
    };
    let services = services();
    let mut input = Input(data);
    let mut etcd: BTreeMap<String, Kv> = BTreeMap::new();
    let mut model = Model::default();
    let mut rev = 1;
    while let Some(op) = input.byte() {
        let mut changed = Changed::default();
        match op % 4 {
            0 => {
                let Some(key) = input.key(&keys) else { break };
                let len = u16::from_be_bytes([input.byte().unwrap_or(0), input.byte().unwrap_or(0)])
                    as usize;
                let value = input.bytes(len % 1024);
                let lease = i64::from(input.byte().unwrap_or(0));
                rev += 1;
                let create = etcd.get(&key).map_or(rev, |kv| kv.create_revision);
                let kv = Kv::from_bytes(key.as_bytes(), value, create, rev, lease);
                if let Some(b) = votes::decode(&kv.value) {
                    assert_eq!(votes::decode(&votes::encode(&b)), Some(b));
                }
                model.put(&keys, &kv, &mut changed);
                etcd.insert(key, kv);
            }
            1 => {
                let Some(key) = input.key(&keys) else { break };
                rev += 1;
                model.delete(&keys, &key, &mut changed);
                etcd.remove(&key);
            }
            2 => full_read(&keys, &etcd, &mut model, &services),
            _ => {
                model.tally(services.iter());
            }
        }
    }
    full_read(&keys, &etcd, &mut model, &services);
    reads(&keys, &etcd);
}

/// A full read of every key: the same model as the watch built, the same
/// verdicts; then go on from it, as a node does.
fn full_read(keys: &Keys, etcd: &BTreeMap<String, Kv>, model: &mut Model, services: &[Service]) {
    let kvs: Vec<Kv> = etcd.values().cloned().collect();
    let mut fresh = Model::default();
    fresh.reset(keys, &kvs);
    assert_eq!(
        picture(model),
        picture(&fresh),
        "the watch's model differs from a full read's"
    );
    model.tally(services.iter());
    fresh.tally(services.iter());
    let views = |m: &Model| serde_json::to_string(&m.views.values().collect::<Vec<_>>()).unwrap();
    assert_eq!(
        views(model),
        views(&fresh),
        "other verdicts from the same keys"
    );
    for v in model.views.values() {
        let down = v.votes.values().filter(|x| **x == Some(false)).count();
        if v.agreed == Some(false) {
            assert!(
                down >= v.needed.max(1),
                "down with {down} of {} votes",
                v.needed
            );
        }
    }
    for node in model.members.keys() {
        if let Some(d) = model.conf.get(node).and_then(Digest::from_chunks) {
            assert!(
                differences(&d, &d).lines.is_empty(),
                "a digest differs from itself"
            );
        }
    }
    *model = fresh;
}

/// The reads that are not the watch's: a new leader's, a starting node's,
/// the applied revisions, the shared history.
fn reads(keys: &Keys, etcd: &BTreeMap<String, Kv>) {
    let kvs: Vec<Kv> = etcd.values().cloned().collect();
    let state = keys.parse_state(&kvs);
    let (services, serials) = leader_read(keys, &kvs);
    assert_eq!(state.services.len(), services.len());
    for (name, (s, _)) in &services {
        assert_eq!(state.services.get(name), Some(s));
    }
    assert_eq!(state.serials, serials.0);
    let applied = keys.applied_revisions(&kvs);
    for node in applied.keys() {
        assert!(etcd.contains_key(&keys.applied_by(node)));
    }
    assert!(history_entries(&kvs, None, None, 5).len() <= 5);
    assert!(history_entries(&kvs, Some("cic"), None, 100)
        .iter()
        .all(|e| e.service.as_deref() == Some("cic")));
}

/// Everything the model holds, in a canonical text (empty per-node maps
/// left out: a node with no bucket left is a node with none).
fn picture(m: &Model) -> String {
    let members: Vec<_> = m
        .members
        .iter()
        .map(|(n, (mem, lease))| (n, serde_json::to_string(mem).unwrap(), lease))
        .collect();
    let votes: BTreeMap<_, BTreeMap<_, _>> = m
        .votes
        .iter()
        .filter(|(_, b)| !b.is_empty())
        .map(|(n, b)| (n, b.iter().collect()))
        .collect();
    let conf: BTreeMap<_, BTreeMap<_, _>> = m
        .conf
        .iter()
        .filter(|(_, c)| !c.is_empty())
        .map(|(n, c)| (n, c.iter().collect()))
        .collect();
    format!(
        "members {members:?}\nvotes {votes:?}\nleader {:?}\nservices {:?}\nserials {:?}\nconf {conf:?}",
        m.leader, m.services, m.serials
    )
}
