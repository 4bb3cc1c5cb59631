//! Log output on standard error: text for a terminal, one JSON object per
//! line for log shippers, or journald's form (a `<N>` syslog priority per
//! line and no timestamp, since the journal stamps each line itself).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::cli::ggond::LogFormat;

static JOURNAL: AtomicBool = AtomicBool::new(false);

/// Is standard error the systemd journal? systemd sets `JOURNAL_STREAM` to
/// `DEVICE:INODE` of the stream it connected; it only counts if standard
/// error is still that stream (not redirected by a wrapper).
pub fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat fills the struct it is given.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(2, &mut st) } != 0 {
        return false;
    }
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// The format `auto` resolves to.
pub fn resolve(format: LogFormat) -> LogFormat {
    match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journal,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    }
}

/// Install the global subscriber (level filter from `RUST_LOG`, default info).
pub fn init(format: LogFormat) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match resolve(format) {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Journal => {
            JOURNAL.store(true, Ordering::Relaxed);
            builder
                .event_format(Journal(
                    tracing_subscriber::fmt::format()
                        .without_time()
                        .with_ansi(false),
                ))
                .init()
        }
        LogFormat::Text | LogFormat::Auto => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Print a fatal start-up error (`ggond: error: ...`) on standard error,
/// with the journal's error priority when that is where it goes.
pub fn fatal(msg: impl fmt::Display) {
    let prefix = if JOURNAL.load(Ordering::Relaxed) {
        "<3>"
    } else {
        ""
    };
    eprintln!("{prefix}ggond: error: {msg}");
}

/// The syslog priority journald reads from the start of a line (sd-daemon(3)).
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Wraps a line format with journald's priority prefix.
struct Journal<F>(F);

impl<S, N, F> FormatEvent<S, N> for Journal<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_sd_daemon() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
    }

    #[test]
    fn explicit_formats_are_kept() {
        assert_eq!(resolve(LogFormat::Json), LogFormat::Json);
        assert_eq!(resolve(LogFormat::Text), LogFormat::Text);
    }
}
