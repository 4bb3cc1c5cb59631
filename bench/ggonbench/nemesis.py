"""--nemesis [SECONDS]: the cluster nemesis of tests/cluster/nemesis.rs with
SECONDS (default 300) of faults instead of the test suite's short run: a
random schedule kills, pauses and restarts ggond nodes and etcd members
while a client remaps cic through random nodes and a reader asks every
node what it answers, and a checker judges the recorded history. The seed
and the schedule are printed (replay: GGON_NEMESIS_SEED). See
docs/reliability.md."""

import os

from .common import ROOT


def main(secs):
    os.chdir(ROOT)
    os.execvpe("cargo", ["cargo", "test", "--release", "--test", "cluster", "nemesis_remaps", "--", "--nocapture"],
               dict(os.environ, GGON_NEMESIS_SECS=str(secs)))
