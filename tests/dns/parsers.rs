//! Bad input files never panic: mutated zone files (parsed and compiled) and
//! mutated configs (parsed and validated) give an error or a result, never a
//! crash. A bad file on reload must leave the running instance serving.

use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `count` mutations of `base` (1–8 byte edits each, from an alphabet that
/// matters to the grammar), fixed seed.
fn mutations(base: &str, alphabet: &[u8], count: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let mut b = base.as_bytes().to_vec();
        for _ in 0..(rng.next() % 8 + 1) {
            let i = (rng.next() as usize) % b.len();
            let c = alphabet[(rng.next() as usize) % alphabet.len()];
            match rng.next() % 3 {
                0 => b[i] = c,
                1 => {
                    b.remove(i);
                }
                _ => b.insert(i, c),
            }
        }
        if let Ok(s) = String::from_utf8(b) {
            out.push(s);
        }
    }
    out
}

#[test]
fn mutated_zone_files_never_panic() {
    let base = include_str!("../../zones/ggon.org.zone");
    let origin = hickory_proto::rr::Name::from_ascii("ggon.org.").unwrap();
    let mut ok = 0;
    for text in mutations(
        base,
        b" \t\n();$@*.\\\"0123456789abcINSOAMXTCNAME",
        20_000,
        0x5eed,
    ) {
        if let Ok(z) = ggon::proto::zone::ZoneData::parse(&text, None, &origin) {
            let _ = ggon::snapshot::compile(std::sync::Arc::new(z));
            ok += 1;
        }
    }
    println!("20000 mutated zone files: {ok} parsed and compiled, the rest rejected");
}

#[test]
fn mutated_configs_never_panic() {
    let base = include_str!("../../config/ggon.toml");
    let mut ok = 0;
    for text in mutations(
        base,
        b" \t\n[]{}=,\"'.:0123456789abcsmhtrue#",
        20_000,
        0xc0f1,
    ) {
        if ggon::config::Config::parse(&text, Path::new("ggon.toml")).is_ok() {
            ok += 1;
        }
    }
    println!("20000 mutated configs: {ok} valid, the rest rejected with an error");
}
