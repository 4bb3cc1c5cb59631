//! Remaps from many clients at once (group commit, src/decide/batch.rs):
//! every acknowledged remap is in the history, the history of each service
//! is one unbroken chain (each remap starts where the previous one ended,
//! as if they had run one by one), and the answer, the status and the
//! state after a restart all agree with its last link.

use serde_json::Value;

use crate::support::ggond::*;

const THREADS: usize = 16;
const EACH: usize = 25;

#[test]
fn remaps_from_sixteen_clients_at_once_form_one_chain_per_service() {
    let t: Vec<HttpTarget> = (0..4)
        .map(|i| HttpTarget::start(ip(&format!("127.0.0.{}", 201 + i))))
        .collect();
    let services = http_service(
        "cic",
        "cic.ggon.org",
        "manual",
        "1s",
        &[("primary", &t[0]), ("backup", &t[1])],
    ) + &http_service(
        "gocdb",
        "gocdb.ggon.org",
        "manual",
        "1s",
        &[("primary", &t[2]), ("backup", &t[3])],
    );
    let mut env = Env::demo(&services);
    let mut g = env.start();
    g.wait_health("gocdb", "backup", true, secs(10.0));
    let token = g.token();
    let control = g.control;
    let clients: Vec<_> = (0..THREADS)
        .map(|c| {
            let token = token.clone();
            std::thread::spawn(move || {
                let mut acked = 0;
                for i in 0..EACH {
                    let service = ["cic", "gocdb"][(c + i) % 2];
                    let to = ["primary", "backup"][(c * 7 + i) % 2];
                    let body = format!(r#"{{"to":"{to}","reason":"client {c} #{i}"}}"#);
                    let path = format!("/v1/services/{service}/remap");
                    let (status, reply) =
                        http_request(control, "POST", &path, Some(&token), Some(&body));
                    assert_eq!(status, 200, "{service} -> {to}: {reply}");
                    acked += 1;
                }
                acked
            })
        })
        .collect();
    let acked: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(acked, THREADS * EACH);

    let (status, body) = http_request(control, "GET", "/v1/history", Some(&token), None);
    assert_eq!(status, 200, "{body}");
    let history: Value = serde_json::from_str(&body).unwrap();
    let entries = history["entries"].as_array().unwrap();
    let mut total = 0;
    for (service, fqdn, addrs) in [
        ("cic", "cic.ggon.org.", ["127.0.0.201", "127.0.0.202"]),
        ("gocdb", "gocdb.ggon.org.", ["127.0.0.203", "127.0.0.204"]),
    ] {
        let mut at = "primary".to_string();
        for e in entries.iter().filter(|e| {
            e["service"] == service && matches!(e["kind"].as_str(), Some("remap" | "pin"))
        }) {
            let (from, to) = (e["from"].as_str().unwrap(), e["to"].as_str().unwrap());
            assert_eq!(
                from, at,
                "{service}: a link of the chain starts elsewhere: {e}"
            );
            assert_eq!(e["kind"] == "pin", from == to, "{e}");
            at = to.to_string();
            total += 1;
        }
        assert_eq!(g.service(service)["active"], at.as_str());
        let want = ip(addrs[usize::from(at == "backup")]);
        assert_eq!(g.a(fqdn), vec![want], "{service} answers its last remap");
    }
    assert_eq!(
        total,
        THREADS * EACH,
        "every acknowledged remap is in the history"
    );
    assert!(
        g.log_text().contains("remaps written together"),
        "sixteen clients at once never shared a write"
    );
    let before = (
        g.service("cic")["active"].clone(),
        g.service("gocdb")["active"].clone(),
    );
    g.stop();
    let g = env.start();
    let after = (
        g.service("cic")["active"].clone(),
        g.service("gocdb")["active"].clone(),
    );
    assert_eq!(before, after, "a restart resumes the last remaps");
}
