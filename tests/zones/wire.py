"""Records as tests/zones/compare.py compares them: read from BIND's raw
master format and from DNS messages without dnspython's RDATA parsing
(which refuses some RDATA that BIND accepts), keyed with RDATA in
canonical form."""

import struct

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype


def read_tcp_wire(sock):
    """One DNS message from a TCP stream (two-octet length first); each
    read is bounded by the socket's timeout."""

    def exactly(n):
        buf = b""
        for _ in range(n + 1):
            if len(buf) >= n:
                break
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk
        return buf
    (n,) = struct.unpack("!H", exactly(2))
    return exactly(n)


# The types whose RDATA names a server may compress (RFC 3597 4: the
# RFC 1035 types), with the layout of their RDATA: "N" a name, a number
# that many fixed octets.


# The types whose RDATA names a server may compress (RFC 3597 4: the
# RFC 1035 types), with the layout of their RDATA: "N" a name, a number
# that many fixed octets.
COMPRESSIBLE = {
    dns.rdatatype.NS: ["N"], dns.rdatatype.CNAME: ["N"], dns.rdatatype.PTR: ["N"],
    dns.rdatatype.MB: ["N"], dns.rdatatype.MG: ["N"], dns.rdatatype.MR: ["N"],
    dns.rdatatype.MD: ["N"], dns.rdatatype.MF: ["N"],
    dns.rdatatype.MX: [2, "N"], dns.rdatatype.MINFO: ["N", "N"],
    dns.rdatatype.SOA: ["N", "N", 20],
}


def read_records(wire):
    """(rcode, [(owner, type, class, ttl, rdata)]) of a response's answer
    section, names decompressed (in RDATA too, for the types above)."""
    _id, flags, qd, an = struct.unpack_from("!HHHH", wire, 0)
    pos = 12
    for _ in range(qd):
        _, used = dns.name.from_wire(wire, pos)
        pos += used + 4
    out = []
    for _ in range(an):
        owner, used = dns.name.from_wire(wire, pos)
        pos += used
        rdtype, rdclass, ttl, rdlen = struct.unpack_from("!HHIH", wire, pos)
        pos += 10
        end = pos + rdlen
        layout = COMPRESSIBLE.get(rdtype)
        if layout is None:
            rdata = wire[pos:end]
        else:
            rdata, p = b"", pos
            for part in layout:
                if part == "N":
                    n, used = dns.name.from_wire(wire, p)
                    rdata += n.to_wire()
                    p += used
                else:
                    rdata += wire[p : p + part]
                    p += part
        out.append((owner, rdtype, rdclass, ttl, rdata))
        pos = end
    return flags & 0xF, out


def parse_bind_raw(data):
    """BIND's raw master format (lib/dns/masterdump.c, version 1): a header of
    six 32-bit words, then rdatasets: totallen(32) class(16) type(16)
    covers(16) ttl(32) count(32) namelen(16) name, count x (len(16) rdata)."""
    fmt, version = struct.unpack_from("!II", data, 0)
    pos = 24 if version == 1 else 12
    records = set()
    guard = 0
    while pos < len(data):
        guard += 1
        if guard > 10_000_000:
            raise ValueError("raw file too long")
        totallen, rdclass, rdtype, _covers, ttl, count = struct.unpack_from("!IHHHII", data, pos)
        end = pos + totallen
        p = pos + 18
        (namelen,) = struct.unpack_from("!H", data, p)
        p += 2
        owner, _ = dns.name.from_wire(data[p : p + namelen], 0)
        p += namelen
        for _ in range(count):
            (rlen,) = struct.unpack_from("!H", data, p)
            p += 2
            records.add(record_key(owner, ttl, rdclass, rdtype, data[p : p + rlen]))
            p += rlen
        if p != end:
            raise ValueError(f"rdataset length mismatch at {pos}")
        pos = end
    return records


def canonical_rdata(rdclass, rdtype, wire):
    try:
        rd = dns.rdata.from_wire(rdclass, rdtype, wire, 0, len(wire))
        return rd.to_digestable(dns.name.root)
    except Exception:
        return bytes(wire)


def record_key(owner, ttl, rdclass, rdtype, wire):
    return (
        owner.to_text().lower(),
        int(ttl),
        int(rdclass),
        int(rdtype),
        canonical_rdata(rdclass, rdtype, wire),
    )


def tname(k):
    return dns.rdatatype.to_text(k[3])


def show_key(k):
    owner, ttl, rdclass, rdtype, rd = k
    try:
        text = dns.rdata.from_wire(rdclass, rdtype, rd, 0, len(rd)).to_text()
    except Exception:
        text = "\\# %d %s" % (len(rd), rd.hex())
    return f"{owner} {ttl} {dns.rdataclass.to_text(rdclass)} {dns.rdatatype.to_text(rdtype)} {text[:80]}"
