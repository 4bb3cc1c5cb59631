//! ggond's own periodic certificate audit (`[cert_audit]`) against local
//! HTTPS listeners with rcgen certificates: the days left and validity in
//! `/metrics`, and exactly one notification per standby target whose
//! certificate would break a failover (wrong name, expired, expiring), not
//! one per audit, and none for the active target.

use crate::certs::{leaf, test_ca};
use crate::support::ggond::*;

/// The value of the sample `name{service="cic",target="T"}` in `text`.
fn gauge(text: &str, name: &str, target: &str) -> Option<f64> {
    let key = format!("{name}{{service=\"cic\",target=\"{target}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

fn audits(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("ggon_cert_audits_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn cert_audit_fills_metrics_and_notifies_once_per_standby_problem() {
    let (ca, ca_key) = test_ca();
    let names = ["primary", "backup", "backup2", "backup3"];
    let listeners = [
        leaf("cic.ggon.org", (-1, 90), &ca, &ca_key),
        leaf("cic.in2p3.fr", (-1, 90), &ca, &ca_key),
        leaf("cic.ggon.org", (-60, -3), &ca, &ca_key),
        leaf("cic.ggon.org", (-1, 10), &ca, &ca_key),
    ];
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let events = dir.path().join("events.txt");
    let script = dir.path().join("notify.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$GGON_EVENT $GGON_SERVICE $GGON_TO\" >> {}\n",
            events.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut config = format!(
        "[cert_audit]\ninterval = \"1s\"\nwarn_days = 21\nca_file = \"{}\"\ntimeout = \"2s\"\n\n\
         [[notifier]]\ntype = \"command\"\ncommand = [\"{}\"]\n\n\
         [[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\nttl = 30\n\n",
        ca_file.display(),
        script.display()
    );
    // Health checks pass on all four (no verification): only the audit
    // sees that three of them would show users a bad certificate.
    for (name, l) in names.iter().zip(&listeners) {
        config.push_str(&format!(
            "[[service.target]]\nname = \"{name}\"\naddresses = [\"127.0.0.1\"]\n\
             check = {{ type = \"https\", url = \"https://127.0.0.1:{}/\", interval = \"500ms\", \
             tls_verify = false }}\n\n",
            l.addr.port()
        ));
    }
    let mut env = Env::demo(&config);
    let g = env.start();
    let token = g.token();
    let metrics = || http_request(g.control, "GET", "/metrics", Some(&token), None).1;
    // The first audit runs at start; wait for a few more.
    let text = wait_for("4 certificate audits", secs(30.0), || {
        let t = metrics();
        (audits(&t) >= 4).then_some(t)
    });
    assert_eq!(g.service("cic")["active"], "primary");

    let days = |t: &str| gauge(&text, "ggon_cert_days_left", t).unwrap();
    let valid = |t: &str| gauge(&text, "ggon_cert_valid", t).unwrap();
    let ready = |t: &str| gauge(&text, "ggon_cert_ready", t).unwrap();
    assert!((88.0..=90.0).contains(&days("primary")), "{text}");
    assert_eq!((valid("primary"), ready("primary")), (1.0, 1.0), "{text}");
    assert_eq!(
        (valid("backup"), ready("backup")),
        (0.0, 0.0),
        "wrong name: {text}"
    );
    assert!((88.0..=90.0).contains(&days("backup")), "{text}");
    assert!((-4.0..=-3.0).contains(&days("backup2")), "{text}");
    assert_eq!((valid("backup2"), ready("backup2")), (0.0, 0.0), "{text}");
    assert!((8.0..=10.0).contains(&days("backup3")), "{text}");
    assert_eq!((valid("backup3"), ready("backup3")), (1.0, 0.0), "{text}");

    // Three standby problems, each notified once.
    let read = || std::fs::read_to_string(&events).unwrap_or_default();
    wait_for("three notifications", secs(10.0), || {
        (read().lines().count() >= 3).then_some(())
    });
    // More audits pass; nothing more is sent.
    let seen = audits(&metrics());
    wait_for("3 more audits", secs(20.0), || {
        (audits(&metrics()) >= seen + 3).then_some(())
    });
    std::thread::sleep(secs(0.5));
    let mut lines: Vec<String> = read().lines().map(String::from).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "cert_not_ready cic backup",
            "cert_not_ready cic backup2",
            "cert_not_ready cic backup3"
        ],
        "one notification per standby target and problem; log:\n{}",
        g.log_text()
    );
    assert!(g
        .log_text()
        .contains("standby target not ready for a failover"));
    drop(listeners);
}
