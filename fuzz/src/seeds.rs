//! The seed corpus of each target, made from real inputs: the shipped zone
//! and configs, the zone files of other servers' test suites
//! (tests/data/zones), the request bodies `ggon-ctl` sends, messages built
//! as ggond and its peers build them. Written to `fuzz/corpus/TARGET/seed-*`
//! by `GGON_WRITE_CORPUS=1 cargo test --test dns fuzz_corpus::seeds`
//! (the `query` and `update` seeds come from tests/support/packets.rs).
//! Inputs the fuzzer found are kept beside them under other names.

use std::path::Path;

use ggon::decide::requests::{DrainRequest, DrillRequest, RemapRequest};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// One seed: its file name and bytes.
pub type Seed = (String, Vec<u8>);

/// The seeds of `target` (empty for the targets seeded elsewhere), read
/// from the checkout at `root`.
pub fn seeds(target: &str, root: &Path) -> Vec<Seed> {
    match target {
        "zone" => zone(root),
        "config" => config(root),
        "control" => control(),
        "tsig" => tsig(),
        "notify" => notify(),
        "transfer" => transfer(),
        "etcd" => etcd(),
        _ => Vec::new(),
    }
}

fn zone(root: &Path) -> Vec<Seed> {
    let shipped = std::fs::read(root.join("zones/ggon.org.zone")).unwrap();
    let mut out = vec![(
        "seed-ggon.org".to_string(),
        [b"ggon.org.\n", &shipped[..]].concat(),
    )];
    let data = root.join("tests/data/zones");
    let manifest = std::fs::read_to_string(data.join("manifest.tsv")).unwrap();
    let mut small: Vec<(String, String, Vec<u8>)> = manifest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (path, origin) = (f.next()?, f.next()?);
            let text = std::fs::read(data.join(path)).ok()?;
            let include = text.windows(8).any(|w| w.eq_ignore_ascii_case(b"$include"));
            (text.len() <= 3000 && !include).then(|| (path.to_string(), origin.to_string(), text))
        })
        .collect();
    small.sort();
    let step = (small.len() / 35).max(1);
    for (path, origin, text) in small.into_iter().step_by(step) {
        let name = format!("seed-{}", path.replace('/', "_"));
        out.push((name, [origin.as_bytes(), b"\n", &text[..]].concat()));
    }
    out
}

fn config(root: &Path) -> Vec<Seed> {
    let mut out = Vec::new();
    for f in ["ggon.toml", "geo.toml", "cluster/node1.toml"] {
        let text = std::fs::read(root.join("config").join(f)).unwrap();
        out.push((format!("seed-{}", f.replace('/', "_")), text));
    }
    // The shipped config with one line left out, at 24 places: mostly the
    // error path (a missing field, a table cut short), with its line.
    let text = std::fs::read_to_string(root.join("config/ggon.toml")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let step = (lines.len() / 24).max(1);
    for i in (0..lines.len()).step_by(step).take(24) {
        let cut: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|x| *x.1)
            .collect();
        out.push((
            format!("seed-ggon.toml-without-line-{}", i + 1),
            cut.join("\n").into_bytes(),
        ));
    }
    out
}

