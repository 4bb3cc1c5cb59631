//! The command lines of the three programs, and what is generated from them.
//!
//! Owns: every option, subcommand and help text of `ggond`, `ggon-ctl` and
//! `ggon-perf` (clap definitions), their exit statuses, and the man pages and
//! shell completions rendered from those definitions ([`docs`]), so a flag
//! cannot be documented differently from how it parses. The binaries in
//! `src/bin/` parse with these types and do the work; nothing here runs
//! anything.

pub mod ctl;
pub mod docs;
pub mod ggond;
pub mod perf;

/// Exit statuses shared by the three programs (documented in their man pages).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A failure at run time: ggond could not bind, write its state or drop
    /// privileges; ggon-ctl's request failed or needs attention.
    pub const FAILURE: u8 = 1;
    /// The configuration (or the command line) is wrong: nothing was started.
    pub const CONFIG: u8 = 2;
}
