//! The Debian package: built by scripts/package from this build's binaries,
//! inspected (dpkg-deb, lintian), installed into a throw-away root where the
//! installed ggond serves the default config (throwaway-install.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::is_root;
use crate::support::ggond::GGOND;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Missing tools fail the test in CI (scripts/test installs them), and
/// skip it elsewhere.
fn require(tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools.iter().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("missing {missing:?} (scripts/test installs them)");
    }
    eprintln!("skipped: missing {missing:?}");
    false
}

/// Build the package from the test build's binaries; its path.
fn build(out: &Path) -> PathBuf {
    let bin_dir = Path::new(GGOND).parent().unwrap();
    let run = Command::new(Path::new(REPO).join("scripts/package"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(out)
        .arg("--fast")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "scripts/package failed:\n{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let deb = PathBuf::from(stdout.lines().last().expect("the package's path").trim());
    assert!(deb.exists(), "{}", deb.display());
    deb
}

#[test]
fn the_package_is_built_inspected_installed_and_serves() {
    if !require(&["dpkg-deb", "dpkg-shlibdeps", "strip"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let deb = build(dir.path());
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&format!("ggon_{version}-1_")),
        "{}",
        deb.display()
    );

    // Contents: dpkg-deb -c.
    let list = Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(list.status.success());
    let list = String::from_utf8_lossy(&list.stdout);
    for (path, mode) in [
        ("./usr/sbin/ggond", "-rwxr-xr-x root/root"),
        ("./usr/bin/ggon-ctl", "-rwxr-xr-x root/root"),
        ("./usr/bin/ggon-perf", "-rwxr-xr-x root/root"),
        ("./etc/ggon/ggon.toml", "-rw-r--r-- root/root"),
        (
            "./etc/ggon/zones/example.invalid.zone",
            "-rw-r--r-- root/root",
        ),
        ("./lib/systemd/system/ggond.service", "-rw-r--r-- root/root"),
        ("./usr/share/man/man8/ggond.8.gz", "-rw-r--r-- root/root"),
        ("./usr/share/man/man1/ggon-ctl.1.gz", "-rw-r--r-- root/root"),
        (
            "./usr/share/man/man1/ggon-perf.1.gz",
            "-rw-r--r-- root/root",
        ),
        (
            "./usr/share/bash-completion/completions/ggon-ctl",
            "-rw-r--r-- root/root",
        ),
        (
            "./usr/share/zsh/vendor-completions/_ggon-ctl",
            "-rw-r--r-- root/root",
        ),
        (
            "./usr/share/fish/vendor_completions.d/ggon-ctl.fish",
            "-rw-r--r-- root/root",
        ),
        ("./usr/share/doc/ggon/copyright", "-rw-r--r-- root/root"),
        (
            "./usr/share/doc/ggon/changelog.Debian.gz",
            "-rw-r--r-- root/root",
        ),
    ] {
        let line = list
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{list}"));
        assert!(line.starts_with(mode), "{line}");
    }
    let field = |name: &str| {
        let out = Command::new("dpkg-deb")
            .arg("-f")
            .arg(&deb)
            .arg(name)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
    assert!(field("Depends").contains("adduser"));

    // lintian: no errors.
    if require(&["lintian"]) {
        let out = Command::new("lintian")
            .args(["--no-tag-display-limit", "--display-level", ">=info"])
            .arg(&deb)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        eprintln!("lintian:\n{report}");
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    }

    // Installed into a throw-away root, where the installed ggond serves the
    // default config, runs as ggon, answers ggon-ctl; then purged.
    if !is_root() {
        eprintln!("skipped the install: needs root (CI runs as root)");
        return;
    }
    if !require(&["unshare", "chroot", "dig", "systemd-analyze", "ip"]) {
        return;
    }
    let base = dir.path().join("throwaway");
    std::fs::create_dir(&base).unwrap();
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--pid",
            "--fork",
            "--propagation",
            "private",
        ])
        .arg("bash")
        .arg(Path::new(REPO).join("tests/system/throwaway-install.sh"))
        .arg(&base)
        .arg(&deb)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{report}");
    assert!(
        out.status.success() && report.contains("ALL CHECKS PASSED"),
        "install in a throw-away root failed:\n{report}"
    );
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.strip_prefix("RESULT exposure "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{report}"));
    assert!(
        exposure <= 2.0,
        "systemd-analyze security rates the unit {exposure} (want OK, <= 2.0)"
    );
}
