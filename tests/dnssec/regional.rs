//! Per-region answers in a zone ggond signs: each region's own answer
//! validates (AD, "fully validated") when asked from that region, by
//! source address (delv bound to 127.0.15.x / 127.0.16.x) and by EDNS
//! Client Subnet (unbound with its subnet module, forwarding the client's
//! ECS or its source address), before and after a regional failover, and
//! throughout a ZSK roll.

use super::roll::{keys, SHORT_ZONE};
use super::*;
use support::unbound::Unbound;

const AMS: &str = "127.0.0.21";
const FRA: &str = "127.0.0.22";
const NYC: &str = "127.0.0.23";
const GEO: &str = "geo.ggon.org";

/// Sources and ECS subnets of each region.
const EU_SRC: &str = "127.0.15.9";
const US_SRC: &str = "127.0.16.9";
const NOWHERE_SRC: &str = "127.0.17.9";
const EU_NET: &str = "192.0.2.0/24";
const US_NET: &str = "198.51.100.0/24";

/// `zone` signed (NSEC) with `keys` (and `dnssec_extra`, e.g. a short
/// propagation), `ecs = true`, regions eu and us, and `geo` per-region
/// over three exec-checked targets (a target fails when DIR/<name>.up is
/// removed): eu prefers ams, us nyc, the default fra.
fn config(dir: &Path, zone: &str, keys: &[PathBuf], dnssec_extra: &str) -> String {
    let file = dir.join("ggon.org.zone");
    std::fs::write(&file, zone).expect("zone copy");
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{}\"", k.display()))
        .collect();
    let mut s = format!(
        "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\necs = true\nallow_transfer = [\"127.0.0.1\"]\n\
         dnssec = {{ keys = [{}]{dnssec_extra} }}\n\n\
         [[region]]\nname = \"eu\"\nnets = [\"127.0.15.0/24\", \"{EU_NET}\"]\n\n\
         [[region]]\nname = \"us\"\nnets = [\"127.0.16.0/24\", \"{US_NET}\"]\n\n\
         [[service]]\nname = \"geo\"\nfqdn = \"{GEO}\"\nttl = 1\nactive = \"per-region\"\n\
         order = {{ eu = [\"ams\", \"fra\"], us = [\"nyc\", \"ams\"], default = [\"fra\", \"nyc\"] }}\n",
        file.display(),
        keys.join(", "),
    );
    for (name, addr) in [("ams", AMS), ("fra", FRA), ("nyc", NYC)] {
        let flag = dir.join(format!("{name}.up"));
        std::fs::write(&flag, "").expect("flag file");
        s += &format!(
            "\n[[service.target]]\nname = \"{name}\"\naddresses = [\"{addr}\"]\n\
             check = {{ type = \"exec\", command = [\"test\", \"-e\", \"{}\"], interval = \"300ms\", rise = 1, fall = 1 }}\n",
            flag.display()
        );
    }
    s
}

/// `delv` straight to ggond from source `src`: (fully validated?, the A
/// addresses, the whole output).
fn delv_from(
    server: std::net::SocketAddr,
    anchor: &Path,
    src: &str,
) -> (bool, Vec<String>, String) {
    let port = server.port().to_string();
    let a = anchor.display().to_string();
    let out = run(
        "delv",
        &[
            "@127.0.0.1",
            "-p",
            &port,
            "-b",
            src,
            "-a",
            &a,
            "+root=ggon.org",
            GEO,
            "A",
        ],
        None,
        20,
    );
    let text = out.text();
    let addrs = text
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 5 && f[3] == "A").then(|| f[4].to_string())
        })
        .collect();
    let ok = text.contains("fully validated") && !text.contains("resolution failed");
    (ok, addrs, text)
}

