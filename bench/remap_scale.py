"""Remap cost against the number of services, single node (issue 27):
`python3 bench/remap_scale.py 1000 10000 30000` (release ggond in
target/release; PERF=1 records the remaps with perf into /tmp/ggon-remap.perf).
Each N: a config of N services with two TCP-checked targets (interval 60 s,
so the checks do not compete for the CPU), 40 remaps through the control API
one after another, the call's p50/p90/max and the state directory's size."""
import http.client, json, os, socket, statistics, subprocess, sys, tempfile, threading, time
GGOND = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "ggond")
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def acceptor():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0)); s.listen(4096)
    def run():
        while True:
            c, _ = s.accept(); c.close()
    threading.Thread(target=run, daemon=True).start()
    return s.getsockname()[1]
port = acceptor()
def bench(n, remaps=40):
    d = tempfile.mkdtemp(prefix="ggon-remapbench.")
    with open(f"{d}/z.zone", "w") as f:
        f.write("$ORIGIN scale.test.\n$TTL 60\n@ IN SOA ns h 1 3600 600 86400 60\n@ IN NS ns\nns IN A 127.0.0.1\n")
    with open(f"{d}/token", "w") as f:
        f.write("bench operator scale-bench-token-0123456789abcdef\n")
    os.chmod(f"{d}/token", 0o600)
    svc = []
    for i in range(n):
        a, b = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", f"10.{128 + i // 65536 % 128}.{i // 256 % 256}.{i % 256}"
        svc.append(f'[[service]]\nname = "s{i}"\nfqdn = "s{i}.scale.test"\nttl = 30\n\n'
                   f'[[service.target]]\nname = "primary"\naddresses = ["{a}"]\n'
                   f'check = {{ type = "tcp", address = "127.0.0.1:{port}", interval = "60s", timeout = "1s" }}\n\n'
                   f'[[service.target]]\nname = "backup"\naddresses = ["{b}"]\n'
                   f'check = {{ type = "tcp", address = "127.0.0.1:{port}", interval = "60s", timeout = "1s" }}\n')
    dns, ctl = free_port(), free_port()
    user = '\nuser = "root"' if os.geteuid() == 0 else ""
    with open(f"{d}/ggon.toml", "w") as f:
        f.write(f'[server]\nlisten = ["127.0.0.1:{dns}"]\nstate_dir = "{d}/state"\nworkers = 1{user}\n\n'
                f'[control]\nlisten = "127.0.0.1:{ctl}"\ntoken_file = "{d}/token"\n\n'
                f'[[zone]]\norigin = "scale.test"\nfile = "{d}/z.zone"\n\n' + "\n".join(svc))
    p = subprocess.Popen([GGOND, "--config", f"{d}/ggon.toml"], stdout=subprocess.DEVNULL, stderr=open(f"{d}/log", "w"))
    h = {"Authorization": "Bearer scale-bench-token-0123456789abcdef", "Content-Type": "application/json"}
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", ctl, timeout=5); c.request("GET", "/v1/history?limit=1", headers=h)
            if c.getresponse().status == 200: break
        except OSError: pass
        time.sleep(0.1)
    time.sleep(6)  # first checks
    times = []
    perf = None
    if os.environ.get("PERF"):
        perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", "/tmp/ggon-remap.perf", "-p", str(p.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    c = http.client.HTTPConnection("127.0.0.1", ctl, timeout=30)
    for k in range(remaps):
        i = (k * 7919) % n
        body = json.dumps({"to": "backup" if k % 2 == 0 else "primary", "force": True})
        t = time.perf_counter(); c.request("POST", f"/v1/services/s{i}/remap", body, h); r = c.getresponse(); r.read()
        times.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, r.status
    if perf:
        perf.send_signal(2); perf.wait()
    size = sum(os.path.getsize(os.path.join(f"{d}/state", f)) for f in os.listdir(f"{d}/state"))
    jl = open(f"{d}/state/state.journal").read().count("\n")
    p.terminate(); p.wait()
    subprocess.run(["rm", "-rf", d])
    print(f"N={n}: remap call p50 {statistics.median(times):.1f} ms, p90 {sorted(times)[int(0.9*len(times))]:.1f} ms, max {max(times):.1f} ms; journal lines {jl}; state dir {size} bytes", flush=True)
for n in [int(x) for x in sys.argv[1:]]:
    bench(n)
