//! Packets for the robustness tests: a fixed-seed PRNG, builders of raw DNS
//! messages, the hand-written malformed set, random and mutated packets, and
//! the seed corpus the fuzz targets start from.

use hickory_proto::rr::{Name, RecordType};

use super::reliability::{query_msg, ZONE};

// ---------------------------------------------------------------------------
// Deterministic randomness (SplitMix64): same seed, same packets, every run.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}

// ---------------------------------------------------------------------------
// Packets

/// Wire form of a dotted name (no compression).
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A hand-built message: header, one question given as raw name bytes, then
/// `rest` (records of the other sections, already encoded).
pub fn raw(flags: u16, counts: [u16; 4], qname: &[u8], qtype: u16, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0xAB, 0xCD];
    p.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        p.extend_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(qname);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(rest);
    p
}

/// An OPT record owned by the root.
pub fn opt_rr(payload: u16, version: u8, do_bit: bool, options: &[u8]) -> Vec<u8> {
    let mut r = vec![0, 0, 41];
    r.extend_from_slice(&payload.to_be_bytes());
    r.push(0);
    r.push(version);
    r.extend_from_slice(&(if do_bit { 0x8000u16 } else { 0 }).to_be_bytes());
    r.extend_from_slice(&(options.len() as u16).to_be_bytes());
    r.extend_from_slice(options);
    r
}

/// What the server must do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No response (over TCP: the connection is closed).
    Drop,
    /// A response with this rcode (the low 4 bits of the header's rcode).
    Rcode(u8),
    /// Some response with the query's ID.
    Reply,
}

pub struct Case {
    pub name: String,
    pub packet: Vec<u8>,
    pub expect: Expect,
}

fn case(name: impl Into<String>, packet: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        packet,
        expect,
    }
}

const RD: u16 = 0x0100;
const A: u16 = 1;

/// A dozen-odd valid and malformed packets: the checked-in fuzz seed corpus
/// (`fuzz/corpus/query/`), each with the file name it is stored under.
pub fn seed_corpus() -> Vec<Case> {
    use Expect::*;
    let cic = wire_name("cic.ggon.org");
    let mut long_label = vec![64u8];
    long_label.extend([b'a'; 64]);
    long_label.push(0);
    // An A record in the additional section whose owner is a pointer to itself.
    let self_ptr = {
        let off = (12 + cic.len() + 4) as u16 | 0xC000;
        let mut r = off.to_be_bytes().to_vec();
        r.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
        r
    };
    let mut update = raw(5 << 11, [1, 0, 1, 0], &wire_name("ggon.org"), 6, &[]);
    // An UPDATE's zone section asks for SOA; one update record: add cic A 127.0.0.99.
    update.extend_from_slice(&[0xC0, 12]);
    update.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 99]);
    vec![
        case(
            "valid-a",
            query_msg(1, "cic.ggon.org.", RecordType::A, None),
            Rcode(0),
        ),
        case(
            "valid-aaaa-edns",
            query_msg(2, "wiki.ggon.org.", RecordType::AAAA, Some(1232)),
            Rcode(0),
        ),
        case(
            "valid-mx",
            query_msg(3, "ggon.org.", RecordType::MX, None),
            Rcode(0),
        ),
        case(
            "valid-any",
            query_msg(4, "ggon.org.", RecordType::ANY, None),
            Rcode(0),
        ),
        case(
            "valid-nxdomain",
            query_msg(5, "nope.ggon.org.", RecordType::A, None),
            Rcode(3),
        ),
        case(
            "valid-refused",
            query_msg(6, "example.com.", RecordType::A, None),
            Rcode(5),
        ),
        case(
            "valid-wildcard",
            query_msg(7, "x.apps.ggon.org.", RecordType::A, None),
            Rcode(0),
        ),
        case(
            "axfr",
            query_msg(8, "ggon.org.", RecordType::AXFR, None),
            Rcode(5),
        ),
        case("update", update, Rcode(5)),
        case(
            "notify",
            raw(
                (4 << 11) | 0x0400,
                [1, 0, 0, 0],
                &wire_name("ggon.org"),
                6,
                &[],
            ),
            Rcode(4),
        ),
        case("truncated-header", vec![0x12, 0x34, 0x01, 0x00, 0x00], Drop),
        case(
            "label-over-63",
            raw(RD, [1, 0, 0, 0], &long_label, A, &[]),
            Rcode(1),
        ),
        case(
            "pointer-loop-additional",
            raw(RD, [1, 0, 0, 1], &cic, A, &self_ptr),
            Reply,
        ),
        case("qdcount-2", raw(RD, [2, 0, 0, 0], &cic, A, &[]), Rcode(1)),
        case(
            "edns-option-overrun",
            raw(
                RD,
                [1, 0, 0, 1],
                &cic,
                A,
                &opt_rr(1232, 0, false, &[0, 10, 0, 200, 1, 2]),
            ),
            Rcode(1),
        ),
        case(
            "edns-version-1",
            raw(RD, [1, 0, 0, 1], &cic, A, &opt_rr(1232, 1, false, &[])),
            Reply,
        ),
    ]
}

