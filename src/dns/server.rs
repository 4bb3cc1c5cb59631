//! Sockets: UDP receive loops and the TCP listener.
//!
//! Why threads for UDP: each worker is a plain OS thread blocked in `recv_from`
//! on its own SO_REUSEPORT socket, so the kernel spreads packets over workers
//! and a query costs one syscall in, one out, no task spawn and no allocation.
//! TCP is slower-moving and needs timeouts, so it runs on tokio with a cap on
//! concurrent connections (a slot is released when a connection closes), an
//! idle timeout (a slow client cannot hold a slot forever: it bounds reading a
//! whole query and writing each answer, so a client that stops reading its
//! answers is cut too) and answers written in order (bounded pipelining: one
//! query in work per connection).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::heartbeat::Heartbeats;
use super::respond::{respond_from, Action, Transport};
use super::special::SpecialHandler;
use crate::dns::stats::{LocalStats, Stats};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::snapshot::Snapshot;

#[derive(Debug, Clone)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// UDP response rate limiting (None: off).
    pub rrl: Option<crate::config::RrlConfig>,
}

/// A running nameserver.
pub struct DnsServer {
    addrs: Vec<SocketAddr>,
    stop: ShutdownTrigger,
    udp_threads: Vec<JoinHandle<()>>,
    tcp_tasks: Vec<tokio::task::JoinHandle<()>>,
    heartbeats: Arc<Heartbeats>,
}

/// The sockets of every listen address, bound but not served yet: ggond
/// binds them before it gives up root (port 53), and serves them after.
pub struct Bound {
    sets: Vec<(Vec<UdpSocket>, std::net::TcpListener)>,
}

impl Bound {
    /// The addresses bound (ports filled in when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sets
            .iter()
            .filter_map(|(_, tcp)| tcp.local_addr().ok())
            .collect()
    }
}

/// Bind UDP (one socket per worker) and TCP on every address; the error
/// names the address. Needs no runtime.
pub fn bind(listen: &[SocketAddr], workers: usize) -> io::Result<Bound> {
    let workers = if workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        workers
    };
    let mut sets = Vec::new();
    for &addr in listen {
        let set = bind_pair(addr, workers)
            .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?;
        sets.push(set);
    }
    Ok(Bound { sets })
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    grow_receive_buffer(&s);
    let s: UdpSocket = s.into();
    // Wake up now and then to notice shutdown.
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s)
}

