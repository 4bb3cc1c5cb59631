//! The flood loop: one thread, non-blocking sockets, ppoll(2) only when there
//! is nothing to do. UDP goes through sendmmsg(2)/recvmmsg(2) in batches;
//! TCP pipelines length-prefixed queries on each connection.
//!
//! Nothing here allocates per query: wire bytes were encoded once
//! ([`WireSet`]), IDs live in fixed tables ([`InFlight`]), latencies in a
//! fixed histogram ([`Stats`]), and the batch and TCP buffers are sized once.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::inflight::{InFlight, IDS};
use super::interval::{Intervals, Progress};
use super::queries::WireSet;
use super::sockets::{os_err, tcp_connect, udp_socket, RecvBatch, SendBatch, BATCH};
use super::stats::Stats;

mod tcp;

/// At most this many queries outstanding on one socket (leaves IDs to spare).
const MAX_PER_CONN: usize = IDS - 2 * BATCH;
/// Unflushed TCP bytes above which no more queries are queued on a connection.
const TCP_WRITE_HIGH: usize = 64 * 1024;
/// How often timeouts are checked (at most).
const EXPIRE_EVERY_NS: u64 = 10_000_000;
const NS: u64 = 1_000_000_000;

pub struct Config {
    pub server: SocketAddr,
    pub tcp: bool,
    pub clients: usize,
    pub outstanding: usize,
    pub qps: Option<f64>,
    pub duration: Option<Duration>,
    pub passes: Option<u64>,
    pub timeout: Duration,
    pub progress: bool,
    /// `-S`: print interval statistics this often.
    pub stats_interval: Option<Duration>,
    pub stats_to_stderr: bool,
}

pub struct Outcome {
    pub stats: Stats,
    pub run_time: Duration,
    pub ended_by: &'static str,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

struct TcpLink {
    stream: Option<TcpStream>,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Box<[u8]>,
    rlen: usize,
    retry_at: u64,
}

enum Link {
    Udp(UdpSocket),
    Tcp(TcpLink),
}

struct Conn {
    link: Link,
    inflight: InFlight,
    /// UDP send hit EAGAIN/ENOBUFS: wait for POLLOUT.
    blocked: bool,
}

struct Engine<'a> {
    cfg: &'a Config,
    wire: &'a mut WireSet,
    nq: u64,
    conns: Vec<Conn>,
    stats: Stats,
    start: Instant,
    /// Queries taken from the file so far (the next one is `next_seq % nq`).
    next_seq: u64,
    outstanding: usize,
    rr: usize,
    per_conn_cap: usize,
    sendb: SendBatch,
    recvb: RecvBatch,
    pollfds: Vec<libc::pollfd>,
    last_answer: u64,
    refused: u64,
}

