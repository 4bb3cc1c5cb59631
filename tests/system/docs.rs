//! Man pages render with `man -l` without warnings; completions load in bash.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::ggond::GGON_CTL;

fn generate(dir: &Path) -> Vec<String> {
    let out = Command::new(GGON_CTL)
        .arg("generate-docs")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn man_pages_render_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(dir.path());
    let pages: Vec<&String> = files.iter().filter(|f| f.contains("/man/man")).collect();
    for want in [
        "man8/ggond.8",
        "man1/ggon-ctl.1",
        "man1/ggon-perf.1",
        "man1/ggon-ctl-remap.1",
        "man1/ggon-ctl-completions.1",
    ] {
        assert!(
            pages.iter().any(|p| p.ends_with(want)),
            "{want} in {pages:?}"
        );
    }
    assert!(
        !pages.iter().any(|p| p.contains("generate-docs")),
        "the hidden subcommand has no page"
    );
    if !have("man") {
        if std::env::var_os("CI").is_some() {
            panic!("man is missing (scripts/test installs man-db)");
        }
        eprintln!("skipped rendering: no man");
        return;
    }
    for page in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(page)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{page}: {warnings}");
        assert!(warnings.trim().is_empty(), "{page}: {warnings}");
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{page}:\n{text}"
        );
        let main = ["ggond.8", "ggon-ctl.1", "ggon-perf.1"]
            .iter()
            .any(|m| page.ends_with(&format!("/{m}")));
        if main {
            assert!(text.contains("EXIT STATUS"), "{page}:\n{text}");
        }
        if page.ends_with("/ggond.8") {
            for s in [
                "SIGNALS",
                "SYSTEMD",
                "DIAGNOSTICS",
                "FILES",
                "--log-format",
                "--user",
            ] {
                assert!(text.contains(s), "ggond(8) has {s}:\n{text}");
            }
        }
    }
}

#[test]
fn completions_load_in_bash() {
    let out = Command::new(GGON_CTL)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ggon-ctl.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    // What bash does on `ggon-ctl re<TAB>`.
    let probe = format!(
        "source {}\ncomplete -p ggon-ctl\nCOMP_WORDS=(ggon-ctl re)\nCOMP_CWORD=1\n\
         COMP_LINE='ggon-ctl re'\nCOMP_POINT=${{#COMP_LINE}}\n\
         fn=$(complete -p ggon-ctl | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')\n\
         \"$fn\" ggon-ctl re ggon-ctl\necho \"REPLY ${{COMPREPLY[*]}}\"\n",
        script.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &probe])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = stdout
        .lines()
        .find_map(|l| l.strip_prefix("REPLY "))
        .unwrap_or_else(|| panic!("{stdout}"));
    for want in ["remap", "release", "reload"] {
        assert!(
            reply.split_whitespace().any(|w| w == want),
            "{want} in {reply:?}"
        );
    }
    assert!(
        !reply.contains("status"),
        "only words starting with re: {reply:?}"
    );

    for (shell, marker) in [
        ("zsh", "#compdef ggon-ctl"),
        ("fish", "complete -c ggon-ctl"),
    ] {
        let out = Command::new(GGON_CTL)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {text}");
    }
    let out = Command::new(GGON_CTL)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
}
