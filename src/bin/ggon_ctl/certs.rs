//! `ggon-ctl audit-certs [SERVICE]`: the text forms of the certificate
//! audit ([`ggon::monitor::certs`]): the table and the one-line summary shown
//! by `status` and `drill`.

pub use ggon::monitor::certs::{audit, CertCheck};

/// The text table.
pub fn render(checks: &[CertCheck], warn_days: i64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if checks.is_empty() {
        s.push_str("no https targets (no check URL starting with https://)\n");
        return s;
    }
    for c in checks {
        let days = c
            .days_left
            .map_or("-".to_string(), |d| format!("{d} days left"));
        let verdict = match (&c.error, c.expiring) {
            (Some(e), _) => format!("BROKEN  {e}"),
            (None, true) => format!("EXPIRING  {days} (warning below {warn_days})"),
            (None, false) => format!("ok  {days}"),
        };
        let _ = writeln!(
            s,
            "{:<12} {:<12} {:<22} {}: {verdict}",
            c.service, c.target, c.address, c.name
        );
    }
    s
}

/// One line for `status` and `drill`: would a remap to each target show
/// users a valid certificate?
pub fn summary(checks: &[CertCheck]) -> String {
    let ok = checks.iter().filter(|c| c.valid && !c.expiring).count();
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| !c.valid || c.expiring)
        .map(|c| {
            let why = match &c.error {
                Some(_) => c.problem().unwrap_or("broken").to_string(),
                None => format!("{} days left", c.days_left.unwrap_or(0)),
            };
            format!("{}/{} {} ({why})", c.service, c.target, c.address)
        })
        .collect();
    if bad.is_empty() {
        format!("certificates: {ok} ok for remap")
    } else {
        format!(
            "certificates: {ok} ok, {} NOT READY for remap: {}; see ggon-ctl audit-certs",
            bad.len(),
            bad.join(", ")
        )
    }
}