fn control() -> Vec<Seed> {
    let json = |v: &dyn erased::Json| v.bytes();
    let mut out: Vec<(u8, &str, Vec<u8>)> = vec![
        (
            0,
            "remap",
            json(&RemapRequest {
                to: "backup".into(),
                ..Default::default()
            }),
        ),
        (
            0,
            "remap-all",
            json(&RemapRequest {
                to: "backup2".into(),
                reason: "maintenance of the primary".into(),
                force: true,
                dry_run: true,
                duration: Some("2h".into()),
                region: Some("eu".into()),
            }),
        ),
        (
            0,
            "remap-bad-duration",
            br#"{"to":"backup","for":"2 fortnights"}"#.to_vec(),
        ),
        (0, "remap-no-target", b"{}".to_vec()),
        (0, "remap-wrong-type", br#"{"to":5,"force":"yes"}"#.to_vec()),
        (
            1,
            "drain",
            json(&DrainRequest {
                reason: "disk".into(),
                duration: Some("30m".into()),
                force: false,
            }),
        ),
        (1, "drain-force", br#"{"force":true}"#.to_vec()),
        (2, "drill-dry", json(&DrillRequest::default())),
        (
            2,
            "drill-fail",
            json(&DrillRequest {
                fail: Some("primary".into()),
                duration: Some("90s".into()),
                region: None,
            }),
        ),
        (2, "drill-no-duration", br#"{"fail":"primary"}"#.to_vec()),
        (3, "roll-zsk", br#"{"kind":"zsk"}"#.to_vec()),
        (3, "roll-bad", br#"{"kind":"dsk"}"#.to_vec()),
        (4, "status", b"service=cic".to_vec()),
        (5, "release-region", b"region=eu".to_vec()),
        (6, "history", b"service=cic&since=1h&limit=10".to_vec()),
        (6, "history-unix", b"since=1700000000".to_vec()),
        (6, "history-bad", b"since=yesterday&limit=-1".to_vec()),
        (7, "page", b"range=6h".to_vec()),
        (7, "page-bad", b"range=1y".to_vec()),
    ];
    out.drain(..)
        .map(|(r, n, b)| (format!("seed-{n}"), [&[r][..], &b].concat()))
        .collect()
}

/// Serializing the request types through one function pointer type.
mod erased {
    pub trait Json {
        fn bytes(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn bytes(&self) -> Vec<u8> {
            serde_json::to_vec(self).unwrap()
        }
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn soa(serial: u32) -> Record {
    let zone = &super::dns::snapshot().zones()[0].data;
    let mut soa = zone.soa().clone();
    soa.serial = serial;
    Record::from_rdata(name("ggon.org."), 3600, RData::SOA(soa))
}

fn a(owner: &str, ip: &str) -> Record {
    Record::from_rdata(
        name(owner),
        30,
        RData::A(ip.parse::<std::net::Ipv4Addr>().unwrap().into()),
    )
}

fn message(op: OpCode, qname: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(0x4747, MessageType::Query, op);
    let mut q = Query::query(name(qname), qtype);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m
}

/// The messages TSIG is checked on: a query, an UPDATE, a NOTIFY, AXFR and
/// IXFR requests.
fn signed_kinds() -> Vec<(&'static str, Vec<u8>)> {
    let mut update = message(OpCode::Update, "ggon.org.", RecordType::SOA);
    update.add_authority(a("new.ggon.org.", "192.0.2.7"));
    let mut ixfr = message(OpCode::Query, "ggon.org.", RecordType::IXFR);
    ixfr.add_authority(soa(7));
    vec![
        (
            "query",
            message(OpCode::Query, "cic.ggon.org.", RecordType::A)
                .to_vec()
                .unwrap(),
        ),
        ("update", update.to_vec().unwrap()),
        (
            "notify",
            message(OpCode::Notify, "ggon.org.", RecordType::SOA)
                .to_vec()
                .unwrap(),
        ),
        (
            "axfr",
            message(OpCode::Query, "ggon.org.", RecordType::AXFR)
                .to_vec()
                .unwrap(),
        ),
        ("ixfr", ixfr.to_vec().unwrap()),
    ]
}

fn tsig() -> Vec<Seed> {
    let mut out = Vec::new();
    // Edits: in the header, in the question, near the end (the MAC), a cut.
    let specs: [&[u8]; 4] = [
        &[0, 0x00, 0x03, 0x01],
        &[1, 0x00, 0x0c, 0x20, 0x00, 0x02, 0x80],
        &[2, 0xff, 0xf0, 0x01, 0x00, 0x0a, 0x01, 0x00, 0x20, 0x04],
        &[
            3, 0x00, 0x30, 0x00, 0x00, 0x01, 0x01, 0x00, 0x05, 0x40, 0xff, 0xff, 0x10,
        ],
    ];
    for (kind, msg) in signed_kinds() {
        for (i, spec) in specs.iter().enumerate() {
            out.push((format!("seed-{kind}-{i}"), [*spec, &msg].concat()));
        }
    }
    let key_file = format!(
        "key \"ggon-key\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
        super::tsig::SECRET
    );
    out.push(("seed-keyfile".into(), key_file.into_bytes()));
    out
}

fn notify() -> Vec<Seed> {
    let ours = message(OpCode::Notify, "ggon.org.", RecordType::SOA);
    let mut with_soa = ours.clone();
    with_soa.add_answer(soa(9));
    let other = message(OpCode::Notify, "example.org.", RecordType::SOA);
    let upper = message(OpCode::Notify, "GGON.org.", RecordType::SOA);
    let none = Message::new(1, MessageType::Query, OpCode::Notify);
    let mut out = Vec::new();
    for (n, m) in [
        ("ggon", ours),
        ("with-soa", with_soa),
        ("other-zone", other),
        ("upper-case", upper),
        ("no-question", none),
    ] {
        let b = m.to_vec().unwrap();
        out.push((format!("seed-{n}-from-primary"), [&[0u8][..], &b].concat()));
        out.push((
            format!("seed-{n}-from-elsewhere"),
            [&[1u8][..], &b].concat(),
        ));
    }
    out
}

/// A transfer answer as TCP carries it: each message with its length.
fn stream(messages: &[Vec<Record>], rcode: ResponseCode) -> Vec<u8> {
    let mut out = Vec::new();
    for recs in messages {
        let mut m = Message::new(0x4747, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.add_query(Query::query(name("ggon.org."), RecordType::AXFR));
        m.add_answers(recs.iter().cloned());
        let b = m.to_vec().unwrap();
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(&b);
    }
    out
}

fn transfer() -> Vec<Seed> {
    let zone = &super::dns::snapshot().zones()[0];
    let axfr = ggon::replicate::transfer_records(zone, None);
    let (one, two) = axfr.split_at(axfr.len() / 2);
    let ixfr = vec![
        soa(9),
        soa(7),
        a("cic.ggon.org.", "127.0.0.11"),
        soa(8),
        a("cic.ggon.org.", "127.0.0.12"),
        soa(8),
        a("cic.ggon.org.", "127.0.0.12"),
        soa(9),
        a("cic.ggon.org.", "127.0.0.13"),
        soa(9),
    ];
    let seeds: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "axfr",
            0,
            stream(std::slice::from_ref(&axfr), ResponseCode::NoError),
        ),
        (
            "axfr-two-messages",
            0,
            stream(&[one.to_vec(), two.to_vec()], ResponseCode::NoError),
        ),
        (
            "axfr-unended",
            0,
            stream(&[one.to_vec()], ResponseCode::NoError),
        ),
        ("axfr-refused", 0, stream(&[vec![]], ResponseCode::Refused)),
        (
            "ixfr",
            1,
            stream(std::slice::from_ref(&ixfr), ResponseCode::NoError),
        ),
        (
            "ixfr-split",
            1,
            stream(
                &[ixfr[..4].to_vec(), ixfr[4..].to_vec()],
                ResponseCode::NoError,
            ),
        ),
        (
            "ixfr-up-to-date",
            1,
            stream(&[vec![soa(7)]], ResponseCode::NoError),
        ),
        (
            "ixfr-answered-in-full",
            1,
            stream(&[axfr], ResponseCode::NoError),
        ),
        (
            "soa-answer",
            0,
            stream(&[vec![soa(9)]], ResponseCode::NoError)[2..].to_vec(),
        ),
    ];
    seeds
        .into_iter()
        .map(|(n, sel, b)| (format!("seed-{n}"), [&[sel][..], &b].concat()))
        .collect()
}

/// etcd operations as the `etcd` target reads them.
fn put(out: &mut Vec<u8>, prefix: u8, suffix: &str, value: &str, lease: u8) {
    out.extend([0, prefix, suffix.len() as u8]);
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
    out.push(lease);
}

fn delete(out: &mut Vec<u8>, prefix: u8, suffix: &str) {
    out.extend([1, prefix, suffix.len() as u8]);
    out.extend_from_slice(suffix.as_bytes());
}

fn etcd() -> Vec<Seed> {
    use ggon::cluster::votes;
    let member = r#"{"control":"127.0.0.1:5380","control_tls":false,"dns":["127.0.0.1:5353"],"since":1700000000}"#;
    let bucket = |healthy: bool| {
        let mut b = votes::Bucket::new();
        votes::set(&mut b, "cic", "primary", Some(healthy));
        votes::set(&mut b, "cic", "backup", Some(true));
        votes::encode(&b)
    };
    let cic = format!("{:04}", votes::bucket_of("cic"));
    let digest = ggon::cluster::digest::Digest {
        services: [("cic".to_string(), "ab12".to_string())].into(),
        zones: [("ggon.org.".to_string(), "cd34".to_string())].into(),
        dnssec: Default::default(),
        token: "ef56".into(),
    };
    let history = r#"{"time":1700000000,"kind":"remap","service":"cic","from":"primary","to":"backup","reason":"maintenance","who":"ops"}"#;
    let state = r#"{"active":"backup","pin":{"target":"backup","reason":"maintenance","author":"ops","since":1700000000}}"#;
    let mut cluster = Vec::new();
    for n in ["a", "b", "c"] {
        put(&mut cluster, 0, n, member, 7);
    }
    put(&mut cluster, 1, &format!("a/{cic}"), &bucket(false), 7);
    put(&mut cluster, 1, &format!("b/{cic}"), &bucket(false), 7);
    put(&mut cluster, 1, &format!("c/{cic}"), &bucket(true), 7);
    cluster.push(3);
    put(&mut cluster, 2, "", "a", 7);
    put(&mut cluster, 3, "cic", state, 0);
    put(&mut cluster, 4, "", r#"{"ggon.org.":42}"#, 0);
    put(&mut cluster, 6, "b", "17", 0);
    put(&mut cluster, 7, "0000000001", history, 0);
    let mut conf = Vec::new();
    for (chunk, value) in digest.chunks() {
        put(&mut conf, 5, &format!("a/{chunk:02}"), &value, 7);
    }
    let mut churn = cluster.clone();
    churn.push(2);
    delete(&mut churn, 0, "b");
    put(&mut churn, 1, &format!("a/{cic}"), &bucket(true), 7);
    delete(&mut churn, 2, "");
    churn.push(3);
    let mut garbage = cluster.clone();
    put(&mut garbage, 0, "a", "{not json", 7);
    put(&mut garbage, 1, &format!("b/{cic}"), "[]", 7);
    put(&mut garbage, 3, "cic", "null", 0);
    let mut leader = Vec::new();
    put(&mut leader, 0, "a", member, 7);
    put(&mut leader, 2, "", "a", 7);
    delete(&mut leader, 0, "a");
    put(&mut leader, 2, "", "b", 9);
    leader.push(2);
    let mut serials = Vec::new();
    put(
        &mut serials,
        4,
        "",
        r#"{"ggon.org.":42,"example.org.":7}"#,
        0,
    );
    put(&mut serials, 4, "", "[1,2]", 0);
    serials.push(2);
    delete(&mut serials, 4, "");
    let mut history_many = Vec::new();
    for i in 0..8 {
        put(&mut history_many, 7, &format!("{i:010}"), history, 0);
    }
    put(&mut history_many, 6, "a", "not a number", 0);
    put(&mut history_many, 6, "c", "-5", 0);
    let mut quorum = Vec::new();
    for n in ["a", "b", "c", "d", "e"] {
        put(&mut quorum, 0, n, member, 7);
        put(&mut quorum, 1, &format!("{n}/{cic}"), &bucket(n < "c"), 7);
    }
    quorum.extend([3, 2]);
    delete(&mut quorum, 1, &format!("a/{cic}"));
    quorum.extend([3, 2]);
    let mut other_keys = Vec::new();
    put(&mut other_keys, 8, "elsewhere", "x", 0);
    put(&mut other_keys, 1, "a/not-a-bucket", &bucket(true), 7);
    put(&mut other_keys, 5, "a/99", "{}", 7);
    other_keys.push(2);
    // Two spellings of one bucket (ggond writes only the first).
    let mut forms = Vec::new();
    put(&mut forms, 1, &format!("a/{cic}"), &bucket(false), 7);
    put(&mut forms, 1, &format!("a/0{cic}"), &bucket(true), 7);
    forms.push(2);
    vec![
        ("seed-bucket-forms".into(), forms),
        ("seed-leader".into(), leader),
        ("seed-serials".into(), serials),
        ("seed-history".into(), history_many),
        ("seed-quorum".into(), quorum),
        ("seed-other-keys".into(), other_keys),
        ("seed-cluster".into(), cluster),
        ("seed-digest".into(), [conf.clone(), vec![2]].concat()),
        ("seed-churn".into(), churn),
        ("seed-garbage".into(), garbage),
    ]
}
