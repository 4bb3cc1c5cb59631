"""The questions tests/zones/compare.py asks of each zone: each owner and
type of the zone, and misses, wildcards, delegations and aliases."""

import collections

import dns.name
import dns.rdatatype

MAX_QUERIES_PER_ZONE = 3000


def queries_for(ref, origin):
    """(name, type) pairs: each owner and type of the zone, plus misses."""
    pairs = sorted({(k[0], k[3]) for k in ref})
    owners = sorted({k[0] for k in ref})
    o = origin.lower()
    extra = [
        ("ggon-nx-1." + o if o != "." else "ggon-nx-1.", dns.rdatatype.A),
        (o, 65280),  # a private type nobody has: NODATA at the apex
    ]
    for owner in owners:
        if owner.startswith("*."):
            types = sorted({k[3] for k in ref if k[0] == owner})
            extra.append(("ggon-wild." + owner[2:], types[0]))
            extra.append(("ggon-wild." + owner[2:], 65280))
    cuts = sorted({k[0] for k in ref if k[3] == dns.rdatatype.NS and k[0] != o})
    for cut in cuts[:3]:
        extra.append(("ggon-below." + cut, dns.rdatatype.A))
    extra += chain_queries(ref, pairs)
    out = pairs + [(n, t) for n, t in extra if valid_name(n)]
    return out[:MAX_QUERIES_PER_ZONE]


def rdata_name(rd):
    """The name a CNAME's or DNAME's canonical rdata holds, as text."""
    return dns.name.from_wire(rd, 0)[0].to_text().lower()


def below(name, suffix):
    """The labels of `name` above `suffix` (text, no trailing dot), or None
    when `name` is not strictly below it."""
    if suffix == ".":
        return name[:-1] if name != "." else None
    if name.endswith("." + suffix):
        return name[: -len(suffix) - 1]
    return None


def under(labels, name):
    """`labels` (text) prepended to `name`."""
    return labels + "." + (name if name != "." else "")


def chain_queries(ref, pairs, per_alias=4, aliases=8):
    """Queries that make a server follow aliases inside the zone: each
    CNAME's owner asked for A and for the types its target has; below
    each DNAME (RFC 6672), a miss and the names that map onto the target's
    own names, asked for their types. Bounded per alias and per zone."""
    out = []
    types_at = collections.defaultdict(list)
    for n, t in pairs:
        types_at[n].append(t)
    for owner, rtype, rd in sorted({(k[0], k[3], k[4]) for k in ref if k[3] in (dns.rdatatype.CNAME, dns.rdatatype.DNAME)})[:aliases]:
        target = rdata_name(rd)
        if rtype == dns.rdatatype.CNAME:
            wanted = [dns.rdatatype.A] + [t for t in types_at.get(target, []) if t != dns.rdatatype.A]
            out += [(owner, t) for t in wanted[:per_alias]]
            continue
        out.append((under("ggon-dn", owner), dns.rdatatype.A))
        mapped = []
        for n, ts in sorted(types_at.items()):
            rel = below(n, target)
            if rel is not None:
                mapped += [(under(rel, owner), t) for t in ts[:2]]
        out += mapped[:per_alias]
    return out


def valid_name(text):
    """False for a made-up miss name that would be too long."""
    try:
        dns.name.from_text(text)
        return True
    except Exception:
        return False
