//! DNAME (RFC 6672) and DS at a cut: ggond's answers against BIND's for
//! the same zone file.

use super::*;

/// The demo zone plus DNAMEs (targets outside the zone, so that BIND does
/// not go on resolving them), an occluded name, and a signed delegation.
fn dname_zone() -> String {
    format!(
        "{}\nd 300 IN DNAME target.example.\nx.d IN A 192.0.2.1\n\
         apexish 300 IN DNAME Other.Example.\n\
         sec IN NS ns.sec\nsec IN DS 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118\nns.sec IN A 127.0.0.53\n",
        zone_text()
    )
}

/// dig's answer section (and rcode, AA), with TTLs and case normalised.
fn answer(port: u16, name: &str, qtype: &str) -> (String, bool, Vec<String>) {
    let out = dig(
        port,
        &[
            "+norecurse",
            "+nocmd",
            "+nostats",
            "+noquestion",
            "+noadditional",
            "+noauthority",
            name,
            qtype,
        ],
    );
    let rcode = out
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_default();
    let aa = out
        .lines()
        .any(|l| l.contains("flags:") && l.contains(" aa"));
    let mut rrs: Vec<String> = parse_records(&out)
        .into_iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.name.to_lowercase(),
                r.rtype,
                r.rdata.to_lowercase()
            )
        })
        .collect();
    rrs.sort();
    (rcode, aa, rrs)
}

#[test]
fn dname_and_ds_at_a_cut_answer_like_bind() {
    let tmp = TestDir::new("dname");
    let zone = dname_zone();
    let bind = Bind::start(
        tmp.sub("bind"),
        BindSpec {
            keys: vec![],
            zone: BindZone::Primary {
                text: zone.clone(),
                allow_update: vec![],
                allow_transfer: vec![],
            },
            also_notify: vec![],
            port: None,
            zone_extra: String::new(),
        },
    );
    let gdir = tmp.sub("ggond");
    let file = gdir.join("ggon.org.zone");
    std::fs::write(&file, &zone).unwrap();
    let g = Ggond::start(
        gdir,
        &format!(
            "[[zone]]\norigin = \"ggon.org\"\nfile = \"{}\"\n",
            file.display()
        ),
    );
    let long = format!(
        "{}.{}.{}.{}.d.ggon.org.",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "e".repeat(48)
    );
    let questions = [
        ("www.d.ggon.org.", "A"),
        ("a.b.d.ggon.org.", "AAAA"),
        ("x.d.ggon.org.", "A"),
        ("d.ggon.org.", "DNAME"),
        ("d.ggon.org.", "A"),
        ("mail.apexish.ggon.org.", "MX"),
        (long.as_str(), "A"),
        ("sec.ggon.org.", "DS"),
    ];
    let mut compared = 0;
    for (name, qtype) in questions {
        let ours = answer(g.port(), name, qtype);
        let theirs = answer(bind.port, name, qtype);
        assert_eq!(ours, theirs, "{name} {qtype}: ggond vs BIND");
        compared += 1;
    }
    // Not vacuous: the answers are the ones RFC 6672 and RFC 4035 describe.
    let (rc, aa, rrs) = answer(g.port(), "www.d.ggon.org.", "A");
    assert_eq!(
        (rc.as_str(), aa, rrs.len()),
        ("NOERROR", true, 2),
        "{rrs:?}"
    );
    assert!(
        rrs.iter().any(|r| r.contains("CNAME www.target.example.")),
        "{rrs:?}"
    );
    let (rc, _, rrs) = answer(g.port(), &long, "A");
    assert_eq!((rc.as_str(), rrs.len()), ("YXDOMAIN", 1), "{rrs:?}");
    let (_, aa, rrs) = answer(g.port(), "sec.ggon.org.", "DS");
    assert!(aa && rrs.len() == 1 && rrs[0].contains(" DS "), "{rrs:?}");
    println!("{compared} DNAME/DS questions answered like BIND");
}
