"""--workers2: gdnsd, NSD (reuseport), Knot and ggond with 2 workers each,
not pinned, flooded on queries.txt from 4 sockets (dnsperf with 2 threads)
that share both cores with them: how far a second worker carries each
server when the generator competes for the same CPUs. Rows SERVER-w2,
compared with gdnsd-w2 (there is no reflector-w2)."""

from .load import flood_rounds
from .servers import Placement, start_server


def run(ctx, kinds, tools):
    pl = Placement.workers2(ctx.s)
    w2 = []
    for kind in kinds:
        if kind == "reflector":
            continue
        srv = start_server(ctx, kind, pl, inst=f"{kind}-w2")
        if srv is not None:
            w2.append(srv)
    rows = flood_rounds(ctx, w2, tools, pl, services=False)
    for srv in w2:
        ctx.procs.stop(srv.proc)
    return rows