/// Poll delv from `src` until it gets `want`, validated (bounded); every
/// answer on the way must have validated.
fn wait_delv(g: &Ggond, anchor: &Path, src: &str, want: &str, limit: Duration) {
    let mut seen = Vec::new();
    let hit = poll(limit, Duration::from_millis(200), || {
        let (ok, addrs, text) = delv_from(g.dns, anchor, src);
        seen.push((ok, addrs.clone(), text));
        (addrs == [want]).then_some(())
    });
    let last = seen.last().map(|s| s.2.clone()).unwrap_or_default();
    assert!(
        hit.is_some(),
        "delv from {src} never got {want}: {last}\n{}",
        g.log_tail()
    );
    for (ok, addrs, text) in &seen {
        assert!(*ok, "delv from {src} got {addrs:?} not validated: {text}");
    }
}

/// Ask unbound (validating, forwarding ECS) with these dig arguments until
/// it answers `want` (bounded: its cache may hold the last answer for the
/// TTL of 1 s); every answer on the way must have AD set.
fn wait_unbound(u: &Unbound, extra: &[&str], want: &str) {
    let mut seen = Vec::new();
    let hit = poll(secs(5), Duration::from_millis(200), || {
        let s = u.ask_with(extra, GEO, "A");
        seen.push(s.clone());
        (s.answers == [want]).then_some(())
    });
    assert!(
        hit.is_some(),
        "unbound {extra:?} never answered {want}: {:?}\n{}",
        seen.last(),
        u.log_tail()
    );
    for s in &seen {
        assert!(
            s.ad && s.rcode == "NOERROR",
            "unbound {extra:?}: an answer was not validated: {s:?}\n{}",
            u.log_tail()
        );
    }
}

/// unbound validating ggon.org with `ksk`; its subnet module sends the
/// client's ECS to ggond, or, when the client sent none, its source
/// address (a /24).
fn ecs_unbound(tmp: &TestDir, g: &Ggond, ksk: &Path) -> Unbound {
    let ecs = "    module-config: \"subnetcache validator iterator\"\n    \
               send-client-subnet: 127.0.0.1\n    max-client-subnet-ipv4: 24\n";
    Unbound::start_with(
        tmp.sub("unbound"),
        "ggon.org",
        g.dns,
        &dnskey_line(ksk),
        ecs,
    )
}

#[test]
fn each_regions_signed_answer_validates_from_its_region_across_a_failover() {
    let tmp = TestDir::new("dnssec-regional");
    let kdir = tmp.sub("keys");
    let (ksk, zsk) = bind_ecdsa_pair(&kdir);
    let gdir = tmp.sub("ggond");
    let g = Ggond::start(
        gdir.clone(),
        &config(&gdir, &zone_text(), &[ksk.clone(), zsk], ""),
    );
    let anchor = delv_anchor(&kdir, &ksk);
    // unbound's subnet module sends the client's ECS to ggond, or, when the
    // client sent none, its source address (a /24).
    let ecs = "    module-config: \"subnetcache validator iterator\"\n    \
               send-client-subnet: 127.0.0.1\n    max-client-subnet-ipv4: 24\n";
    let u = Unbound::start_with(
        tmp.sub("unbound"),
        "ggon.org",
        g.dns,
        &dnskey_line(&ksk),
        ecs,
    );

    // By source address, straight to ggond: each region its own answer.
    wait_delv(&g, &anchor, EU_SRC, AMS, secs(10));
    wait_delv(&g, &anchor, US_SRC, NYC, secs(10));
    wait_delv(&g, &anchor, NOWHERE_SRC, FRA, secs(10));
    // Through a validating resolver, by ECS and by the client's address.
    wait_unbound(&u, &[&format!("+subnet={EU_NET}")], AMS);
    wait_unbound(&u, &[&format!("+subnet={US_NET}")], NYC);
    wait_unbound(&u, &["-b", EU_SRC], AMS);
    wait_unbound(&u, &["-b", US_SRC], NYC);
    // Straight to ggond with DO and ECS: the region's RRset, its own RRSIG,
    // and the ECS scope as without DNSSEC (eu's 192.0.2.0/24 is a /24).
    let port = g.dns.port().to_string();
    let subnet = format!("+subnet={EU_NET}");
    let args = [
        "@127.0.0.1",
        "-p",
        &port,
        "+dnssec",
        "+norec",
        &subnet,
        GEO,
        "A",
    ];
    let out = run("dig", &args, None, 10).stdout;
    let rrs: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| f.len() >= 5)
        .collect();
    assert!(
        rrs.iter().any(|f| f[3] == "A" && f[4] == AMS)
            && rrs.iter().any(|f| f[3] == "RRSIG" && f[4] == "A")
            && out.contains(&format!("CLIENT-SUBNET: {EU_NET}/24")),
        "{out}"
    );
    // A family no target has: the zone's signed NODATA, for every region.
    let nodata = u.ask_with(&[&format!("+subnet={US_NET}")], GEO, "AAAA");
    assert!(
        nodata.ad && nodata.rcode == "NOERROR" && nodata.answers.is_empty(),
        "regional NODATA not validated: {nodata:?}\n{}",
        u.log_tail()
    );

    // ams fails: eu moves to fra, signed; us and the default stay.
    std::fs::remove_file(gdir.join("ams.up")).unwrap();
    wait_delv(&g, &anchor, EU_SRC, FRA, secs(15));
    wait_delv(&g, &anchor, US_SRC, NYC, secs(5));
    wait_delv(&g, &anchor, NOWHERE_SRC, FRA, secs(5));
    wait_unbound(&u, &[&format!("+subnet={EU_NET}")], FRA);
    wait_unbound(&u, &[&format!("+subnet={US_NET}")], NYC);
    wait_unbound(&u, &["-b", EU_SRC], FRA);
    wait_unbound(&u, &["-b", US_SRC], NYC);
    // The whole zone as transferred still verifies (it holds the default
    // answer; the regions' RRsets are not part of it).
    verify_transfer(g.dns, tmp.path(), "regional.zone");
}

