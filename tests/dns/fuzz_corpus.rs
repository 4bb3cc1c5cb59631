//! Every fuzz target's checked-in corpus (`fuzz/corpus/TARGET/`: the seeds
//! and every input a fuzzer found worth keeping, crashes it found among
//! them) replayed through the target's body, on the stable toolchain: a
//! regression of any parser that takes outside input fails here, without a
//! fuzzer. The bodies are the fuzz crate's own (`fuzz/src/`), included.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[allow(dead_code, unused_imports)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz_bodies;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(target: &str) -> PathBuf {
    root().join("fuzz/corpus").join(target)
}

/// Each target's corpus: at least a dozen inputs, every one run through
/// the target without a panic (an invariant broken is a panic).
#[test]
fn every_target_replays_its_corpus() {
    let started = Instant::now();
    let mut failed = Vec::new();
    for (name, body) in fuzz_bodies::TARGETS {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus(name))
            .unwrap_or_else(|e| panic!("{}: {e}", corpus(name).display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 8, "corpus of {name}: {} files", files.len());
        let t = Instant::now();
        for f in &files {
            let input = std::fs::read(f).unwrap();
            if catch_unwind(AssertUnwindSafe(|| body(&input))).is_err() {
                failed.push(f.display().to_string());
            }
        }
        println!("{name}: {} inputs in {:.2?}", files.len(), t.elapsed());
    }
    println!("all corpora in {:.2?}", started.elapsed());
    assert!(failed.is_empty(), "inputs that fail: {failed:#?}");
}

/// The checked-in seeds (`seed-*`) are what `fuzz_bodies::seeds` makes
/// from the checkout's real inputs. Regenerate with
/// `GGON_WRITE_CORPUS=1 cargo test --test dns fuzz_corpus::seeds`.
#[test]
fn seeds_match_checked_in_files() {
    let write = std::env::var_os("GGON_WRITE_CORPUS").is_some();
    for (name, _) in fuzz_bodies::TARGETS {
        let seeds = fuzz_bodies::seeds::seeds(name, root());
        if write && !seeds.is_empty() {
            std::fs::create_dir_all(corpus(name)).unwrap();
        }
        for (file, bytes) in seeds {
            let path = corpus(name).join(&file);
            if write {
                std::fs::write(&path, &bytes).unwrap();
            }
            let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (regenerate: GGON_WRITE_CORPUS=1)", path.display())
            });
            assert!(
                on_disk == bytes,
                "{} is stale (regenerate: GGON_WRITE_CORPUS=1)",
                path.display()
            );
        }
    }
}
