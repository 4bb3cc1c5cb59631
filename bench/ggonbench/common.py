"""What every mode shares: paths, settings from the environment, logging,
processes (started, watched and stopped by PID), CPU and memory read from
/proc, free loopback ports, package installation, the build, and the
result files.

Every process a mode starts goes through Procs.start, so that the run can
stop exactly those (and their children) at its end, whatever happens."""

import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
HZ = os.sysconf("SC_CLK_TCK")
# dnsperf's default timeout; a query not answered within it counts as lost.
TIMEOUT = 5


def target_dir():
    """Cargo's target directory: CARGO_TARGET_DIR (relative to the tree) or target/."""
    t = os.environ.get("CARGO_TARGET_DIR")
    return ROOT / t if t else ROOT / "target"


def release_bin(name):
    return target_dir() / "release" / name


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg, code=1):
    log(f"error: {msg}")
    raise SystemExit(code)


def usage_error(msg):
    """A bad option or setting: exit 2 before anything has started."""
    print(f"bench: {msg}", file=sys.stderr)
    raise SystemExit(2)


# ---------------------------------------------------------------------------
# Settings from the environment.

def env_whole(name, default):
    v = os.environ.get(name, str(default))
    if not re.fullmatch(r"[0-9]+", v):
        usage_error(f"{name} must be a whole number, got '{v}'")
    return int(v)


def env_words(name, default):
    """A space-separated list of whole numbers (BENCH_SCALE_RECORDS)."""
    words = os.environ.get(name, default).split()
    for w in words:
        if not re.fullmatch(r"[0-9]+", w):
            usage_error(f"{name} must be whole numbers, got '{w}'")
    return [int(w) for w in words]


def env_nice():
    """BENCH_NICE: niceness of the servers and load generators (negative needs root)."""
    v = os.environ.get("BENCH_NICE", "0")
    if not re.fullmatch(r"-?[0-9]+", v):
        usage_error(f"BENCH_NICE must be a whole number, got '{v}'")
    n = int(v)
    if n < 0 and os.geteuid() != 0:
        log(f"BENCH_NICE={n} needs root; running at niceness 0")
        n = 0
    return n


def keep_tmp():
    return os.environ.get("BENCH_KEEP_TMP", "0") not in ("", "0")


class Settings:
    """The flood settings every mode reads (BENCH_SECONDS and friends)."""

    def __init__(self):
        self.secs = env_whole("BENCH_SECONDS", 10)
        self.rounds = env_whole("BENCH_ROUNDS", 2)
        self.outstanding = env_whole("BENCH_OUTSTANDING", 500)
        self.server_cpu = env_whole("BENCH_SERVER_CPU", 0)
        self.gen_cpu = env_whole("BENCH_GEN_CPU", 1)
        self.nice = env_nice()
        if not (self.secs > 0 and self.rounds > 0 and self.outstanding > 0):
            usage_error("BENCH_SECONDS, BENCH_ROUNDS and BENCH_OUTSTANDING must be positive")
        # CPU is sampled over the first `window` seconds of each flood: a
        # little before its end, while the generator surely still runs.
        self.window = round(max(self.secs - 0.5, self.secs * 0.6), 2)


# ---------------------------------------------------------------------------
# /proc: process trees, CPU ticks, memory.

def proc_stat(pid):
    """The fields of /proc/PID/stat after the command name (which may hold
    spaces and parentheses: "nsd: server 1"), so [0] is the state."""
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def alive(pid):
    """The process exists and is not a zombie."""
    try:
        return proc_stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def tree(root):
    """root and every process below it."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(proc_stat(d)[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [int(root)]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(root):
    """utime+stime of every live process in the tree (each covers all its
    threads), plus cutime+cstime (children it has already reaped). NSD and
    gdnsd fork; their whole tree is the server's cost."""
    total = 0
    for p in tree(root):
        try:
            f = proc_stat(p)
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15])
    return total


def rss_kib(root):
    """VmRSS summed over the tree (forked processes' shared pages count more than once)."""
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def status_kib(pid, key):
    """One field of /proc/PID/status (VmRSS, VmHWM) of one process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------------------
# Ports.

_handed_out = set()


def free_port():
    """A loopback port free for both UDP and TCP, outside the usual
    ephemeral range and not handed out before in this run."""
    rnd = random.Random()
    for _ in range(1000):
        port = rnd.randint(20000, 30999)
        if port in _handed_out:
            continue
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", port))
            u.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            t.close()
            u.close()
        _handed_out.add(port)
        return port
    die("no free port found")


# ---------------------------------------------------------------------------
# Processes.

def pinned(cmd, cpus, nice):
    """cmd at niceness nice on the CPUs cpus ("0" or "0,1"); nice and
    taskset exec it, so the PID is the command's own."""
    return ["nice", "-n", str(nice), "taskset", "-c", str(cpus)] + [str(c) for c in cmd]


