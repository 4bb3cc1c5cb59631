//! The UDP receive loop: batches of datagrams in, batches of answers out.
//!
//! Why batches: under load the per-packet cost is dominated by system calls.
//! `recvmmsg` takes up to [`BATCH`] queued queries in one call (blocking only
//! for the first), each is answered into its own buffer, and `sendmmsg` sends
//! all the answers in one call. At low load a batch is one packet and this is
//! the plain recv/send loop. Buffers are allocated once per thread.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tracing::debug;

use super::respond::{respond_from, Action, Transport};
use super::rrl::Verdict;
use super::special::SpecialHandler;
use crate::dns::stats::Stats;
use crate::shutdown::Shutdown;
use crate::snapshot::Snapshot;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Largest query read; longer datagrams are truncated by the kernel and
/// then fail to parse (FORMERR). Real queries are far smaller.
const QUERY_MAX: usize = 4096;

/// Test hook: when the environment names a file with
/// `GGOND_TEST_WEDGE_FILE`, a worker that sees that file exist stops
/// turning (no answers, no heartbeat) until shutdown, like a wedged query
/// path. The integration tests use it to check that the systemd watchdog
/// stops being fed; unset (always, in production) it costs one branch per
/// turn.
fn wedge_file() -> Option<&'static std::path::Path> {
    static FILE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| std::env::var_os("GGOND_TEST_WEDGE_FILE").map(Into::into))
        .as_deref()
}

/// One batch's buffers, allocated once per thread: the queries and their
/// addresses as `recvmmsg` fills them, the answers and the headers
/// `sendmmsg` reads. The headers point into the buffers' heap memory, which
/// never moves.
struct Batch {
    bufs: Vec<[u8; QUERY_MAX]>,
    outs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    riov: Vec<libc::iovec>,
    rhdr: Vec<libc::mmsghdr>,
    siov: Vec<libc::iovec>,
    shdr: Vec<libc::mmsghdr>,
}

/// [`BATCH`] all-zero values of a plain C struct.
///
/// # Safety
/// All-zero bytes must be a valid `T` (true of `sockaddr_storage`, `iovec`
/// and `mmsghdr`).
unsafe fn zeroed<T: Clone>() -> Vec<T> {
    // SAFETY: the caller vouches for `T`.
    vec![unsafe { std::mem::zeroed() }; BATCH]
}

impl Batch {
    fn new() -> Batch {
        // SAFETY: all-zero is a valid value for these plain C structs.
        unsafe {
            Batch {
                bufs: vec![[0u8; QUERY_MAX]; BATCH],
                outs: (0..BATCH).map(|_| Vec::with_capacity(4096)).collect(),
                addrs: zeroed(),
                riov: zeroed(),
                rhdr: zeroed(),
                siov: zeroed(),
                shdr: zeroed(),
            }
        }
    }

    /// Wait for the first query (up to the socket's receive timeout) and
    /// take every other one queued, up to [`BATCH`]; how many arrived.
    fn receive(&mut self, fd: libc::c_int) -> io::Result<usize> {
        for i in 0..BATCH {
            self.riov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: QUERY_MAX,
            };
            let h = &mut self.rhdr[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.riov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.rhdr[i].msg_len = 0;
        }
        // SAFETY: every header points at live buffers of the stated sizes;
        // the socket's receive timeout bounds the wait for the first packet.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.rhdr.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// The length of query `i` (in `bufs[i]`) and the address it came from.
    fn query(&self, i: usize) -> (usize, Option<SocketAddr>) {
        let len = self.rhdr[i].msg_len as usize;
        let peer = peer_of(&self.addrs[i], self.rhdr[i].msg_hdr.msg_namelen);
        (len.min(QUERY_MAX), peer)
    }

    /// Send answer `i` back to its query's address, as the `m`-th of this
    /// batch's answers.
    fn queue(&mut self, i: usize, m: usize) {
        self.siov[m] = libc::iovec {
            iov_base: self.outs[i].as_mut_ptr().cast(),
            iov_len: self.outs[i].len(),
        };
        let h = &mut self.shdr[m].msg_hdr;
        h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
        h.msg_namelen = self.rhdr[i].msg_hdr.msg_namelen;
        h.msg_iov = &mut self.siov[m];
        h.msg_iovlen = 1;
        h.msg_control = std::ptr::null_mut();
        h.msg_controllen = 0;
        h.msg_flags = 0;
    }

    /// Send the `m` queued answers; a datagram that fails (an unreachable
    /// peer) is skipped.
    fn send(&mut self, fd: libc::c_int, m: usize) {
        let mut sent = 0;
        while sent < m {
            // SAFETY: headers 0..m point at live answer buffers and addresses.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.shdr[sent..].as_mut_ptr(),
                    (m - sent) as libc::c_uint,
                    0,
                )
            };
            if r <= 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                sent += 1;
                continue;
            }
            sent += r as usize;
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn udp_loop(
    sock: UdpSocket,
    snapshot: Arc<ArcSwap<Snapshot>>,
    stop: Shutdown,
    special: Arc<dyn SpecialHandler>,
    rt: tokio::runtime::Handle,
    stats: Arc<Stats>,
    rrl: Option<crate::config::RrlConfig>,
    (heartbeats, worker): (Arc<super::heartbeat::Heartbeats>, usize),
) {
    let wedge = wedge_file();
    let mut rrl = rrl.map(super::rrl::Rrl::new);
    let fd = sock.as_raw_fd();
    let mut batch = Batch::new();
    // A per-thread cache of the current snapshot: a load is then a pointer
    // comparison, not a reference-count update on a shared cache line.
    let mut cache = arc_swap::Cache::new(&*snapshot);
    let local = stats.local();
    while !stop.is_requested() {
        heartbeats.beat(worker);
        if wedge.is_some_and(|f| f.exists()) {
            tracing::warn!("test hook: UDP worker wedged");
            while !stop.is_requested() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            return;
        }
        let n = match batch.receive(fd) {
            Ok(n) => n,
            Err(e) => {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) {
                    debug!(error = %e, "udp receive error");
                }
                continue;
            }
        };
        let snap = cache.load();
        let mut m = 0;
        for i in 0..n {
            let (len, peer) = batch.query(i);
            let pkt = &batch.bufs[i][..len];
            let src = peer.map(|p| p.ip());
            match respond_from(snap, pkt, Transport::Udp, src, &mut batch.outs[i]) {
                Action::Reply => {
                    if let Some(rrl) = rrl.as_mut() {
                        let Some(src) = src else {
                            continue;
                        };
                        match rrl.check(src, std::time::Instant::now()) {
                            Verdict::Send => {}
                            Verdict::Slip => {
                                super::rrl::truncate(&mut batch.outs[i]);
                                local.rrl_slipped();
                            }
                            Verdict::Drop => {
                                local.rrl_dropped();
                                continue;
                            }
                        }
                    }
                    local.count(&batch.outs[i]);
                    batch.queue(i, m);
                    m += 1;
                }
                Action::Drop => local.dropped(),
                Action::Special(kind) => {
                    let Some(peer) = peer else {
                        continue;
                    };
                    let fut = special.handle(kind, pkt.to_vec(), peer, Transport::Udp);
                    let Ok(sock) = sock.try_clone() else { continue };
                    rt.spawn(async move {
                        for resp in fut.await {
                            let _ = sock.send_to(&resp, peer);
                        }
                    });
                }
            }
        }
        batch.send(fd, m);
    }
}

fn peer_of(addr: &libc::sockaddr_storage, _len: libc::socklen_t) -> Option<SocketAddr> {
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for this family.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for this family.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}
