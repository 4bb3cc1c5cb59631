//! `ggon-perf`'s command line (in the library so that its man page and
//! completions are generated from it, see [`super::docs`]).

use std::path::PathBuf;

use clap::Parser;

/// DNS query flood generator (dnsperf/queryperf-style) for any DNS server.
#[derive(Parser, Debug)]
#[command(
    name = "ggon-perf",
    version,
    about = "DNS query flood generator (dnsperf/queryperf-style) for any DNS server",
    long_about = "Read a query file, encode every query once, then flood the server from one \
                  thread over non-blocking UDP sockets (sendmmsg/recvmmsg) or pipelined TCP \
                  connections, and print queryperf's statistics block plus latency percentiles \
                  and a count per RCODE (--json for one JSON object). Works against any DNS \
                  server.",
    after_help = "The query file holds one `name type` per line (e.g. `www.ggon.org A`); \
                  blank lines and lines starting with # or ; are skipped. \
                  Without -l or -n the file is sent once."
)]
pub struct Args {
    /// Server address (IP or host name).
    #[arg(short = 's', long = "server", default_value = "127.0.0.1")]
    pub server: String,

    /// Server port.
    #[arg(short = 'p', long = "port", default_value_t = 53)]
    pub port: u16,

    /// Query file (`-` for standard input).
    #[arg(short = 'd', long = "datafile", value_name = "FILE")]
    pub datafile: PathBuf,

    /// Stop sending after this many seconds.
    #[arg(short = 'l', long = "time-limit", value_name = "SECONDS")]
    pub time_limit: Option<f64>,

    /// Stop after this many passes through the query file.
    #[arg(short = 'n', long = "passes", value_name = "PASSES")]
    pub passes: Option<u64>,

    /// Maximum queries in flight, in total over all sockets/connections.
    #[arg(short = 'q', long = "outstanding", default_value_t = 100)]
    pub outstanding: usize,

    /// Cap on queries sent per second.
    #[arg(short = 'Q', long = "max-qps", value_name = "QPS")]
    pub max_qps: Option<f64>,

    /// Number of UDP sockets (or TCP connections) to spread queries over.
    #[arg(short = 'c', long = "clients", default_value_t = 1)]
    pub clients: usize,

    /// Seconds after which an unanswered query counts as lost.
    #[arg(short = 't', long = "timeout", default_value_t = 5.0)]
    pub timeout: f64,

    /// Use DNS over TCP (length-prefixed, pipelined) instead of UDP.
    #[arg(long)]
    pub tcp: bool,

    /// Add an EDNS0 OPT record (UDP payload size 1232).
    #[arg(short = 'e', long = "edns")]
    pub edns: bool,

    /// Set the DNSSEC OK bit (implies -e).
    #[arg(short = 'D', long = "dnssec")]
    pub dnssec: bool,

    /// Send an EDNS Client Subnet option (RFC 7871) with ADDRESS/LENGTH as
    /// the client's subnet (implies -e).
    #[arg(long = "ecs", value_name = "ADDRESS/LENGTH")]
    pub ecs: Option<String>,

    /// With --ecs: rotate over N consecutive subnets of that length starting
    /// at ADDRESS: the query file is sent with each subnet in turn (with one
    /// query in the file, every query has the next subnet); a pass (-n) is
    /// then the file once per subnet.
    #[arg(long = "ecs-rotate", value_name = "N", default_value_t = 1)]
    pub ecs_rotate: u32,

    /// Print the statistics as one JSON object.
    #[arg(long)]
    pub json: bool,

    /// Print interval statistics every SECONDS while running (like dnsperf
    /// -S): sent, answered, lost, qps and latency of each interval, one line
    /// each, on standard output (on standard error with --json).
    #[arg(short = 'S', long = "stats-interval", value_name = "SECONDS")]
    pub stats_interval: Option<f64>,
}
