//! scripts/fuzz's fallback when cargo-fuzz cannot run (no nightly toolchain):
//! replays every file of the given corpus directories through the targets,
//! then feeds random and mutated inputs until FUZZ_SECONDS have passed. No
//! coverage guidance and no sanitizers: much weaker than libFuzzer, but it
//! runs the same target bodies and the same invariants.
//!
//! Usage: replay TARGET[,TARGET]   (env: FUZZ_SECONDS per target, FUZZ_SEED)
//! Each target starts from its own corpus, `corpus/TARGET/` (run from
//! `fuzz/`). A failing input is written to artifacts/replay/crash-<target>-<n>.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ggon_fuzz::Target;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(8) == 0 {
        let len = rng.below(600);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut p = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(6) {
        let len = p.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                p[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                p[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                p.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                p.remove(rng.below(len));
            }
            4 if len > 0 => p.truncate(rng.below(len)),
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(other.len() + 1);
                p.extend_from_slice(&other[cut..]);
            }
            _ => {
                let n = 1 + rng.below(16);
                p.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    p
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(names) = args.next() else {
        eprintln!("usage: replay TARGET[,TARGET]");
        return ExitCode::from(2);
    };
    let mut targets: Vec<Target> = Vec::new();
    for t in names.split(',') {
        match ggon_fuzz::TARGETS.iter().find(|x| x.0 == t) {
            Some(x) => targets.push(*x),
            None => {
                eprintln!("replay: unknown target {t}");
                return ExitCode::from(2);
            }
        }
    }
    let secs: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    for (name, f) in targets {
        if !run_target(name, f, secs, seed) {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// One target: its corpus, then random and mutated inputs for `secs`.
fn run_target(name: &str, f: fn(&[u8]), secs: u64, seed: u64) -> bool {
    let dir = PathBuf::from("corpus").join(name);
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            seeds.push(std::fs::read(&path).unwrap());
        }
    }
    println!(
        "replay: target {name}: {} corpus inputs, {secs}s, FUZZ_SEED={seed}",
        seeds.len()
    );
    let run = |input: &[u8]| -> bool {
        if catch_unwind(AssertUnwindSafe(|| f(input))).is_ok() {
            return true;
        }
        let dir = PathBuf::from("artifacts/replay");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("crash-{name}-{}", input.len()));
        let _ = std::fs::write(&path, input);
        eprintln!(
            "replay: target {name} failed; input saved to {}",
            path.display()
        );
        false
    };
    if !seeds.iter().all(|s| run(s)) {
        return false;
    }
    let mut rng = Rng(seed);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        for _ in 0..100 {
            let input = mutate(&mut rng, &seeds);
            if !run(&input) {
                return false;
            }
            n += 1;
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64().max(0.001);
    println!("replay: target {name}: {n} generated inputs ({rate:.0}/s), no failure");
    true
}
