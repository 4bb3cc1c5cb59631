use super::*;

fn map(prefixes: &[(&str, Slot, Source)]) -> RegionMap {
    RegionMap::build(
        vec!["eu".into(), "us".into(), "asia".into()],
        prefixes
            .iter()
            .map(|(p, s, src)| (p.parse().unwrap(), *s, *src))
            .collect(),
    )
}

fn at(m: &RegionMap, a: &str) -> (Option<Slot>, u8) {
    let l = m.locate(a.parse().unwrap());
    (l.slot, l.scope)
}

#[test]
fn longest_prefix_wins_and_scope_is_the_block_that_answers_alike() {
    let m = map(&[
        ("10.0.0.0/8", 0, Source::Nets),
        ("10.1.0.0/16", 1, Source::Nets),
        ("10.1.2.0/24", 2, Source::Nets),
        ("2001:db8::/32", 1, Source::Nets),
    ]);
    // 10/8 less 10.1/16: 10.9.9.9 is in 10.2.0.0-10.255.255.255, whose
    // largest aligned block around it is 10.8.0.0/13.
    assert_eq!(at(&m, "10.9.9.9"), (Some(0), 13));
    assert_eq!(at(&m, "10.0.0.1"), (Some(0), 16));
    // 10.1/16 less 10.1.2.0/24: 10.1.8.0/21 holds 10.1.9.9.
    assert_eq!(at(&m, "10.1.9.9"), (Some(1), 21));
    assert_eq!(at(&m, "10.1.2.200"), (Some(2), 24));
    assert_eq!(at(&m, "11.0.0.1"), (None, 8));
    assert_eq!(at(&m, "192.0.2.1"), (None, 1));
    assert_eq!(at(&m, "2001:db8:5::1"), (Some(1), 32));
    assert_eq!(at(&m, "::ffff:10.1.2.3"), (Some(2), 24));
    assert_eq!(at(&m, "2001:db9::1"), (None, 32));
}

#[test]
fn nets_beat_geoip_at_equal_length_and_adjacent_ranges_merge() {
    let m = map(&[
        ("192.0.2.0/24", 1, Source::Geoip),
        ("192.0.2.0/24", 0, Source::Nets),
        ("192.0.3.0/24", 0, Source::Nets),
    ]);
    assert_eq!(at(&m, "192.0.2.9"), (Some(0), 23));
    assert_eq!(at(&m, "192.0.3.9"), (Some(0), 23));
    assert_eq!(m.ranges().0, 3);
}

#[test]
fn edges_of_the_address_space() {
    let m = map(&[
        ("0.0.0.0/0", 1, Source::Nets),
        ("255.255.255.255/32", 0, Source::Nets),
        ("::/0", 2, Source::Nets),
        ("ffff::/16", 0, Source::Nets),
    ]);
    assert_eq!(at(&m, "255.255.255.255"), (Some(0), 32));
    assert_eq!(at(&m, "255.255.255.254"), (Some(1), 32));
    assert_eq!(at(&m, "1.2.3.4"), (Some(1), 1));
    assert_eq!(at(&m, "ffff::1"), (Some(0), 16));
    assert_eq!(at(&m, "::1"), (Some(2), 1));
    let empty = map(&[]);
    assert_eq!(at(&empty, "1.2.3.4"), (None, 0));
}
