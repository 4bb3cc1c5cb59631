//! ggon-perf's sockets: UDP sockets with large buffers, non-blocking TCP
//! connections, and the sendmmsg/recvmmsg batch buffers, sized once.

use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// Messages per sendmmsg/recvmmsg call.
pub(super) const BATCH: usize = 64;
/// Receive buffer per UDP message; a longer answer is cut, its header is all we read.
pub(super) const RECV_BUF: usize = 4096;
/// Socket buffer size asked for (SO_RCVBUFFORCE when root, else capped by the kernel).
pub(super) const SOCK_BUF: libc::c_int = 8 << 20;

/// recvmmsg scratch space, set up once; the headers point into `bufs`.
pub(super) struct RecvBatch {
    pub(super) bufs: Box<[u8]>,
    /// Not read after setup, but the headers point into it.
    pub(super) _iovs: Box<[libc::iovec]>,
    pub(super) hdrs: Box<[libc::mmsghdr]>,
}

impl RecvBatch {
    pub(super) fn new() -> Self {
        let mut bufs = vec![0u8; BATCH * RECV_BUF].into_boxed_slice();
        let mut iovs: Box<[libc::iovec]> = (0..BATCH)
            .map(|k| libc::iovec {
                // SAFETY: k * RECV_BUF < bufs.len().
                iov_base: unsafe { bufs.as_mut_ptr().add(k * RECV_BUF) }.cast(),
                iov_len: RECV_BUF,
            })
            .collect();
        let hdrs: Box<[libc::mmsghdr]> = (0..BATCH)
            .map(|k| {
                // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                // SAFETY: k < BATCH == iovs.len().
                h.msg_hdr.msg_iov = unsafe { iovs.as_mut_ptr().add(k) };
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        RecvBatch {
            bufs,
            _iovs: iovs,
            hdrs,
        }
    }

    pub(super) fn message(&self, k: usize) -> &[u8] {
        let len = (self.hdrs[k].msg_len as usize).min(RECV_BUF);
        &self.bufs[k * RECV_BUF..k * RECV_BUF + len]
    }
}

/// sendmmsg scratch space.
pub(super) struct SendBatch {
    pub(super) ids: [u16; BATCH],
    pub(super) iovs: Box<[libc::iovec]>,
    pub(super) hdrs: Box<[libc::mmsghdr]>,
}

impl SendBatch {
    pub(super) fn new() -> Self {
        let iovs: Box<[libc::iovec]> = (0..BATCH)
            .map(|_| libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            })
            .collect();
        // SAFETY: all-zero is a valid mmsghdr.
        let hdrs = (0..BATCH)
            .map(|_| unsafe { std::mem::zeroed::<libc::mmsghdr>() })
            .collect();
        SendBatch {
            ids: [0; BATCH],
            iovs,
            hdrs,
        }
    }
}

pub(super) fn os_err(ret: libc::c_int) -> Option<io::Error> {
    (ret < 0).then(io::Error::last_os_error)
}

pub(super) fn set_buf(sock: &Socket, force: libc::c_int, plain: libc::c_int) {
    let fd = sock.as_raw_fd();
    let v: libc::c_int = SOCK_BUF;
    let p = (&v as *const libc::c_int).cast();
    let l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd and a c_int option value; failure is harmless.
    unsafe {
        if libc::setsockopt(fd, libc::SOL_SOCKET, force, p, l) != 0 {
            libc::setsockopt(fd, libc::SOL_SOCKET, plain, p, l);
        }
    }
}

/// A UDP socket to `server` that cannot be set up: the step and the error.
#[derive(Debug, thiserror::Error)]
#[error("{}{error}", match step { Some(s) => format!("{s}: "), None => String::new() })]
pub struct SocketError {
    step: Option<String>,
    error: io::Error,
}

impl From<io::Error> for SocketError {
    fn from(error: io::Error) -> SocketError {
        SocketError { step: None, error }
    }
}

pub(super) fn udp_socket(server: SocketAddr) -> Result<UdpSocket, SocketError> {
    let sock = Socket::new(
        Domain::for_address(server),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    set_buf(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
    set_buf(&sock, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    sock.bind(&local.into())?;
    sock.connect(&server.into()).map_err(|error| SocketError {
        step: Some(format!("cannot connect UDP socket to {server}")),
        error,
    })?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

pub(super) fn tcp_connect(server: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&server, timeout)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}
