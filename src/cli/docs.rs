//! Man pages (clap_mangen) and shell completions (clap_complete), generated
//! from the clap definitions, plus the sections clap does not know about:
//! exit statuses, signals, environment, files, systemd.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use roff::{bold, roman, Roff};

use super::ctl::Shell;

/// One of the programs documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Ggond,
    GgonCtl,
    GgonPerf,
}

impl Program {
    pub const ALL: [Program; 3] = [Program::Ggond, Program::GgonCtl, Program::GgonPerf];

    pub fn name(self) -> &'static str {
        match self {
            Program::Ggond => "ggond",
            Program::GgonCtl => "ggon-ctl",
            Program::GgonPerf => "ggon-perf",
        }
    }

    /// Man section: 8 for the daemon (in /usr/sbin), 1 for the others.
    pub fn section(self) -> &'static str {
        match self {
            Program::Ggond => "8",
            _ => "1",
        }
    }

    pub fn command(self) -> clap::Command {
        match self {
            Program::Ggond => super::ggond::Args::command(),
            Program::GgonCtl => super::ctl::Args::command(),
            Program::GgonPerf => super::perf::Args::command(),
        }
    }
}

/// A rendered man page: its file name (`ggond.8`) and roff source.
pub struct Page {
    pub file: String,
    pub section: String,
    pub roff: Vec<u8>,
}

