//! Key rolls with shortened timers (TTLs of 1 s, propagation 1 s), run by
//! `ggon-ctl dnssec roll`, validated through unbound at every step.

use super::*;
use support::unbound::Unbound;

pub const SHORT_ZONE: &str = "$ORIGIN ggon.org.\n$TTL 1\n\
@ IN SOA ns1 hostmaster 1 60 60 600 1\n@ IN NS ns1\nns1 IN A 127.0.0.1\nwww IN A 127.0.0.80\n";

/// Keys and states as `ggon-ctl dnssec status --json` reads them over DNS.
pub fn keys(g: &Ggond) -> Vec<(String, u64, bool)> {
    let server = g.dns.to_string();
    let out = g.ctl(&["dnssec", "status", "--server", &server, "--json"]);
    assert!(out.ok, "{}", out.text());
    keys_in(&out.stdout)
}

/// (role, tag, signing) of each key in `ggon-ctl dnssec status --json`.
pub fn keys_in(json: &str) -> Vec<(String, u64, bool)> {
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    let mut ks: Vec<(String, u64, bool)> = v[0]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["role"].as_str().unwrap_or("").to_string(),
                k["tag"].as_u64().unwrap_or(0),
                k["signing"] == true,
            )
        })
        .collect();
    ks.sort();
    ks
}