/// The generated malformed set: truncations, bad labels and names, pointer
/// loops, wrong counts, bogus EDNS, odd opcodes/classes/types.
pub fn malformed_set() -> Vec<Case> {
    use Expect::*;
    let mut out = Vec::new();
    let cic = wire_name("cic.ggon.org");

    // Every prefix of a few valid queries.
    for (i, (name, t, edns)) in [
        ("cic.ggon.org.", RecordType::A, None),
        ("wiki.ggon.org.", RecordType::AAAA, Some(1232)),
        ("ggon.org.", RecordType::MX, Some(4096)),
    ]
    .into_iter()
    .enumerate()
    {
        let full = query_msg(0x1000 + i as u16, name, t, edns);
        for len in 0..full.len() {
            let expect = if len < 12 { Drop } else { Rcode(1) };
            out.push(case(
                format!("truncated {name} at {len}"),
                full[..len].to_vec(),
                expect,
            ));
        }
    }

    // Label lengths over 63 (0x40 and 0x80 are the reserved/extended label
    // types, 0xC0 a compression pointer: none allowed in the question).
    for l in [64u8, 100, 127, 0x40, 0x80, 0xBF] {
        let mut n = vec![l];
        n.extend(std::iter::repeat_n(b'a', l as usize));
        n.push(0);
        out.push(case(
            format!("label length {l}"),
            raw(RD, [1, 0, 0, 0], &n, A, &[]),
            Rcode(1),
        ));
        // The same length byte with the packet ending right after it.
        out.push(case(
            format!("label length {l}, no data"),
            raw(RD, [1, 0, 0, 0], &[l], A, &[])[..13].to_vec(),
            Rcode(1),
        ));
    }
    out.push(case(
        "pointer in question",
        raw(RD, [1, 0, 0, 0], &[0xC0, 12], A, &[]),
        Rcode(1),
    ));
    out.push(case(
        "pointer loop in question",
        raw(RD, [1, 0, 0, 0], &[1, b'x', 0xC0, 12], A, &[]),
        Rcode(1),
    ));

    // Names over 255 octets, and exactly 255 (valid: out of zone → REFUSED).
    let mut big = Vec::new();
    for _ in 0..5 {
        big.push(60);
        big.extend([b'a'; 60]);
    }
    big.push(0);
    out.push(case(
        "name 306 octets",
        raw(RD, [1, 0, 0, 0], &big, A, &[]),
        Rcode(1),
    ));
    let ones = |n: usize| {
        let mut v = Vec::new();
        for _ in 0..n {
            v.extend([1, b'a']);
        }
        v.push(0);
        v
    };
    out.push(case(
        "name 257 octets (128 labels)",
        raw(RD, [1, 0, 0, 0], &ones(128), A, &[]),
        Rcode(1),
    ));
    out.push(case(
        "name 255 octets (127 labels)",
        raw(RD, [1, 0, 0, 0], &ones(127), A, &[]),
        Rcode(5),
    ));
    // 81 * 3 + 2 + 10 = 255 octets, inside our zone: NXDOMAIN.
    let mut in_zone_255 = Vec::new();
    for _ in 0..81 {
        in_zone_255.extend([2, b'z', b'z']);
    }
    in_zone_255.extend_from_slice(&[1, b'z']);
    in_zone_255.extend_from_slice(&wire_name("ggon.org"));
    assert_eq!(in_zone_255.len(), 255);
    out.push(case(
        "in-zone name of 255 octets",
        raw(RD, [1, 0, 0, 0], &in_zone_255, A, &[]),
        Rcode(3),
    ));

    // Compression pointer loops in the additional section.
    let ar_off = (12 + cic.len() + 4) as u16;
    let rec = |owner: &[u8]| {
        let mut r = owner.to_vec();
        r.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
        r
    };
    let self_loop = rec(&(ar_off | 0xC000).to_be_bytes());
    out.push(case(
        "additional owner points to itself",
        raw(RD, [1, 0, 0, 1], &cic, A, &self_loop),
        Reply,
    ));
    // Two records whose owners point at each other.
    let first_len = 2 + 14;
    let mut two = rec(&((ar_off + first_len) | 0xC000).to_be_bytes());
    two.extend(rec(&(ar_off | 0xC000).to_be_bytes()));
    out.push(case(
        "additional owners point at each other",
        raw(RD, [1, 0, 0, 2], &cic, A, &two),
        Reply,
    ));
    // A label then a pointer back to that label.
    let mut lp = vec![1, b'x'];
    lp.extend_from_slice(&(ar_off | 0xC000).to_be_bytes());
    out.push(case(
        "additional label then pointer to it",
        raw(RD, [1, 0, 0, 1], &cic, A, &rec(&lp)),
        Reply,
    ));
    // A pointer past the end, and a pointer cut in half.
    out.push(case(
        "additional pointer past end",
        raw(RD, [1, 0, 0, 1], &cic, A, &rec(&[0xFF, 0xFF])),
        Reply,
    ));
    out.push(case(
        "additional half pointer",
        raw(RD, [1, 0, 0, 1], &cic, A, &[0xC0]),
        Rcode(1),
    ));
    // 200 labels in an additional owner (more than any name can have).
    let mut many = Vec::new();
    for _ in 0..200 {
        many.extend([1, b'a']);
    }
    many.push(0);
    out.push(case(
        "additional owner of 200 labels",
        raw(RD, [1, 0, 0, 1], &cic, A, &rec(&many)),
        Rcode(1),
    ));

    // Section counts.
    for (qd, an, ns, ar, expect) in [
        (0, 0, 0, 0, Rcode(1)),
        (2, 0, 0, 0, Rcode(1)),
        (0xFFFF, 0, 0, 0, Rcode(1)),
        (1, 1, 0, 0, Rcode(1)),
        (1, 0, 1, 0, Rcode(1)),
        (1, 0, 0, 1, Rcode(1)),
        (1, 0, 0, 0xFFFF, Rcode(1)),
        (1, 0xFFFF, 0xFFFF, 0xFFFF, Rcode(1)),
    ] {
        out.push(case(
            format!("counts qd={qd} an={an} ns={ns} ar={ar}"),
            raw(RD, [qd, an, ns, ar], &cic, A, &[]),
            expect,
        ));
    }

    // EDNS.
    let edns = |name: &str, rr: Vec<u8>, ar: u16, expect: Expect| {
        case(
            format!("edns {name}"),
            raw(RD, [1, 0, 0, ar], &cic, A, &rr),
            expect,
        )
    };
    out.push(edns(
        "option length overruns",
        opt_rr(1232, 0, false, &[0, 10, 0, 200, 1, 2]),
        1,
        Rcode(1),
    ));
    out.push(edns(
        "option header cut",
        opt_rr(1232, 0, false, &[0, 10, 0]),
        1,
        Rcode(1),
    ));
    out.push(edns(
        "unknown options",
        opt_rr(1232, 0, true, &[0xFF, 0xEE, 0, 2, 9, 9, 0, 8, 0, 0]),
        1,
        Rcode(0),
    ));
    let mut zero_opts = Vec::new();
    for i in 0..300u16 {
        zero_opts.extend_from_slice(&i.to_be_bytes());
        zero_opts.extend_from_slice(&[0, 0]);
    }
    out.push(edns(
        "300 empty options",
        opt_rr(1232, 0, false, &zero_opts),
        1,
        Rcode(0),
    ));
    let mut two_opt = opt_rr(1232, 0, false, &[]);
    two_opt.extend(opt_rr(512, 0, false, &[]));
    out.push(edns("two OPT records", two_opt, 2, Rcode(1)));
    let mut named = vec![1, b'x'];
    named.extend_from_slice(&opt_rr(1232, 0, false, &[])[1..]);
    out.push(edns("OPT not owned by root", named, 1, Rcode(1)));
    out.push(edns("version 1", opt_rr(1232, 1, false, &[]), 1, Rcode(0)));
    out.push(edns(
        "version 255",
        opt_rr(1232, 255, true, &[]),
        1,
        Rcode(0),
    ));
    out.push(edns("payload 0", opt_rr(0, 0, false, &[]), 1, Rcode(0)));
    out.push(edns(
        "payload 65535",
        opt_rr(65535, 0, false, &[]),
        1,
        Rcode(0),
    ));
    let mut rdlen_long = opt_rr(1232, 0, false, &[]);
    let n = rdlen_long.len();
    rdlen_long[n - 2..].copy_from_slice(&500u16.to_be_bytes());
    out.push(edns("rdlength past end", rdlen_long, 1, Rcode(1)));
    out.push(case(
        "qtype OPT",
        raw(RD, [1, 0, 0, 0], &cic, 41, &[]),
        Rcode(1),
    ));
    let mut with_garbage = raw(RD, [1, 0, 0, 1], &cic, A, &opt_rr(1232, 0, false, &[]));
    with_garbage.extend_from_slice(&[1, 2, 3]);
    out.push(case("trailing garbage after OPT", with_garbage, Rcode(1)));

    // Header bits, opcodes, classes, types.
    out.push(case(
        "a response (QR=1)",
        raw(0x8000 | RD, [1, 0, 0, 0], &cic, A, &[]),
        Drop,
    ));
    out.push(case(
        "QR=1 with garbage",
        vec![0, 0, 0x80, 0, 0xFF, 0xFF],
        Drop,
    ));
    for opcode in [1u16, 2, 3, 6, 15] {
        out.push(case(
            format!("opcode {opcode}"),
            raw(opcode << 11, [1, 0, 0, 0], &cic, A, &[]),
            Rcode(4),
        ));
    }
    out.push(case(
        "opcode UPDATE, empty",
        raw(5 << 11, [1, 0, 0, 0], &wire_name("ggon.org"), 6, &[]),
        Rcode(5),
    ));
    out.push(case(
        "opcode NOTIFY",
        raw(4 << 11, [1, 0, 0, 0], &wire_name("ggon.org"), 6, &[]),
        Rcode(4),
    ));
    out.push(case(
        "opcode UPDATE, no question",
        raw(5 << 11, [0, 0, 0, 0], &[], 0, &[])[..12].to_vec(),
        Rcode(1),
    ));
    for t in [0u16, 250, 253, 254, 255, 65535] {
        out.push(case(
            format!("qtype {t}"),
            raw(RD, [1, 0, 0, 0], &cic, t, &[]),
            Reply,
        ));
    }
    let mut tsig = wire_name("key");
    tsig.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0, 0, 0]);
    // A TSIG record with no RDATA cannot be verified or even read: FORMERR
    // (RFC 8945 5.2: a malformed TSIG is a format error).
    out.push(case(
        "TSIG record without RDATA",
        raw(RD, [1, 0, 0, 1], &cic, A, &tsig),
        Rcode(1),
    ));
    for class in [0u16, 3, 4, 254, 65535] {
        let mut p = raw(RD, [1, 0, 0, 0], &cic, A, &[]);
        let n = p.len();
        p[n - 2..].copy_from_slice(&class.to_be_bytes());
        out.push(case(format!("qclass {class}"), p, Reply));
    }
    out.push(case(
        "all flags set but QR",
        vec![
            0xAA, 0xBB, 0x7F, 0xFF, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
        ],
        Rcode(4),
    ));
    out
}

