//! The partition nemesis's world (nodes, etcd members, targets, the mesh)
//! and its faults: which links each cuts, and how each is healed.

use std::sync::Arc;

use rand::Rng;

use super::nemesis_io::Table;
use super::nemesis_targets::Listeners;
use crate::support::cluster::Nodes;
use crate::support::etcd::EtcdCluster;
use crate::support::netns::Mesh;

/// Hosts of the mesh: nodes n0-n2 (0-2), etcd members e0-e2 (3-5), the targets.
pub const HOSTS: [&str; 7] = ["n0", "n1", "n2", "e0", "e1", "e2", "tg"];
pub const N0: usize = 0;
pub const E0: usize = 3;
pub const TG: usize = 6;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    KillNode(usize),
    PauseNode(usize),
    StopEtcd(usize),
    KillEtcd(usize),
    PauseEtcd(usize),
    /// A node killed and an etcd member stopped at once.
    Both(usize, usize),
    /// Node ↔ every etcd member cut (the node still reaches its peers).
    NodeFromEtcd(usize),
    /// Node ↔ targets cut: it sees every target down, the others see them up.
    NodeFromTargets(usize),
    /// The n-th follower (0 or 1) ↔ the leader cut (control API).
    FollowerFromLeader(usize),
    /// Host a can no longer send to host b (a's route deleted; b's stays).
    OneWay(usize, usize),
    /// Node reaches etcd member m only: it reaches m, m reaches the other
    /// members, the node does not (a non-transitive partition).
    OnlyMember(usize, usize),
    /// An etcd member cut from the other two (its clients still reach it).
    EtcdIsolated(usize),
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::KillNode(_) => "node kills",
            Fault::PauseNode(_) => "node pauses",
            Fault::StopEtcd(_) => "etcd stops",
            Fault::KillEtcd(_) => "etcd kills",
            Fault::PauseEtcd(_) => "etcd pauses",
            Fault::Both(..) => "node + member",
            Fault::NodeFromEtcd(_) => "node-etcd cuts",
            Fault::NodeFromTargets(_) => "node-targets cuts",
            Fault::FollowerFromLeader(_) => "follower-leader cuts",
            Fault::OneWay(..) => "one-way cuts",
            Fault::OnlyMember(..) => "non-transitive",
            Fault::EtcdIsolated(_) => "etcd member isolated",
        }
    }
}

/// Every link of the mesh (a < b).
fn links() -> Vec<(usize, usize)> {
    let mut l = Vec::new();
    for a in 0..3 {
        for b in a + 1..3 {
            l.push((N0 + a, N0 + b));
            l.push((E0 + a, E0 + b));
        }
        for e in 0..3 {
            l.push((N0 + a, E0 + e));
        }
        l.push((N0 + a, TG));
    }
    l
}

pub fn pick(rng: &mut rand::rngs::StdRng) -> Fault {
    let (n, e) = (rng.random_range(0..3), rng.random_range(0..3));
    match rng.random_range(0..12) {
        0 => Fault::KillNode(n),
        1 => Fault::PauseNode(n),
        2 => Fault::StopEtcd(e),
        3 => Fault::KillEtcd(e),
        4 => Fault::PauseEtcd(e),
        5 => Fault::Both(n, e),
        6 => Fault::NodeFromEtcd(n),
        7 => Fault::NodeFromTargets(n),
        8 => Fault::FollowerFromLeader(rng.random_range(0..2)),
        9 => {
            let all = links();
            let (a, b) = all[rng.random_range(0..all.len())];
            if rng.random_bool(0.5) {
                Fault::OneWay(a, b)
            } else {
                Fault::OneWay(b, a)
            }
        }
        10 => Fault::OnlyMember(n, e),
        _ => Fault::EtcdIsolated(e),
    }
}

pub struct World {
    pub nodes: Nodes,
    pub etcd: EtcdCluster,
    pub table: Table,
    pub lives: Vec<u32>,
    /// The leader when the cluster was last whole.
    pub leader: usize,
    /// The links the fault in force cut: (a, b, one way).
    pub cut: Vec<(usize, usize, bool)>,
    pub targets: Arc<Listeners>,
    /// Last: dropped after every process in it is gone.
    pub mesh: Mesh,
}

