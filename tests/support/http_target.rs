//! A tiny HTTP health target for the integration tests (re-exported by
//! [`super::ggond`]).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::ggond::wait_for;

/// A tiny HTTP server that answers every request `200 OK`. Stoppable and
/// restartable on the same address and port (SO_REUSEADDR), so a target can
/// "go down" and "come back".
pub struct HttpTarget {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpTarget {
    /// Listen on `ip` with a kernel-chosen port.
    pub fn start(ip: Ipv4Addr) -> HttpTarget {
        HttpTarget::start_on(SocketAddr::from((ip, 0)))
    }

    /// Listen on exactly `addr` (port 0: any).
    pub fn start_on(addr: SocketAddr) -> HttpTarget {
        // A restart may race the kernel releasing the port: retry briefly.
        let listener = wait_for(&format!("binding {addr}"), Duration::from_secs(5), || {
            bind_reuse(addr).ok()
        });
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("http-{addr}"))
            .spawn(move || serve_http(listener, flag))
            .expect("spawn HTTP target");
        HttpTarget {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn running(&self) -> bool {
        self.thread.is_some()
    }

    /// Close the listener: connections are refused from now on.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("HTTP target thread");
        }
    }

    /// Listen again on the same address and port.
    pub fn restart(&mut self) {
        self.stop();
        *self = HttpTarget::start_on(self.addr);
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind_reuse(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(64)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

fn serve_http(listener: std::net::TcpListener, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = answer_http(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    // The listener is dropped here: the port stops accepting.
}

fn answer_http(mut s: TcpStream) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    s.set_write_timeout(Some(Duration::from_secs(1)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\
          Connection: close\r\n\r\nok\n",
    )?;
    s.flush()
}