/// `n` random byte strings (lengths 0..600) from a fixed seed.
pub fn random_packets(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = rng.below(600);
            rng.bytes(len)
        })
        .collect()
}

/// `n` mutations of the seed corpus (bit flips, byte sets, inserts, deletes,
/// truncations, header rewrites, splices), from a fixed seed.
pub fn mutated_packets(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let seeds: Vec<Vec<u8>> = seed_corpus().into_iter().map(|c| c.packet).collect();
    let mut rng = Rng::new(seed);
    (0..n).map(|_| mutate(&mut rng, &seeds)).collect()
}

pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut p = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = p.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                p[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                p[i] = rng.byte();
            }
            2 => {
                let i = rng.below(len + 1);
                let b = rng.byte();
                p.insert(i, b);
            }
            3 if len > 0 => {
                p.remove(rng.below(len));
            }
            4 if len > 0 => p.truncate(rng.below(len)),
            5 if len >= 12 => {
                // Rewrite a header count (or the flags) with a random value.
                let field = 2 + 2 * rng.below(5);
                let v = [rng.byte(), rng.byte()];
                p[field..field + 2].copy_from_slice(&v);
                if field == 2 {
                    p[2] &= 0x7F; // keep it a query so it gets past the QR check
                }
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(other.len() + 1);
                p.extend_from_slice(&other[cut..]);
            }
            _ => {
                let extra = 1 + rng.below(16);
                p.extend(rng.bytes(extra));
            }
        }
    }
    p
}

