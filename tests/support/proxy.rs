//! A loopback TCP forwarder that a test can cut: the way to take one
//! node's etcd away while the others keep theirs.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

// ---------------------------------------------------------------------------
// TCP proxy

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ProxyMode {
    /// Forward every connection.
    Open,
    /// Close every connection at once (new ones are accepted and dropped).
    Cut,
    /// Accept and hold new connections without forwarding anything.
    Blackhole,
}

struct ProxyConn {
    id: u64,
    /// Every socket of the connection (client side, upstream side).
    sockets: Vec<TcpStream>,
    /// Pump threads still running; the last one removes the entry.
    pumps: Arc<AtomicUsize>,
}

struct ProxyShared {
    mode: Mutex<ProxyMode>,
    conns: Mutex<Vec<ProxyConn>>,
    stop: AtomicBool,
    next_id: AtomicU64,
    accepted: AtomicU64,
}

impl ProxyShared {
    fn close_all(&self) {
        let conns = std::mem::take(&mut *self.conns.lock().unwrap());
        for c in conns {
            for s in c.sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

/// A loopback TCP forwarder from `addr()` to a target: point one client (a
/// ggond node's etcd endpoint) at it and [`cut`](TcpProxy::cut) that client
/// off while every other client still reaches the target directly.
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Listen on a free 127.0.0.1 port and forward to `target`.
    pub fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy listener");
        listener
            .set_nonblocking(true)
            .expect("nonblocking proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(ProxyShared {
            mode: Mutex::new(ProxyMode::Open),
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let sh = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("tcp-proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, target, sh))
            .expect("spawn proxy thread");
        TcpProxy {
            addr,
            target,
            shared,
            accept: Some(accept),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for use as an etcd endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Close every current connection and drop new ones (accepted and closed
    /// at once, so clients fail fast) until [`restore`](TcpProxy::restore).
    pub fn cut(&self) {
        *self.shared.mode.lock().unwrap() = ProxyMode::Cut;
        self.shared.close_all();
    }

    /// Like a silent network partition: close every current connection, then
    /// accept new ones but forward nothing (clients hang until their own
    /// timeouts) until [`restore`](TcpProxy::restore).
    pub fn blackhole(&self) {
        *self.shared.mode.lock().unwrap() = ProxyMode::Blackhole;
        self.shared.close_all();
    }

    /// Forward new connections again (connections held by
    /// [`blackhole`](TcpProxy::blackhole) are closed).
    pub fn restore(&self) {
        let was = std::mem::replace(&mut *self.shared.mode.lock().unwrap(), ProxyMode::Open);
        if was != ProxyMode::Open {
            self.shared.close_all();
        }
    }

    /// Whether connections are forwarded now.
    pub fn is_open(&self) -> bool {
        *self.shared.mode.lock().unwrap() == ProxyMode::Open
    }

    /// Connections currently held (forwarded or blackholed).
    pub fn active(&self) -> usize {
        self.shared.conns.lock().unwrap().len()
    }

    /// Connections accepted since the start (including dropped ones).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.close_all();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        // Connections accepted while stopping.
        self.shared.close_all();
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<ProxyShared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        // Held under the mode lock, so a restore() cannot slip between the
        // look at the mode and the registration of a blackholed connection.
        let mode = shared.mode.lock().unwrap();
        match *mode {
            ProxyMode::Cut => {
                let _ = client.shutdown(Shutdown::Both);
            }
            ProxyMode::Blackhole => {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                shared.conns.lock().unwrap().push(ProxyConn {
                    id,
                    sockets: vec![client],
                    pumps: Arc::new(AtomicUsize::new(0)),
                });
            }
            ProxyMode::Open => {
                let shared = shared.clone();
                // Connect off the accept thread so a slow target does not
                // hold up other clients.
                let _ = std::thread::Builder::new()
                    .name("tcp-proxy-conn".into())
                    .spawn(move || forward(client, target, shared));
            }
        }
    }
}

fn forward(client: TcpStream, target: SocketAddr, shared: Arc<ProxyShared>) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let clones = (
        client.try_clone(),
        upstream.try_clone(),
        client.try_clone(),
        upstream.try_clone(),
    );
    let (Ok(c_reg), Ok(u_reg), Ok(c2), Ok(u2)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let pumps = Arc::new(AtomicUsize::new(2));
    {
        // Registered under the mode lock: a cut() now either sees this
        // connection or has already switched the mode.
        let mode = shared.mode.lock().unwrap();
        if *mode != ProxyMode::Open || shared.stop.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        shared.conns.lock().unwrap().push(ProxyConn {
            id,
            sockets: vec![c_reg, u_reg],
            pumps: pumps.clone(),
        });
    }
    let sh = shared.clone();
    let p = pumps.clone();
    let spawned = std::thread::Builder::new()
        .name("tcp-proxy-pump".into())
        .spawn(move || pump(client, u2, id, &p, &sh));
    if spawned.is_err() {
        shared.close_all();
        return;
    }
    pump(upstream, c2, id, &pumps, &shared);
}

/// Copy `from` to `to` until EOF or an error, then half-close `to`; the
/// second pump of a connection to finish unregisters it.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    id: u64,
    pumps: &AtomicUsize,
    shared: &ProxyShared,
) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                break;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    if pumps.fetch_sub(1, Ordering::SeqCst) == 1 {
        let mut conns = shared.conns.lock().unwrap();
        if let Some(pos) = conns.iter().position(|c| c.id == id) {
            let c = conns.swap_remove(pos);
            for s in c.sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}