/// A burst of queries must not overflow the socket's receive queue (the
/// default ~200 KB drops packets at the start of a flood). Ask for 4 MiB;
/// the kernel caps that at net.core.rmem_max unless we may force it (root).
fn grow_receive_buffer(s: &Socket) {
    const WANT: usize = 4 << 20;
    let _ = s.set_recv_buffer_size(WANT);
    if s.recv_buffer_size().unwrap_or(0) < WANT {
        use std::os::fd::AsRawFd;
        let v = WANT as libc::c_int;
        // SAFETY: plain setsockopt on our own socket with a c_int value.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

fn tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // SO_REUSEADDR: a restart can bind at once despite connections in TIME_WAIT.
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Bind UDP (one socket per worker) and TCP on the same port. With port 0 the
/// kernel picks a port for UDP and TCP must get the same one; retry if taken.
fn bind_pair(
    addr: SocketAddr,
    workers: usize,
) -> io::Result<(Vec<UdpSocket>, std::net::TcpListener)> {
    let mut last_err = None;
    for _ in 0..20 {
        let first = udp_socket(addr)?;
        let bound = first.local_addr()?;
        let tcp = match tcp_listener(bound) {
            Ok(t) => t,
            Err(e) if addr.port() == 0 => {
                last_err = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut socks = vec![first];
        for _ in 1..workers {
            socks.push(udp_socket(bound)?);
        }
        return Ok((socks, tcp));
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("could not bind")))
}

impl DnsServer {
    /// Bind every address and start serving. Must be called inside a tokio runtime.
    pub fn start(
        listen: &[SocketAddr],
        workers: usize,
        snapshot: Arc<ArcSwap<Snapshot>>,
        special: Arc<dyn SpecialHandler>,
        limits: TcpLimits,
        stats: Arc<Stats>,
    ) -> io::Result<DnsServer> {
        DnsServer::serve(bind(listen, workers)?, snapshot, special, limits, stats)
    }

    /// Serve sockets bound by [`bind`]. Must be called inside a tokio runtime.
    pub fn serve(
        bound: Bound,
        snapshot: Arc<ArcSwap<Snapshot>>,
        special: Arc<dyn SpecialHandler>,
        limits: TcpLimits,
        stats: Arc<Stats>,
    ) -> io::Result<DnsServer> {
        let (stop_trigger, stop) = shutdown::channel();
        let rt = tokio::runtime::Handle::current();
        let heartbeats = Arc::new(Heartbeats::new(
            bound.sets.iter().map(|(udp, _)| udp.len()).sum(),
        ));
        let mut server = DnsServer {
            addrs: Vec::new(),
            stop: stop_trigger,
            udp_threads: Vec::new(),
            tcp_tasks: Vec::new(),
            heartbeats: heartbeats.clone(),
        };
        let conn_slots = Arc::new(Semaphore::new(limits.max_connections));
        let mut worker = 0;
        for (socks, tcp) in bound.sets {
            let bound = tcp.local_addr()?;
            let workers = socks.len();
            server.addrs.push(bound);
            for (i, sock) in socks.into_iter().enumerate() {
                let snapshot = snapshot.clone();
                let stop = stop.clone();
                let special = special.clone();
                let rt = rt.clone();
                let stats = stats.clone();
                let rrl = limits.rrl;
                let beats = (heartbeats.clone(), worker);
                worker += 1;
                let t = std::thread::Builder::new()
                    .name(format!("udp-{bound}-{i}"))
                    .spawn(move || {
                        super::udp::udp_loop(sock, snapshot, stop, special, rt, stats, rrl, beats)
                    })?;
                server.udp_threads.push(t);
            }
            let tcp = TcpListener::from_std(tcp)?;
            server.tcp_tasks.push(tokio::spawn(tcp_accept(
                tcp,
                snapshot.clone(),
                special.clone(),
                limits.clone(),
                conn_slots.clone(),
                stop.clone(),
                stats.clone(),
            )));
            info!(%bound, workers, "serving DNS on UDP and TCP");
        }
        Ok(server)
    }

    /// The query path's liveness counters (one per UDP worker).
    pub fn heartbeats(&self) -> Arc<Heartbeats> {
        self.heartbeats.clone()
    }

    /// The addresses actually bound (ports filled in when 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stop accepting, let in-flight TCP answers finish (bounded), join workers.
    pub async fn shutdown(self) {
        self.stop.trigger();
        for t in self.tcp_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let threads = self.udp_threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

async fn tcp_accept(
    listener: TcpListener,
    snapshot: Arc<ArcSwap<Snapshot>>,
    special: Arc<dyn SpecialHandler>,
    limits: TcpLimits,
    slots: Arc<Semaphore>,
    mut shutdown: Shutdown,
    stats: Arc<Stats>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.requested() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.tcp_refused();
            debug!(%peer, "tcp connection limit reached; closing");
            drop(stream);
            continue;
        };
        while conns.try_join_next().is_some() {}
        let snapshot = snapshot.clone();
        let special = special.clone();
        let idle = limits.idle_timeout;
        let shutdown = shutdown.clone();
        let stats = stats.clone();
        conns.spawn(async move {
            let _permit = permit;
            let local = stats.local();
            if let Err(e) = tcp_conn(stream, peer, snapshot, special, idle, shutdown, &local).await
            {
                debug!(%peer, error = %e, "tcp connection ended");
            }
            stats.retire(local);
        });
    }
    // Graceful: connections see the shutdown signal between queries; give
    // in-flight answers a bounded time to be written.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

async fn tcp_conn(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    snapshot: Arc<ArcSwap<Snapshot>>,
    special: Arc<dyn SpecialHandler>,
    idle: Duration,
    mut shutdown: Shutdown,
    local: &LocalStats,
) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(4096);
    // Length prefix + message, reused for every answer on this connection.
    let mut frame = Vec::with_capacity(4096);
    loop {
        let mut len = [0u8; 2];
        // The whole message (length and body) must arrive within the idle
        // timeout: a slow-loris client cannot hold its slot forever.
        let read = async {
            stream.read_exact(&mut len).await?;
            let n = u16::from_be_bytes(len) as usize;
            stream.read_exact(&mut buf[..n]).await?;
            Ok::<usize, io::Error>(n)
        };
        let n = tokio::select! {
            r = tokio::time::timeout(idle, read) => match r {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            },
            _ = shutdown.requested() => return Ok(()),
        };
        let snap = snapshot.load();
        let responses =
            match respond_from(&snap, &buf[..n], Transport::Tcp, Some(peer.ip()), &mut out) {
                Action::Reply => {
                    local.count(&out);
                    write_msg(&mut stream, &mut frame, &out, idle).await?;
                    continue;
                }
                Action::Drop => {
                    local.dropped();
                    return Ok(());
                }
                Action::Special(kind) => {
                    special
                        .handle(kind, buf[..n].to_vec(), peer, Transport::Tcp)
                        .await
                }
            };
        for r in responses {
            write_msg(&mut stream, &mut frame, &r, idle).await?;
        }
    }
}

/// Write one length-prefixed message. A client that does not read lets the
/// socket buffers fill and the write wait; `limit` ends that wait (and the
/// connection, freeing its slot) instead of letting it last for ever.
async fn write_msg(
    stream: &mut tokio::net::TcpStream,
    frame: &mut Vec<u8>,
    msg: &[u8],
    limit: Duration,
) -> io::Result<()> {
    frame.clear();
    frame.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    frame.extend_from_slice(msg);
    match tokio::time::timeout(limit, stream.write_all(frame)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client not reading its answers",
        )),
    }
}
