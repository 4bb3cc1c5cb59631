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
    // Every option and argument of a subcommand is described, and no empty
    // default is shown.
    for page in &pages {
        let roff = std::fs::read_to_string(page).unwrap();
        assert!(!roff.contains("[default: ]"), "{page}: an empty default");
        if page.contains("ggon-ctl-") {
            let lines: Vec<&str> = roff.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                let item = l.starts_with("\\fB\\-\\-") || l.starts_with("<\\fI");
                if lines.get(i.wrapping_sub(1)) == Some(&".TP") && item {
                    let next = lines.get(i + 1).copied().unwrap_or("");
                    assert!(
                        !next.is_empty() && !next.starts_with('.'),
                        "{page}: {l} has no description"
                    );
                }
            }
        }
    }
    let remap = std::fs::read_to_string(
        pages
            .iter()
            .find(|p| p.ends_with("ggon-ctl-remap.1"))
            .unwrap(),
    )
    .unwrap();
    for want in [
        "The target to answer with",
        "Print JSON",
        "The service, by its",
    ] {
        assert!(
            remap.contains(want),
            "{want} in ggon-ctl-remap(1):\n{remap}"
        );
    }
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

/// What bash offers for the command line `words` (the last is the word
/// being completed), through the function `ggon-ctl completions bash`
/// registers for ggon-ctl, as bash calls it on <TAB>.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let line = words.join(" ");
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let probe = format!(
        "source {}\ncomplete -p ggon-ctl >/dev/null || exit 3\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n\
         COMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         fn=$(complete -p ggon-ctl | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p')\n\
         \"$fn\" ggon-ctl '{}' '{prev}'\necho \"REPLY ${{COMPREPLY[*]}}\"\n",
        script.display(),
        quoted.join(" "),
        words[cword],
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
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("REPLY "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
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
    let has = |reply: &[String], want: &str| reply.iter().any(|w| w == want);
    // `ggon-ctl re<TAB>`.
    let reply = bash_complete(&script, &["ggon-ctl", "re"]);
    for want in ["remap", "release", "reload"] {
        assert!(has(&reply, want), "{want} in {reply:?}");
    }
    assert!(
        !has(&reply, "status"),
        "only words starting with re: {reply:?}"
    );
    // `ggon-ctl <TAB>`: the subcommands, not the hidden one.
    let reply = bash_complete(&script, &["ggon-ctl", ""]);
    assert!(
        has(&reply, "drill") && has(&reply, "completions"),
        "{reply:?}"
    );
    assert!(!has(&reply, "generate-docs"), "hidden: {reply:?}");
    // `ggon-ctl remap --<TAB>`: remap's options (and the global ones).
    let reply = bash_complete(&script, &["ggon-ctl", "remap", "--"]);
    for want in ["--to", "--reason", "--for", "--dry-run", "--config"] {
        assert!(has(&reply, want), "{want} in {reply:?}");
    }
    // A subcommand's argument: `ggon-ctl completions <TAB>`, and a
    // subcommand of a subcommand: `ggon-ctl dnssec keygen --<TAB>`.
    let reply = bash_complete(&script, &["ggon-ctl", "completions", ""]);
    for want in ["bash", "zsh", "fish"] {
        assert!(has(&reply, want), "{want} in {reply:?}");
    }
    let reply = bash_complete(&script, &["ggon-ctl", "dnssec", "keygen", "--"]);
    assert!(
        has(&reply, "--algorithm") && has(&reply, "--dir"),
        "{reply:?}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("generate"),
        "the hidden command is nowhere in the script"
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
        assert!(
            text.contains("remap") && text.contains("dry-run"),
            "{shell}: {text}"
        );
        assert!(!text.contains("generate-docs"), "{shell}: hidden: {text}");
    }
    let out = Command::new(GGON_CTL)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
}