fn ds_of(g: &Ggond, tag: u64) -> String {
    let server = g.dns.to_string();
    let out = g.ctl(&["dnssec", "status", "--server", &server, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    v[0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["tag"].as_u64() == Some(tag))
        .and_then(|k| k["ds"].as_str())
        .expect("a DS for the KSK")
        .to_string()
}

/// Ask every resolver until `done` holds (bounded); every answer on the
/// way must be validated.
pub fn validate_until(
    rs: &[&Unbound],
    g: &Ggond,
    limit: Duration,
    done: impl Fn() -> bool,
) -> usize {
    let mut asked = 0;
    let hit = poll(limit, Duration::from_millis(150), || {
        for u in rs {
            let s = u.ask("cic.ggon.org", "A");
            asked += 1;
            assert!(
                s.ad && s.answers == vec![PRIMARY.to_string()],
                "not validated during the roll: {s:?}\nkeys now: {:?}\n{}\n{}",
                keys(g),
                u.log_tail(),
                g.log_tail()
            );
            let nx = u.ask("nope.ggon.org", "A");
            assert!(
                nx.ad && nx.rcode == "NXDOMAIN",
                "denial not validated during the roll: {nx:?}\nggond serves now:\n{}\n\
                 keys now: {:?}\n{}\n{}",
                dig(
                    g.port(),
                    &["+dnssec", "+norec", "+multi", "nope.ggon.org", "A"]
                ),
                keys(g),
                u.log_tail(),
                g.log_tail()
            );
        }
        done().then_some(())
    });
    assert!(
        hit.is_some(),
        "the roll did not reach its next state in {limit:?}: {:?}\n{}",
        keys(g),
        g.log_tail()
    );
    asked
}

#[test]
fn zsk_and_ksk_rolls_validate_at_every_step() {
    let tmp = TestDir::new("dnssec-roll");
    let kdir = tmp.sub("keys");
    let (ksk, zsk) = bind_ecdsa_pair(&kdir);
    let gdir = tmp.sub("ggond");
    let zone = gdir.join("ggon.org.zone");
    std::fs::write(&zone, SHORT_ZONE).unwrap();
    let cfg = format!(
        "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\nallow_transfer = [\"127.0.0.1\"]\n\
         dnssec = {{ keys = [\"{}\", \"{}\"], propagation = \"1s\" }}\n\n{}",
        zone.display(),
        ksk.display(),
        zsk.display(),
        cic_service(&gdir)
    );
    let mut g = Ggond::start(gdir.clone(), &cfg);
    let old = Unbound::start(
        tmp.sub("unbound-old"),
        "ggon.org",
        g.dns,
        &dnskey_line(&ksk),
    );
    validate_until(&[&old], &g, secs(10), || true);
    let before = keys(&g);
    assert_eq!(before.len(), 2, "{before:?}");
    let old_zsk = before.iter().find(|k| k.0 == "ZSK").unwrap().1;
    let old_ksk = before.iter().find(|k| k.0 == "KSK").unwrap().1;

    // ZSK roll: a new ZSK is published but does not sign ...
    let out = g.ctl(&["dnssec", "roll", "ggon.org", "--zsk"]);
    assert!(out.ok && out.stdout.contains("published"), "{}", out.text());
    // Times an operator reads: `signs from 2026-12-06T17:04:14Z`.
    let from = out.stdout.split("signs from ").nth(1).unwrap_or_default();
    assert!(
        from.len() > 20
            && from.as_bytes()[4] == b'-'
            && from.as_bytes()[10] == b'T'
            && from.as_bytes()[19] == b'Z',
        "{}",
        out.stdout
    );
    let published = keys(&g);
    let zsks: Vec<_> = published.iter().filter(|k| k.0 == "ZSK").collect();
    assert_eq!(
        zsks.len(),
        2,
        "the new ZSK is not in the key set: {published:?}"
    );
    assert!(
        zsks.iter().any(|k| k.1 == old_zsk && k.2) && zsks.iter().any(|k| k.1 != old_zsk && !k.2),
        "pre-publication: the old ZSK signs, the new one does not yet: {published:?}"
    );
    verify_transfer(g.dns, tmp.path(), "zsk-published.zone");
    // ... then signs while the old one stays published ...
    validate_until(&[&old], &g, secs(10), || {
        keys(&g)
            .iter()
            .any(|k| k.0 == "ZSK" && k.1 != old_zsk && k.2)
    });
    let swapped = keys(&g);
    assert!(
        swapped.iter().any(|k| k.1 == old_zsk && !k.2),
        "the old ZSK should stay published, not signing: {swapped:?}"
    );
    // ... and leaves.
    validate_until(&[&old], &g, secs(10), || {
        !keys(&g).iter().any(|k| k.1 == old_zsk)
    });
    verify_transfer(g.dns, tmp.path(), "zsk-rolled.zone");

    // KSK roll: both sign the key set; a resolver with either anchor validates.
    let out = g.ctl(&["dnssec", "roll", "ggon.org", "--ksk"]);
    assert!(out.ok && out.stdout.contains("DS"), "{}", out.text());
    let ks = keys(&g);
    let new_ksk = ks
        .iter()
        .find(|k| k.0 == "KSK" && k.1 != old_ksk)
        .expect("a new KSK")
        .1;
    assert!(
        ks.iter().filter(|k| k.0 == "KSK").all(|k| k.2),
        "double signature: {ks:?}"
    );
    // A second roll while one is under way is refused.
    let busy = g.ctl(&["dnssec", "roll", "ggon.org", "--zsk"]);
    assert!(
        !busy.ok && busy.text().contains("under way"),
        "{}",
        busy.text()
    );
    let ds = ds_of(&g, new_ksk);
    let ds_anchor = ds.replace(" IN ", " ");
    let new = Unbound::start(tmp.sub("unbound-new"), "ggon.org", g.dns, &ds_anchor);
    validate_until(&[&old, &new], &g, secs(2), || true);
    validate_until(&[&new], &g, secs(10), || {
        !keys(&g).iter().any(|k| k.1 == old_ksk)
    });
    verify_transfer(g.dns, tmp.path(), "ksk-rolled.zone");
    let old_now = old.ask("cic.ggon.org", "A");
    assert_eq!(
        old_now.rcode, "SERVFAIL",
        "the old KSK is gone, its anchor must fail: {old_now:?}"
    );

    // The key set survives a restart (saved under the state directory).
    let after = keys(&g);
    g.restart();
    assert_eq!(
        keys(&g),
        after,
        "the rolled key set was not kept across a restart"
    );
}