impl World {
    pub fn publish(&mut self, i: usize) {
        self.lives[i] += 1;
        let g = self.nodes.node(i);
        self.table.lock().unwrap()[i] = Some((g.dns, g.control, self.lives[i]));
    }

    /// The links a network fault cuts: (a, b, one way).
    fn links_of(&self, f: Fault) -> Vec<(usize, usize, bool)> {
        let others = |m: usize| (0..3).filter(move |x| *x != m);
        match f {
            Fault::NodeFromEtcd(i) => (0..3).map(|m| (N0 + i, E0 + m, false)).collect(),
            Fault::NodeFromTargets(i) => vec![(N0 + i, TG, false)],
            Fault::FollowerFromLeader(k) => {
                let f = others(self.leader).nth(k).expect("two followers");
                vec![(N0 + f, N0 + self.leader, false)]
            }
            Fault::OneWay(a, b) => vec![(a, b, true)],
            Fault::OnlyMember(i, m) => others(m).map(|x| (N0 + i, E0 + x, false)).collect(),
            Fault::EtcdIsolated(e) => others(e).map(|x| (E0 + e, E0 + x, false)).collect(),
            _ => Vec::new(),
        }
    }

    /// Inject a fault; returns what it did, in words.
    pub fn inject(&mut self, f: Fault) -> String {
        match f {
            Fault::KillNode(i) => {
                self.table.lock().unwrap()[i] = None;
                self.nodes.kill(i);
            }
            Fault::PauseNode(i) => self.nodes.node(i).signal(libc::SIGSTOP),
            Fault::StopEtcd(e) => self.etcd.stop(e),
            Fault::KillEtcd(e) => self.etcd.kill(e),
            Fault::PauseEtcd(e) => self.etcd.pause(e),
            Fault::Both(n, e) => {
                self.inject(Fault::KillNode(n));
                self.inject(Fault::StopEtcd(e));
            }
            _ => {
                self.cut = self.links_of(f);
                for (a, b, one_way) in &self.cut {
                    let r = match one_way {
                        true => self.mesh.cut_one_way(*a, *b),
                        false => self.mesh.cut(*a, *b),
                    };
                    r.unwrap_or_else(|e| panic!("cut {a}-{b}: {e}"));
                }
                let named: Vec<String> = self
                    .cut
                    .iter()
                    .map(|(a, b, o)| {
                        format!("{}{}{}", HOSTS[*a], if *o { "->" } else { "-" }, HOSTS[*b])
                    })
                    .collect();
                return format!("{f:?} (cut {})", named.join(" "));
            }
        }
        format!("{f:?}")
    }

    pub fn heal(&mut self, f: Fault) {
        match f {
            Fault::KillNode(i) => {
                self.nodes.restart(i);
                self.publish(i);
            }
            Fault::PauseNode(i) => self.nodes.node(i).signal(libc::SIGCONT),
            Fault::StopEtcd(e) | Fault::KillEtcd(e) => self.etcd.restart(e),
            Fault::PauseEtcd(e) => self.etcd.resume(e),
            Fault::Both(n, e) => {
                self.heal(Fault::StopEtcd(e));
                self.heal(Fault::KillNode(n));
            }
            _ => {
                for (a, b, _) in std::mem::take(&mut self.cut) {
                    self.mesh
                        .heal(a, b)
                        .unwrap_or_else(|e| panic!("heal {a}-{b}: {e}"));
                }
            }
        }
    }

    /// Copy the nodes' logs and state, and etcd's logs, to `keep`.
    pub fn keep(&self, keep: &std::ffi::OsStr) {
        let _ = std::fs::create_dir_all(keep);
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(self.nodes.dir.path())
            .arg(keep)
            .status();
        for m in 0..3 {
            let _ = std::fs::copy(
                self.etcd.log_path(m),
                std::path::Path::new(keep).join(format!("etcd-m{m}.log")),
            );
        }
        eprintln!("node logs and state kept in {}", keep.to_string_lossy());
    }
}
