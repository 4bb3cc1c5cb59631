//! DNS over real loopback sockets, the way every test harness talks to a
//! server: one datagram and its answer, TCP framing.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Send `pkt` over UDP and wait up to `wait` for the server's response with
/// the same ID (other datagrams are skipped). None if none comes.
pub fn udp_exchange(server: SocketAddr, pkt: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    s.send_to(pkt, server).expect("send UDP");
    let mut buf = vec![0u8; 65535];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match s.recv_from(&mut buf) {
            Ok((n, from)) if from == server && n >= 2 && buf[..2] == pkt[..2] => {
                return Some(buf[..n].to_vec())
            }
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(e) => panic!("UDP receive: {e}"),
        }
    }
}

/// A TCP connection with 5 s read/write timeouts and no Nagle delay.
pub fn tcp_connect(server: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&server, Duration::from_secs(5)).expect("TCP connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Frame a DNS message for TCP (two-byte length prefix).
pub fn tcp_frame(pkt: &[u8]) -> Vec<u8> {
    let mut v = (pkt.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(pkt);
    v
}

/// Read one length-prefixed message from a TCP stream.
pub fn tcp_read(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf)?;
    Ok(buf)
}
