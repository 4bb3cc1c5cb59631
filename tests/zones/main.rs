//! Zone compatibility: `tests/zones/compare.py` runs the corpus of
//! zone files written by others (`tests/data/zones/`) through
//! named-checkzone, ggond (load, AXFR against named-compilezone's canonical
//! form) and NSD (answers; BIND's named decides where the two differ), and
//! this test holds the counts to the minima in
//! `tests/data/zones/expected.json`, so that what loads today keeps loading.
//! Raise the minima there when ggond gets better.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const GGOND: &str = env!("CARGO_BIN_EXE_ggond");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The whole run takes about 15-40 s on 2 cores; this is the hard stop.
const LIMIT: Duration = Duration::from_secs(600);

/// A python3 that can import dnspython: $GGON_PYTHON, then `python3` on
/// PATH, then the system one (Debian's python3-dnspython installs there).
/// `Err` says why none fits; `Ok(None)` means there is no python3 at all.
fn python() -> Result<Option<String>, String> {
    let mut candidates: Vec<String> = Vec::new();
    if let Ok(p) = std::env::var("GGON_PYTHON") {
        candidates.push(p);
    }
    candidates.push("python3".into());
    candidates.push("/usr/bin/python3".into());
    let mut any = false;
    for c in &candidates {
        let status = Command::new(c)
            .args(["-c", "import dns.message, dns.query, dns.rdata"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => return Ok(Some(c.clone())),
            Ok(_) => any = true,
            Err(_) => {}
        }
    }
    if any {
        Err(format!(
            "no python3 here can import dnspython (tried {candidates:?}); \
             install python3-dnspython (scripts/test does)"
        ))
    } else {
        Ok(None)
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: bad JSON: {e}", path.display()))
}

fn count(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

#[test]
fn corpus_counts_do_not_regress() {
    let py = match python() {
        Ok(Some(p)) => p,
        Ok(None) => {
            eprintln!("SKIP zones corpus: python3 is not installed");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let root = PathBuf::from(ROOT);
    let out = tempfile::Builder::new()
        .prefix("ggon-zones-report-")
        .tempdir()
        .expect("temp dir");
    let report_path = out.path().join("report.json");
    let mut child = Command::new(&py)
        .arg(root.join("tests/zones/compare.py"))
        .arg("--all")
        .arg("--ggond")
        .arg(GGOND)
        .arg("--out")
        .arg(&report_path)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tests/zones/compare.py");
    // Drain both pipes on threads so a chatty run cannot block on them.
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tests/zones/compare.py did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    // The per-file lines and the counts, for whoever reads the test log.
    println!("{stdout}");
    assert!(
        status.success(),
        "compare.py failed ({status}):\n{stdout}\n{stderr}"
    );

    let report = read_json(&report_path);
    let expected = read_json(&root.join("tests/data/zones/expected.json"));
    let got = &report["counts"];
    let mut regressions = Vec::new();
    let mut better = Vec::new();
    for (key, min_key) in [
        ("accepted", "min_accepted"),
        ("loaded", "min_loaded"),
        ("axfr_equal", "min_axfr_equal"),
        ("answers_equal", "min_answers_equal"),
        ("answers_reference", "min_answers_reference"),
    ] {
        let (n, min) = (count(got, key), count(&expected, min_key));
        if n < min {
            regressions.push(format!("{key}: {n} < {min}"));
        } else if n > min {
            better.push(format!("{key}: {n} > {min}"));
        }
    }
    if !better.is_empty() {
        println!(
            "zones: better than tests/data/zones/expected.json ({}); raise the minima there",
            better.join(", ")
        );
    }
    assert!(
        regressions.is_empty(),
        "zone compatibility regressed ({}); see the FAIL lines above:\n{stdout}",
        regressions.join(", ")
    );
}
