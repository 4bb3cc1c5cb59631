//! The client side of DNS, shared by everything in ggond that asks another
//! server: health checks, RFC 2136 publishing, secondary transfers and the
//! propagation check.
//!
//! Owns: TCP message framing (the two-byte length prefix), one-shot TCP
//! exchanges, and connected UDP sockets. It must not interpret messages:
//! callers build and judge them.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Write one length-prefixed DNS message.
pub async fn write_frame<S: AsyncWrite + Unpin>(stream: &mut S, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message over 65535 bytes"))?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await
}

/// Read one length-prefixed DNS message.
pub async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Why an exchange with a server got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
    #[error("{addr}: no answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
}

/// Send a message over TCP and read one response, all within `timeout`.
pub async fn tcp_exchange(
    addr: SocketAddr,
    msg: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ExchangeError> {
    let io = async {
        let mut s = TcpStream::connect(addr).await?;
        write_frame(&mut s, msg).await?;
        read_frame(&mut s).await
    };
    match tokio::time::timeout(timeout, io).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(source)) => Err(ExchangeError::Io { addr, source }),
        Err(_) => Err(ExchangeError::Timeout { addr, timeout }),
    }
}

/// A UDP socket on an ephemeral port of the server's family, connected to
/// it, so only the server's datagrams arrive.
pub async fn connected_udp(server: SocketAddr) -> Result<UdpSocket, (&'static str, io::Error)> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| ("bind", e))?;
    socket.connect(server).await.map_err(|e| ("connect", e))?;
    Ok(socket)
}