#[test]
fn each_regions_answer_validates_throughout_a_zsk_roll() {
    let tmp = TestDir::new("dnssec-regional-roll");
    let kdir = tmp.sub("keys");
    let (ksk, zsk) = bind_ecdsa_pair(&kdir);
    let gdir = tmp.sub("ggond");
    let cfg = config(
        &gdir,
        SHORT_ZONE,
        &[ksk.clone(), zsk],
        ", propagation = \"1s\"",
    );
    let g = Ggond::start(gdir.clone(), &cfg);
    let u = ecs_unbound(&tmp, &g, &ksk);
    wait_unbound(&u, &[&format!("+subnet={EU_NET}")], AMS);
    let old_zsk = keys(&g).iter().find(|k| k.0 == "ZSK").unwrap().1;
    let out = g.ctl(&["dnssec", "roll", "ggon.org", "--zsk"]);
    assert!(out.ok, "{}", out.text());
    // Pre-publication, the new ZSK signing, the old one gone: each region's
    // answer validates all along, and ends signed by the new key.
    let mut asked = 0;
    let done = poll(secs(20), Duration::from_millis(150), || {
        for (net, want) in [(EU_NET, AMS), (US_NET, NYC)] {
            let s = u.ask_with(&[&format!("+subnet={net}")], GEO, "A");
            asked += 1;
            assert!(
                s.ad && s.answers == [want],
                "{net}: not validated during the roll: {s:?}\nkeys: {:?}\n{}\n{}",
                keys(&g),
                u.log_tail(),
                g.log_tail()
            );
        }
        (!keys(&g).iter().any(|k| k.1 == old_zsk)).then_some(())
    });
    assert!(
        done.is_some(),
        "the roll did not finish: {:?}\n{}",
        keys(&g),
        g.log_tail()
    );
    assert!(asked > 10, "asked only {asked} times during the roll");
    let anchor = delv_anchor(&kdir, &ksk);
    wait_delv(&g, &anchor, EU_SRC, AMS, secs(5));
    wait_delv(&g, &anchor, US_SRC, NYC, secs(5));
}