enum Block {
    /// A paragraph.
    P(&'static str),
    /// A tagged paragraph: term in bold, then its description.
    Item(&'static str, &'static str),
}
use Block::{Item, P};

const GGOND_EXIT: &[Block] = &[
    Item(
        "0",
        "Stopped cleanly on SIGTERM or SIGINT (state saved), or --check-config found nothing wrong.",
    ),
    Item(
        "1",
        "A failure after the configuration was read: a socket could not be bound (address in \
         use, or a port below 1024 without root or CAP_NET_BIND_SERVICE), the switch to the \
         configured user failed, the state directory or control token file is not writable by \
         that user (the message names the path), or cluster mode could not start.",
    ),
    Item(
        "2",
        "The configuration is unusable and nothing was started: a config, zone file or TSIG key \
         error (the message names the file, the line and the field), an unknown [server] user \
         or group, started as root without [server] user, started as another unprivileged user \
         than [server] user, or a command-line usage error.",
    ),
];

const GGOND_MESSAGES: &[Block] = &[
    P(
        "A fatal error is one line on standard error, \"ggond: error: ...\", and ggond exits; \
       errors while it runs are ERROR log lines. The ones an operator meets first:",
    ),
    Item(
        "FILE:LINE: field `F`: ...",
        "A config or zone file error; fix that line (exit 2).",
    ),
    Item(
        "refusing to run as root: ...",
        "Set [server] user = \"ggon\" (an unprivileged account to switch to once the sockets \
         are bound), or user = \"root\" to run as root on purpose (exit 2).",
    ),
    Item(
        "FILE:LINE: field `server.user`: no user named `X`",
        "Create the account (the Debian package creates ggon) or fix the name (exit 2).",
    ),
    Item(
        "binding DNS sockets: ... Permission denied",
        "A port below 1024 needs root (then ggond drops to [server] user) or \
         CAP_NET_BIND_SERVICE, as the shipped systemd unit grants (exit 1).",
    ),
    Item(
        "state directory DIR is not writable by user U (uid N): ...",
        "chown the directory to that user, or point [server] state_dir elsewhere (exit 1).",
    ),
    Item(
        "reload rejected; still serving the previous configuration",
        "A reload (SIGHUP, ggon-ctl reload) found an error; the running configuration stays.",
    ),
];

const GGOND_SIGNALS: &[Block] = &[
    Item(
        "SIGHUP",
        "Re-read the config and zone files (as ggon-ctl reload does). A bad file is rejected \
         and the running configuration stays. Listen addresses, user, keys, zone modes and \
         notifiers are read at start only.",
    ),
    Item(
        "SIGTERM, SIGINT",
        "Stop: the control API and checks stop, in-flight TCP answers finish, state is saved.",
    ),
];

const GGOND_SYSTEMD: &[Block] = &[
    P(
        "The shipped unit (ggond.service) is Type=notify. ggond sends READY=1 once its zones are \
       loaded and its DNS and control sockets are bound; RELOADING=1 when a reload starts, then \
       READY=1 with STATUS= the result (\"reload done: ...\" or \"reload rejected: ...\"); \
       STOPPING=1 when it begins to shut down. With WatchdogSec= set, it sends WATCHDOG=1 every \
       half period while every UDP worker thread of the query path and the controller loop are \
       turning; a wedged one stops the messages, and systemd restarts ggond.",
    ),
    P(
        "Logs go to standard error. With --log-format auto (the default), when standard error is \
       the journal (JOURNAL_STREAM) each line carries a syslog priority prefix and no timestamp, \
       so journalctl shows levels and one timestamp. --log-format json writes one JSON object \
       per line for log shippers.",
    ),
];

const GGOND_ENV: &[Block] = &[
    Item("GGON_CONFIG", "The config file, as --config."),
    Item("GGON_LOG_FORMAT", "The log format, as --log-format."),
    Item(
        "RUST_LOG",
        "Which log lines are written (default info), e.g. RUST_LOG=ggon=debug.",
    ),
    Item(
        "NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID",
        "Set by systemd for Type=notify services and WatchdogSec= (see SYSTEMD).",
    ),
    Item(
        "JOURNAL_STREAM",
        "Set by systemd when standard error is the journal; selects the journal log format.",
    ),
];

const GGOND_FILES: &[Block] = &[
    Item(
        "/etc/ggon/ggon.toml",
        "The config of an installed system (config/ggon.toml in a checkout).",
    ),
    Item("/etc/ggon/zones/", "Zone files (RFC 1035 master files)."),
    Item(
        "/var/lib/ggon/",
        "State: state.json and state.journal (active targets, pins, drains, serials), history.jsonl (the audit \
         log), updates/ (journal of accepted RFC 2136 UPDATEs), control.token (the control \
         API's bearer token, mode 0600, created on first start).",
    ),
    Item(
        "/lib/systemd/system/ggond.service",
        "The systemd unit: runs ggond as user ggon with CAP_NET_BIND_SERVICE only.",
    ),
];

const CTL_EXIT: &[Block] = &[
    Item("0", "Done, and nothing needs attention."),
    Item(
        "1",
        "An error (ggond unreachable, token file unreadable, unknown service or target, a \
         refused remap or drain) or a result that needs attention: a drain that left the \
         target answered (WARNING), verify finding a stale server.",
    ),
    Item("2", "A command-line usage error."),
];

const CTL_ENV: &[Block] = &[
    Item("GGON_CONFIG", "ggond's config file, as --config."),
    Item("GGON_CONTROL", "The control API address, as --control."),
    Item("GGON_TOKEN_FILE", "The bearer token file, as --token-file."),
];

const CTL_FILES: &[Block] = &[
    Item(
        "config/ggon.toml, /etc/ggon/ggon.toml",
        "Without --config, the first that exists: a checkout's, else the installed one. The \
         control address ([control] listen) and token file are read from it.",
    ),
    Item(
        "/var/lib/ggon/control.token",
        "The token of an installed ggond (mode 0600, owned by ggon): run ggon-ctl as root or \
         as ggon.",
    ),
];

const PERF_EXIT: &[Block] = &[
    Item(
        "0",
        "The run completed (lost queries are reported in the statistics, not as an error).",
    ),
    Item(
        "1",
        "An error: unreadable or empty query file, a server that cannot be resolved, a \
         socket error.",
    ),
    Item("2", "A command-line usage error."),
];

fn blocks(roff: &mut Roff, heading: &str, blocks: &[Block]) {
    roff.control("SH", [heading]);
    for b in blocks {
        match b {
            P(text) => {
                roff.control("PP", [] as [&str; 0]);
                roff.text([roman(*text)]);
            }
            Item(term, text) => {
                roff.control("TP", [] as [&str; 0]);
                roff.text([bold(*term)]);
                roff.text([roman(*text)]);
            }
        }
    }
}

fn see_also(roff: &mut Roff, refs: &str) {
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(refs)]);
}

fn man(cmd: clap::Command, section: &str) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd)
        .section(section)
        .source(format!("ggon {}", env!("CARGO_PKG_VERSION")))
        .manual("ggon manual")
}

fn render(program: Program) -> io::Result<Page> {
    let cmd = program.command();
    let section = program.section();
    let m = man(cmd.clone(), section);
    let mut out = Vec::new();
    m.render_title(&mut out)?;
    m.render_name_section(&mut out)?;
    m.render_synopsis_section(&mut out)?;
    m.render_description_section(&mut out)?;
    m.render_options_section(&mut out)?;
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        m.render_subcommands_section(&mut out)?;
    }
    let mut extra = Roff::new();
    match program {
        Program::Ggond => {
            blocks(&mut extra, "SIGNALS", GGOND_SIGNALS);
            blocks(&mut extra, "SYSTEMD", GGOND_SYSTEMD);
            blocks(&mut extra, "EXIT STATUS", GGOND_EXIT);
            blocks(&mut extra, "DIAGNOSTICS", GGOND_MESSAGES);
            blocks(&mut extra, "ENVIRONMENT", GGOND_ENV);
            blocks(&mut extra, "FILES", GGOND_FILES);
            see_also(
                &mut extra,
                "ggon-ctl(1), ggon-perf(1), systemd.service(5), sd_notify(3)",
            );
        }
        Program::GgonCtl => {
            blocks(&mut extra, "EXIT STATUS", CTL_EXIT);
            blocks(&mut extra, "ENVIRONMENT", CTL_ENV);
            blocks(&mut extra, "FILES", CTL_FILES);
            see_also(&mut extra, "ggond(8), ggon-perf(1)");
        }
        Program::GgonPerf => {
            if cmd.get_after_help().is_some() {
                m.render_extra_section(&mut out)?;
            }
            blocks(&mut extra, "EXIT STATUS", PERF_EXIT);
            see_also(&mut extra, "ggond(8), dnsperf(1)");
        }
    }
    extra.to_writer(&mut out)?;
    m.render_version_section(&mut out)?;
    Ok(Page {
        file: format!("{}.{section}", program.name()),
        section: section.to_string(),
        roff: out,
    })
}