class Procs:
    """The processes this run started. stop() ends one with its children
    (TERM, KILL after 3 s); stop_all() every one still running."""

    def __init__(self):
        self.started = []

    def start(self, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, **kw):
        """Popen with stdout/stderr to a path (opened here) or a stream."""
        opened = []
        if isinstance(stdout, (str, Path)):
            stdout = open(stdout, "wb")
            opened.append(stdout)
        if isinstance(stderr, (str, Path)):
            stderr = open(stderr, "wb")
            opened.append(stderr)
        kw.setdefault("cwd", ROOT)
        kw.setdefault("stdin", subprocess.DEVNULL)
        try:
            p = subprocess.Popen([str(c) for c in cmd], stdout=stdout, stderr=stderr, **kw)
        finally:
            for f in opened:
                f.close()
        self.started.append(p)
        return p

    def stop(self, p, grace=3.0):
        if p.poll() is not None:
            return
        pids = tree(p.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            p.poll()
            if not any(alive(pid) for pid in pids):
                break
            time.sleep(0.1)
        for pid in pids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log(f"pid {p.pid} did not exit after SIGKILL")

    def stop_all(self):
        for p in reversed(self.started):
            self.stop(p)


def wait_bounded(p, limit):
    """Waits for p up to limit seconds, then kills it (and waits)."""
    try:
        return p.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def last_json(text):
    """The last line of a tool's output as JSON (ggon-perf --json), or None."""
    try:
        return json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def read_last_json(path):
    try:
        with open(path) as f:
            return last_json(f.read())
    except OSError:
        return None


def tail(path, n=8):
    """The last n lines of a log, indented, for an error message."""
    try:
        with open(path, errors="replace") as f:
            return "".join("    " + line for line in f.readlines()[-n:])
    except OSError:
        return ""


class TempDir:
    """The run's scratch directory (configs, logs, generator output):
    removed at the end unless BENCH_KEEP_TMP=1."""

    def __init__(self, prefix="ggon-bench."):
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TMPDIR") or "/tmp"))

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        if keep_tmp():
            log(f"kept {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------
# Tools: Debian packages and the build.

def have(cmd):
    return shutil.which(cmd) is not None or os.access(f"/usr/sbin/{cmd}", os.X_OK)


def have_dnspython():
    try:
        import dns.message  # noqa: F401
        return True
    except ImportError:
        return False


def apt_install(packages, logfile):
    """Installs Debian packages with apt-get (root only): apt-get update once
    if the first attempt fails. True when all are installed."""
    if not packages:
        return True
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        log(f"missing: {' '.join(packages)} (installing needs root and apt-get)")
        return False
    log(f"installing {' '.join(packages)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q"] + packages
    with open(logfile, "ab") as out:
        if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode == 0:
            return True
        log("apt-get install failed; running apt-get update once and retrying")
        subprocess.run(["apt-get", "update", "-q"], stdout=out, stderr=subprocess.STDOUT, env=env)
        if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode == 0:
            return True
    print(tail(logfile, 15), file=sys.stderr, end="")
    log(f"could not install {' '.join(packages)}")
    return False


def install_missing(wanted, logfile, dnspython=False):
    """wanted: {command: Debian package}. Installs the packages of the
    missing commands (and python3-dnspython if asked and not importable)."""
    pkgs = []
    for cmd, pkg in wanted.items():
        if not have(cmd) and pkg not in pkgs:
            pkgs.append(pkg)
    if dnspython and not have_dnspython():
        pkgs.append("python3-dnspython")
    apt_install(pkgs, logfile)
    if dnspython:
        import importlib
        importlib.invalidate_caches()
        if not have_dnspython():
            die(f"the Python module dns (dnspython) is needed by {sys.executable}: install the Debian package "
                "python3-dnspython (scripts/bench runs /usr/bin/python3 when it exists)")


def cargo_build(args=()):
    log("cargo build --release " + " ".join(args))
    if subprocess.run(["cargo", "build", "--release", *args], cwd=ROOT).returncode != 0:
        die("cargo build --release failed")


def need_binary(name):
    path = release_bin(name)
    if not os.access(path, os.X_OK):
        die(f"{path} is missing (build it: cargo build --release --bin {name})")
    return path


# ---------------------------------------------------------------------------
# Figures and result files.

def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def fmt(v, spec):
    """format(v, spec), or "-" right-aligned to the spec's width for None."""
    if v is None:
        width = re.match(r"\d*", spec).group()
        return "-".rjust(int(width or 0))
    return format(v, spec)


def first_line(cmd, grep=None):
    """The first output line of a version command (or the first containing grep); "" if it fails."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in (out.stdout + out.stderr).splitlines():
        if grep is None or grep in line:
            return line
    return ""


def hostname():
    return socket.gethostname()


def machine(loadavg_start):
    """What the figures depend on besides the code: host, kernel, CPU, load, commit."""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "unknown"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": hostname(),
        "kernel": os.uname().release,
        "cpu": cpu,
        "nproc": len(os.sched_getaffinity(0)),
        "loadavg_start": loadavg_start,
        "loadavg_end": loadavg(),
        "git": git,
    }


def result_path(suffix=""):
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{hostname()}{suffix}.json"


def save_json(path, obj, indent):
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent)
        f.write("\n")


class Context:
    """One run: its settings, scratch directory, processes and tools."""

    def __init__(self, settings, tmp, procs):
        self.s = settings
        self.tmp = tmp
        self.procs = procs
        self.perf = release_bin("ggon-perf")
        self.ggond = release_bin("ggond")
        self.have_dnsperf = have("dnsperf")
        # Other work on the machine skews the figures: the load average goes in the report.
        self.loadavg_start = loadavg()