/// Handles one answer; false if it matched nothing outstanding.
#[inline]
fn on_answer(
    inflight: &mut InFlight,
    stats: &mut Stats,
    wire: &WireSet,
    msg: &[u8],
    now: u64,
) -> bool {
    if msg.len() < 12 || msg[2] & 0x80 == 0 {
        stats.unexpected += 1;
        return false;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let Some((qi, sent_at)) = inflight.get(id) else {
        stats.unexpected += 1;
        return false;
    };
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if qdcount != 0 {
        let q = wire.question(qi as usize);
        if msg.len() < 12 + q.len() || !msg[12..12 + q.len()].eq_ignore_ascii_case(q) {
            stats.unexpected += 1;
            return false;
        }
    }
    inflight.remove(id);
    stats.answered(
        msg[3] & 0x0f,
        msg[2] & 0x02 != 0,
        now.saturating_sub(sent_at),
    );
    true
}

impl<'a> Engine<'a> {
    fn new(cfg: &'a Config, wire: &'a mut WireSet) -> Result<Self, EngineError> {
        let mut conns = Vec::with_capacity(cfg.clients);
        let max_framed = wire
            .queries
            .iter()
            .map(|q| q.len as usize + 2)
            .max()
            .unwrap_or(0);
        for _ in 0..cfg.clients {
            let link = if cfg.tcp {
                let stream =
                    tcp_connect(cfg.server, cfg.timeout).map_err(|error| EngineError::Tcp {
                        server: cfg.server,
                        error,
                    })?;
                Link::Tcp(TcpLink {
                    stream: Some(stream),
                    wbuf: Vec::with_capacity(TCP_WRITE_HIGH + BATCH * max_framed),
                    wpos: 0,
                    rbuf: vec![0u8; 2 * (65535 + 2)].into_boxed_slice(),
                    rlen: 0,
                    retry_at: 0,
                })
            } else {
                Link::Udp(udp_socket(cfg.server)?)
            };
            conns.push(Conn {
                link,
                inflight: InFlight::new(),
                blocked: false,
            });
        }
        let per_conn_cap = if cfg.tcp {
            cfg.outstanding.div_ceil(cfg.clients)
        } else {
            cfg.outstanding
        }
        .min(MAX_PER_CONN);
        Ok(Engine {
            cfg,
            nq: wire.queries.len() as u64,
            wire,
            pollfds: Vec::with_capacity(conns.len()),
            conns,
            stats: Stats::default(),
            start: Instant::now(),
            next_seq: 0,
            outstanding: 0,
            rr: 0,
            per_conn_cap,
            sendb: SendBatch::new(),
            recvb: RecvBatch::new(),
            last_answer: 0,
            refused: 0,
        })
    }

    #[inline]
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// How many queries may go out now: window, passes and rate limits.
    fn budget(&self, now: u64) -> usize {
        let mut b = self.cfg.outstanding.saturating_sub(self.outstanding) as u64;
        if let Some(p) = self.cfg.passes {
            b = b.min((p * self.nq).saturating_sub(self.next_seq));
        }
        if let Some(qps) = self.cfg.qps {
            let allowed = (now as f64 * qps / NS as f64) as u64 + 1;
            b = b.min(allowed.saturating_sub(self.stats.sent));
        }
        b as usize
    }

    /// Sends up to `budget` queries, round-robin over the connections.
    fn send(&mut self, mut budget: usize) -> usize {
        let n_conns = self.conns.len();
        let mut total = 0;
        let mut idle = 0;
        while budget > 0 && idle < n_conns {
            let ci = self.rr;
            self.rr = (self.rr + 1) % n_conns;
            let room = self.per_conn_cap - self.conns[ci].inflight.len();
            if room == 0 || self.conns[ci].blocked {
                idle += 1;
                continue;
            }
            let n = budget.min(room).min(BATCH).min(self.nq as usize);
            let sent = if self.cfg.tcp {
                self.send_tcp(ci, n)
            } else {
                self.send_udp(ci, n)
            };
            if sent == 0 {
                idle += 1;
            } else {
                idle = 0;
                budget -= sent;
                total += sent;
            }
        }
        total
    }

    fn send_udp(&mut self, ci: usize, n: usize) -> usize {
        let conn = &mut self.conns[ci];
        let Link::Udp(sock) = &conn.link else {
            unreachable!()
        };
        // n <= nq, so a batch never holds the same query twice and patching
        // the ID in place is safe.
        let base_seq = self.next_seq;
        for k in 0..n {
            let qi = ((base_seq + k as u64) % self.nq) as usize;
            let id = conn.inflight.alloc_id();
            self.sendb.ids[k] = id;
            self.wire.set_id(qi, id);
        }
        for k in 0..n {
            let qi = ((base_seq + k as u64) % self.nq) as usize;
            let msg = self.wire.message(qi);
            self.sendb.iovs[k] = libc::iovec {
                iov_base: msg.as_ptr() as *mut libc::c_void,
                iov_len: msg.len(),
            };
            let iov: *mut libc::iovec = &mut self.sendb.iovs[k];
            let h = &mut self.sendb.hdrs[k].msg_hdr;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
        }
        let now = self.start.elapsed().as_nanos() as u64;
        // SAFETY: hdrs[..n] point at iovecs that point into `wire.buf`, which
        // is not touched until the call returns.
        let ret = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                self.sendb.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        let sent = if let Some(e) = os_err(ret) {
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => conn.blocked = true,
                Some(libc::ECONNREFUSED) => self.refused += 1,
                Some(libc::EINTR) => {}
                _ => {
                    // Unexpected; back off through poll like EAGAIN.
                    conn.blocked = true;
                }
            }
            0
        } else {
            ret as usize
        };
        if sent < n {
            conn.blocked = conn.blocked || sent > 0;
        }
        for k in 0..sent {
            let qi = ((base_seq + k as u64) % self.nq) as u32;
            conn.inflight.insert(self.sendb.ids[k], qi, now);
        }
        self.next_seq += sent as u64;
        self.outstanding += sent;
        self.stats.sent += sent as u64;
        sent
    }

    /// Reads every answer waiting on every connection.
    fn recv(&mut self) -> usize {
        let mut got = 0;
        for ci in 0..self.conns.len() {
            got += if self.cfg.tcp {
                self.recv_tcp(ci)
            } else {
                self.recv_udp(ci)
            };
        }
        got
    }

    fn recv_udp(&mut self, ci: usize) -> usize {
        let mut got = 0;
        let conn = &mut self.conns[ci];
        let Link::Udp(sock) = &conn.link else {
            unreachable!()
        };
        loop {
            // SAFETY: the headers point into `recvb.bufs`, RECV_BUF bytes each.
            let ret = unsafe {
                libc::recvmmsg(
                    sock.as_raw_fd(),
                    self.recvb.hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if let Some(e) = os_err(ret) {
                match e.raw_os_error() {
                    Some(libc::ECONNREFUSED) => {
                        self.refused += 1;
                        continue;
                    }
                    Some(libc::EINTR) => continue,
                    _ => break,
                }
            }
            let now = self.start.elapsed().as_nanos() as u64;
            let n = ret as usize;
            for k in 0..n {
                let msg = self.recvb.message(k);
                if on_answer(&mut conn.inflight, &mut self.stats, &*self.wire, msg, now) {
                    got += 1;
                }
            }
            if got > 0 {
                self.last_answer = now;
            }
            if n < BATCH {
                break;
            }
        }
        self.outstanding -= got;
        got
    }

    fn flush_all(&mut self) -> bool {
        let mut wrote = false;
        if self.cfg.tcp {
            for ci in 0..self.conns.len() {
                wrote |= self.flush_tcp(ci);
            }
        }
        wrote
    }

    /// Counts every query sent at or before `cutoff` as lost.
    fn expire(&mut self, cutoff: u64) {
        for conn in &mut self.conns {
            let n = conn.inflight.expire(cutoff);
            self.outstanding -= n;
            self.stats.lost += n as u64;
        }
    }

    /// Sleeps in ppoll until a socket is ready or `timeout_ns` has passed.
    fn wait(&mut self, timeout_ns: u64, want_send: bool) {
        self.pollfds.clear();
        for conn in &self.conns {
            let (fd, pending_write) = match &conn.link {
                Link::Udp(s) => (s.as_raw_fd(), conn.blocked && want_send),
                Link::Tcp(l) => match &l.stream {
                    Some(s) => (s.as_raw_fd(), l.wpos < l.wbuf.len()),
                    None => continue,
                },
            };
            let mut events = libc::POLLIN;
            if pending_write {
                events |= libc::POLLOUT;
            }
            self.pollfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        }
        let ts = libc::timespec {
            tv_sec: (timeout_ns / NS) as libc::time_t,
            tv_nsec: (timeout_ns % NS) as libc::c_long,
        };
        // SAFETY: pollfds is a valid array of its length; ts is valid.
        unsafe {
            libc::ppoll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            );
        }
        for conn in &mut self.conns {
            conn.blocked = false;
        }
    }
}

/// Why the flood cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the query file holds no queries")]
    NoQueries,
    #[error("cannot connect over TCP to {server}: {error}")]
    Tcp {
        server: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error(transparent)]
    Udp(#[from] super::sockets::SocketError),
}

pub fn run(cfg: &Config, wire: &mut WireSet) -> Result<Outcome, EngineError> {
    if wire.queries.is_empty() {
        return Err(EngineError::NoQueries);
    }
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let mut e = Engine::new(cfg, wire)?;
    let timeout_ns = cfg.timeout.as_nanos() as u64;
    let duration_ns = cfg.duration.map(|d| d.as_nanos() as u64);
    let expire_every = EXPIRE_EVERY_NS.min((timeout_ns / 4).max(1_000_000));
    let mut sending = true;
    let mut ended_by = "";
    let mut send_end = 0u64;
    let mut next_expire = expire_every;
    let mut progress = cfg.progress.then(Progress::new);
    let mut intervals = cfg
        .stats_interval
        .map(|d| Intervals::new(d.as_nanos() as u64, cfg.stats_to_stderr));
    e.start = Instant::now();

    loop {
        let now = e.now();
        let interrupted = INTERRUPTED.load(Ordering::Relaxed);
        if sending {
            if let Some(why) = e.stop_sending(interrupted, now, duration_ns) {
                ended_by = why;
                sending = false;
                send_end = now;
            }
        }
        if !sending && (e.outstanding == 0 || interrupted) {
            break;
        }

        let mut busy = false;
        let mut budget = 0;
        if sending {
            if cfg.tcp {
                e.reconnect(now);
            }
            budget = e.budget(now);
            if budget > 0 {
                busy |= e.send(budget) > 0;
            }
        }
        busy |= e.flush_all();
        busy |= e.recv() > 0;

        let now = e.now();
        if now >= next_expire {
            e.expire(now.saturating_sub(timeout_ns));
            next_expire = now + expire_every;
        }
        if let Some(p) = progress.as_mut() {
            p.tick(now, &e.stats, e.outstanding);
        }
        if let Some(iv) = intervals.as_mut() {
            iv.tick(now, &e.stats);
        }

        if !busy {
            let mut wake = next_expire.saturating_sub(now);
            if let Some(iv) = &intervals {
                wake = wake.min(iv.wake_in(now));
            }
            if sending {
                wake = wake.min(e.sending_wake(now, duration_ns, budget));
            }
            e.wait(wake, sending && budget > 0);
        }
    }
    if let Some(p) = &progress {
        p.clear();
    }
    if let Some(iv) = intervals.as_mut() {
        iv.finish(e.now(), &e.stats);
    }
    Ok(e.finish(send_end, ended_by))
}

impl Engine<'_> {
    /// Why sending ends now, if it does: an interrupt, the time limit, or
    /// the last pass sent.
    fn stop_sending(
        &self,
        interrupted: bool,
        now: u64,
        duration_ns: Option<u64>,
    ) -> Option<&'static str> {
        if interrupted {
            Some("interrupted")
        } else if duration_ns.is_some_and(|d| now >= d) {
            Some("time limit")
        } else if self
            .cfg
            .passes
            .is_some_and(|p| self.next_seq >= p * self.nq)
        {
            Some("end of passes")
        } else {
            None
        }
    }

    /// While sending and idle: how long until the time limit, or until the
    /// rate limit allows the next query (`budget`: what it allowed now).
    fn sending_wake(&self, now: u64, duration_ns: Option<u64>, budget: usize) -> u64 {
        let mut wake = u64::MAX;
        if let Some(d) = duration_ns {
            wake = wake.min(d.saturating_sub(now));
        }
        if let Some(qps) = self.cfg.qps {
            if budget == 0 && self.outstanding < self.cfg.outstanding {
                let due = ((self.stats.sent as f64) * NS as f64 / qps) as u64;
                wake = wake.min(due.saturating_sub(now));
            }
        }
        wake
    }

    /// The run's outcome. Only an interrupt leaves queries outstanding:
    /// they are counted as interrupted, neither answered nor lost.
    fn finish(mut self, send_end: u64, ended_by: &'static str) -> Outcome {
        let lost_before = self.stats.lost;
        self.expire(u64::MAX);
        self.stats.interrupted = self.stats.lost - lost_before;
        self.stats.lost = lost_before;
        if self.refused > 0 {
            eprintln!(
                "ggon-perf: {} ICMP port-unreachable errors: is a server listening on {}?",
                self.refused, self.cfg.server
            );
        }
        let end = send_end.max(self.last_answer);
        Outcome {
            stats: self.stats,
            run_time: Duration::from_nanos(end),
            ended_by,
        }
    }
}