/// Every man page: one per program, and one per ggon-ctl subcommand
/// (`ggon-ctl-status.1`, ...).
pub fn man_pages() -> io::Result<Vec<Page>> {
    let mut pages = Vec::new();
    for p in Program::ALL {
        pages.push(render(p)?);
    }
    let mut ctl = Program::GgonCtl.command().disable_help_subcommand(true);
    ctl.build();
    for sub in ctl.get_subcommands().filter(|s| !s.is_hide_set()) {
        let m = man(sub.clone(), "1");
        let mut out = Vec::new();
        m.render(&mut out)?;
        let mut tail = Roff::new();
        see_also(&mut tail, "ggon-ctl(1), ggond(8)");
        tail.to_writer(&mut out)?;
        pages.push(Page {
            file: m.get_filename(),
            section: "1".into(),
            roff: out,
        });
    }
    Ok(pages)
}

/// A completion script for `program` in `shell`: of the visible commands
/// and options only (clap_complete offers hidden ones too, such as
/// `generate-docs`), and for bash with the case labels repaired
/// ([`repair_bash`]).
pub fn completion(program: Program, shell: Shell) -> Vec<u8> {
    let mut cmd = visible(program);
    let mut out = Vec::new();
    let name = program.name();
    match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, name, &mut out);
            let text = String::from_utf8_lossy(&out).into_owned();
            return repair_bash(&text, name).into_bytes();
        }
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, name, &mut out),
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, name, &mut out)
        }
    }
    out
}

/// `program`'s command without its hidden subcommands and options: the
/// root is rebuilt from its visible parts (clap cannot remove a
/// subcommand), the subcommands are the definition's own.
fn visible(program: Program) -> clap::Command {
    let full = program.command();
    let mut cmd = clap::Command::new(program.name())
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

/// clap_complete (4.6) names a subcommand's case label from the program
/// name with its `-` replaced by the subcommand separator
/// (`ggon__subcmd__ctl__subcmd__remap`) but sets the variable it is matched
/// against with `-` replaced by `__` (`ggon__ctl__subcmd__remap`), so no
/// label of a hyphenated program ever matches and `ggon-ctl remap --<TAB>`
/// offers nothing. The labels are rewritten to the variable's spelling.
pub fn repair_bash(script: &str, name: &str) -> String {
    const SEP: &str = "__subcmd__";
    let wrong = format!("        {}{SEP}", name.replace('-', SEP));
    let right = format!("        {}{SEP}", name.replace('-', "__"));
    script.replace(&wrong, &right)
}

/// Where a completion script is installed (relative to /usr/share), by the
/// conventions of bash-completion, zsh and fish on Debian.
pub fn completion_path(program: Program, shell: Shell) -> PathBuf {
    let name = program.name();
    match shell {
        Shell::Bash => PathBuf::from(format!("bash-completion/completions/{name}")),
        Shell::Zsh => PathBuf::from(format!("zsh/vendor-completions/_{name}")),
        Shell::Fish => PathBuf::from(format!("fish/vendor_completions.d/{name}.fish")),
    }
}

/// Write every man page as `DIR/man/manN/PAGE` and every completion script
/// as `DIR/<completion_path>` (the layout of /usr/share). Returns the files.
pub fn write_all(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for page in man_pages()? {
        let sub = dir.join("man").join(format!("man{}", page.section));
        std::fs::create_dir_all(&sub)?;
        let path = sub.join(&page.file);
        std::fs::write(&path, &page.roff)?;
        written.push(path);
    }
    for program in Program::ALL {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let path = dir.join(completion_path(program, shell));
            std::fs::create_dir_all(path.parent().expect("has a parent"))?;
            std::fs::write(&path, completion(program, shell))?;
            written.push(path);
        }
    }
    Ok(written)
}
