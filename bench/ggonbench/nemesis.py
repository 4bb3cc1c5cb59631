"""--nemesis [SECONDS]: the partition nemesis of tests/cluster/nemesis_net.rs
with SECONDS (default 300) of faults instead of the test suite's short run:
every ggond node and etcd member in a network namespace of its own, linked
by veth pairs; a random schedule cuts links (both ways, one way, an etcd
member from its peers, a node from etcd, from the targets or from the
leader) and kills, pauses and restarts nodes and members, while three
clients remap cic through random nodes, web's active target is stopped and
started (health-driven failovers), and a reader asks every node what it
answers; a checker judges the recorded history. Needs root (ip netns); the
seed and the schedule are printed (replay: GGON_NEMESIS_SEED). The loopback
nemesis (tests/cluster/nemesis.rs, no namespaces) runs with
`GGON_NEMESIS_SECS=N cargo test --release --test cluster nemesis_remaps`.
See docs/reliability.md."""

import os

from .common import ROOT


def main(secs):
    os.chdir(ROOT)
    os.execvpe("cargo", ["cargo", "test", "--release", "--test", "cluster", "nemesis_partitions", "--", "--nocapture"],
               dict(os.environ, GGON_NEMESIS_SECS=str(secs)))
