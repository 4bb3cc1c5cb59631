//! `[[service]]` tables for generated configs: HTTP-checked targets with
//! fast checks (re-exported by [`super::ggond`]).

use super::ggond::HttpTarget;

/// cic with a primary and a backup checked over HTTP, manual failback.
pub fn cic_two_targets(p: &HttpTarget, b: &HttpTarget) -> String {
    http_service(
        "cic",
        "cic.ggon.org",
        "manual",
        "1s",
        &[("primary", p), ("backup", b)],
    )
}

pub fn http_service(
    name: &str,
    fqdn: &str,
    failback: &str,
    hold_down: &str,
    targets: &[(&str, &HttpTarget)],
) -> String {
    format!(
        "[[service]]\nname = \"{name}\"\nfqdn = \"{fqdn}\"\nttl = 30\n\
         failback = \"{failback}\"\nhold_down = \"{hold_down}\"\n\n"
    ) + &http_targets(targets)
}

/// `[[service.target]]` tables for HTTP targets, with fast checks.
pub fn http_targets(targets: &[(&str, &HttpTarget)]) -> String {
    let mut s = String::new();
    for (tname, t) in targets {
        s.push_str(&format!(
            "[[service.target]]\nname = \"{tname}\"\naddresses = [\"{}\"]\n\
             check = {{ type = \"http\", url = \"{}\", interval = \"200ms\", \
             timeout = \"200ms\", rise = 2, fall = 2, jitter = \"20ms\" }}\n\n",
            t.addr.ip(),
            t.url()
        ));
    }
    s
}
