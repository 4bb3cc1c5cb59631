//! Health checks at scale: 1,000 TCP checks at a 1 s interval keep their
//! schedule, and what they cost in CPU time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ggon::config::{CheckConfig, CheckKind};
use ggon::monitor::{spawn_probes, Checker, ProbeKey};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

const CHECKS: usize = 1000;
const LISTENERS: usize = 4;

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_tcp_checks_keep_their_schedule() {
    // A few local listeners that accept and close at once.
    let mut addrs = Vec::new();
    for _ in 0..LISTENERS {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((conn, _)) = l.accept().await {
                drop(conn);
            }
        });
    }
    let probes: Vec<(ProbeKey, CheckConfig)> = (0..CHECKS)
        .map(|i| {
            (
                ProbeKey {
                    service: format!("svc{}", i / 10),
                    target: format!("t{i}"),
                },
                CheckConfig {
                    kind: CheckKind::Tcp {
                        address: addrs[i % LISTENERS],
                    },
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_millis(500),
                    rise: 1,
                    fall: 1,
                    jitter: Duration::from_millis(100),
                },
            )
        })
        .collect();
    let (tx, mut rx) = mpsc::channel(4096);
    let (stop_tx, stop_rx) = ggon::shutdown::channel();
    let checker = Arc::new(Checker::new().unwrap());

    let cpu_before = cpu_time();
    let started = Instant::now();
    let tasks = spawn_probes(checker, probes, tx, stop_rx);
    let window = Duration::from_millis(3200);
    // Per key: arrival times of its observations.
    let mut seen: HashMap<String, Vec<Instant>> = HashMap::new();
    let mut failed = 0usize;
    let mut max_latency = Duration::ZERO;
    let deadline = started + window;
    while let Ok(Some(obs)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if !obs.outcome.ok {
            failed += 1;
        }
        max_latency = max_latency.max(obs.outcome.latency);
        seen.entry(obs.key.to_string())
            .or_default()
            .push(Instant::now());
    }
    let elapsed = started.elapsed();
    let cpu = cpu_time() - cpu_before;
    stop_tx.trigger();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
    }

    let total: usize = seen.values().map(Vec::len).sum();
    let min = seen.values().map(Vec::len).min().unwrap_or(0);
    let max = seen.values().map(Vec::len).max().unwrap_or(0);
    // The largest gap between two consecutive checks of one target: a missed
    // tick would show as about 2 s.
    let max_gap = seen
        .values()
        .flat_map(|v| v.windows(2).map(|w| w[1] - w[0]))
        .max()
        .unwrap_or_default();
    println!(
        "{CHECKS} TCP checks (interval 1s, jitter 100ms) against {LISTENERS} local listeners for {elapsed:?}: \
         {total} checks, per target min {min} / max {max}, {failed} failed, \
         max latency {max_latency:?}, max gap {max_gap:?}; \
         CPU {cpu:?} user+sys ({:.1}% of one core, {:.0} us per check, including the listeners' accepts)",
        100.0 * cpu.as_secs_f64() / elapsed.as_secs_f64(),
        1e6 * cpu.as_secs_f64() / total.max(1) as f64
    );
    assert_eq!(seen.len(), CHECKS, "some targets were never checked");
    assert!(min >= 2, "a target was checked only {min} times in 3.2 s");
    assert!(
        max_gap < Duration::from_millis(1600),
        "a check slipped its schedule: gap {max_gap:?}"
    );
    assert!(
        failed * 100 <= total,
        "{failed} of {total} checks against live listeners failed"
    );
}