/// What the server's own parser says about a packet: the expectation for
/// packets with no hand-written one.
pub fn classify(p: &[u8]) -> Expect {
    match ggon::dns::wire::parse_query(p) {
        Err(ggon::dns::wire::Reject::Drop) => Expect::Drop,
        // Unparsable: FORMERR, unless the opcode is one we do not implement
        // (then NOTIMP, RFC 1035 4.1.1).
        Err(ggon::dns::wire::Reject::FormErr) => {
            if ggon::proto::codes::opcode::implemented((p[2] >> 3) & 0xF) {
                Expect::Rcode(1)
            } else {
                Expect::Rcode(4)
            }
        }
        Ok(_) => Expect::Reply,
    }
}

/// A compiled snapshot of [`ZONE`] plus cic's primary address (what the
/// daemon publishes at start), for in-process tests.
pub fn snapshot() -> ggon::snapshot::Snapshot {
    let origin = Name::from_ascii("ggon.org.").unwrap();
    let text = format!("{ZONE}cic IN A 127.0.0.11\n");
    let z = ggon::proto::zone::ZoneData::parse(&text, None, &origin).unwrap();
    ggon::snapshot::Snapshot::new(vec![std::sync::Arc::new(ggon::snapshot::compile(
        std::sync::Arc::new(z),
    ))])
}
