//! Remaps under load (functional, not timed): while clients query
//! the service name as fast as they can, the service is remapped 100 times.
//! No query may be lost to a change, none may get SERVFAIL or an empty
//! answer, and every answer must be exactly one target's address set.

use std::collections::HashSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::ggond::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::BinDecodable;

const PRIMARY: [&str; 2] = ["127.0.0.181", "127.0.0.182"];
const BACKUP: [&str; 2] = ["127.0.0.183", "127.0.0.184"];

#[test]
fn a_hundred_remaps_under_a_flood_lose_nothing_and_never_mix() {
    let services = format!(
        "[[service]]\nname = \"cic\"\nfqdn = \"cic.ggon.org\"\n\
         [[service.target]]\nname = \"primary\"\naddresses = [\"{}\", \"{}\"]\n\
         check = {{ type = \"tcp\", address = \"127.0.0.1:1\", interval = \"10s\" }}\n\
         [[service.target]]\nname = \"backup\"\naddresses = [\"{}\", \"{}\"]\n\
         check = {{ type = \"tcp\", address = \"127.0.0.1:1\", interval = \"10s\" }}\n",
        PRIMARY[0], PRIMARY[1], BACKUP[0], BACKUP[1]
    );
    let mut env = Env::demo(&services);
    let g = env.start();
    let set = |a: [&str; 2]| -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = a.iter().map(|s| s.parse().unwrap()).collect();
        v.sort();
        v
    };
    let (p, b) = (set(PRIMARY), set(BACKUP));

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (stop, answered, seen, problems) = (
            stop.clone(),
            answered.clone(),
            seen.clone(),
            problems.clone(),
        );
        let (p, b, dns) = (p.clone(), b.clone(), g.dns);
        clients.push(std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut id: u16 = (c as u16) << 12;
            let mut buf = [0u8; 1500];
            // Closed loop: one query in flight per client, bounded in time.
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                id = id.wrapping_add(1);
                let mut q = query("cic.ggon.org.", RecordType::A);
                q.metadata.id = id;
                sock.send_to(&q.to_vec().unwrap(), dns).unwrap();
                let n = match sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        problems
                            .lock()
                            .unwrap()
                            .push(format!("query {id} lost: {e}"));
                        continue;
                    }
                };
                let m = Message::from_bytes(&buf[..n]).unwrap();
                if m.metadata.id != id {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("id {} for query {id}", m.metadata.id));
                    continue;
                }
                if m.metadata.response_code != ResponseCode::NoError {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("rcode {}", m.metadata.response_code));
                    continue;
                }
                let mut got = a_records(&m);
                got.sort();
                if got != p && got != b {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("mixed or empty answer {got:?}"));
                    continue;
                }
                seen.lock().unwrap().insert(got);
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Let the flood start, then remap 100 times, alternating.
    std::thread::sleep(Duration::from_millis(200));
    let token = g.token();
    for i in 0..100 {
        let to = if i % 2 == 0 { "backup" } else { "primary" };
        let body = format!("{{\"to\":\"{to}\",\"force\":true}}");
        let (code, resp) = http_request(
            g.control,
            "POST",
            "/v1/services/cic/remap",
            Some(&token),
            Some(&body),
        );
        assert_eq!(code, 200, "remap {i}: {resp}");
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let problems = problems.lock().unwrap();
    let n = answered.load(Ordering::Relaxed);
    println!("{n} answers during 100 remaps, {} problems", problems.len());
    assert!(
        problems.is_empty(),
        "{} problems, first: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
    assert!(n >= 100, "the flood ran ({n} answers)");
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "both targets were answered during the remaps"
    );
    // Every remap was applied and recorded.
    let hist = g.ctl(&["history", "cic", "--json"]).json();
    assert_eq!(
        hist["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "remap")
            .count(),
        100
    );
}
