//! `/metrics` of cluster mode: how this node's use of etcd goes (requests,
//! latency, bytes written, votes waiting, watch lag, leader changes) and
//! etcd's space (database size, quota, the NOSPACE alarm), from the
//! cluster view the status carries.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::decide::views::EtcdView;

/// Cluster mode: how this node's use of etcd goes, and etcd's space.
pub fn register(reg: &mut Registry, e: &EtcdView) {
    let gauges: [(&str, &str, i64); 7] = [
        (
            "ggon_etcd_db_size_bytes",
            "Cluster mode: etcd's database size as last seen",
            e.db_size,
        ),
        (
            "ggon_etcd_db_quota_bytes",
            "Cluster mode: etcd's space quota (0: not reported by this etcd)",
            e.db_quota,
        ),
        (
            "ggon_etcd_nospace",
            "Cluster mode: 1 while etcd's NOSPACE alarm is raised (every change is refused)",
            i64::from(e.nospace),
        ),
        (
            "ggon_cluster_watch_lag_revisions",
            "Cluster mode: revisions etcd is ahead of what this node's watch delivered",
            (e.revision - e.watch_revision).max(0),
        ),
        (
            "ggon_cluster_votes_pending",
            "Cluster mode: vote buckets changed and not yet written to etcd",
            e.votes_pending as i64,
        ),
        (
            "ggon_cluster_last_change_bytes",
            "Cluster mode: bytes the last shared-state write put in etcd",
            e.last_change_bytes as i64,
        ),
        (
            "ggon_etcd_largest_request_bytes",
            "Cluster mode: the largest transaction this node sent to etcd, in bytes (keys, values and 32 per operation: a bound); etcd refuses requests over --max-request-bytes, 1.5 MiB by default",
            e.largest_request as i64,
        ),
    ];
    for (name, help, v) in gauges {
        let g = Gauge::<i64>::default();
        g.set(v);
        reg.register(name, help, g);
    }
    let counters: [(&str, &str, u64); 7] = [
        ("ggon_etcd_requests", "Cluster mode: requests this node sent to etcd", e.requests),
        ("ggon_etcd_request_failures", "Cluster mode: etcd requests that failed", e.failures),
        ("ggon_etcd_request_seconds", "Cluster mode: total time of etcd requests (divide by ggon_etcd_requests_total for the mean)", 0),
        ("ggon_etcd_slow_requests", "Cluster mode: etcd requests slower than 100 ms", e.slow),
        ("ggon_etcd_bytes_written", "Cluster mode: bytes of keys and values this node wrote to etcd", e.bytes_written),
        ("ggon_cluster_leader_changes", "Cluster mode: leader changes this node saw", e.leader_changes),
        ("ggon_cluster_leases_lost", "Cluster mode: times this node lost its etcd lease (etcd away for longer than lease_ttl; it then answers the last agreed state and decides nothing until it joins again)", e.leases_lost),
    ];
    for (name, help, v) in counters {
        if name == "ggon_etcd_request_seconds" {
            let c = Counter::<f64, std::sync::atomic::AtomicU64>::default();
            c.inc_by(e.latency_us as f64 / 1e6);
            reg.register(name, help, c);
            continue;
        }
        let c = Counter::<u64>::default();
        c.inc_by(v);
        reg.register(name, help, c);
    }
}
