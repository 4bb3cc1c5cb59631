//! A routed mesh of network namespaces for partition tests: one namespace
//! per host, one address per namespace (10.77.B.H/32 on its `lo`), one veth
//! pair per link with a host route each way (`10.77.B.X/32 dev <veth> src
//! <own>`), no forwarding: a host reaches exactly the hosts it has a link to.
//! Every namespace also has an *observer* link to the root namespace (where
//! the test runs, as 10.77.B.250) that the faults never touch.
//!
//! Faults: [`Mesh::cut`] sets one end of a link down (both directions lost:
//! the side set down fails at once, "no route"; the other side's packets go
//! into a link without carrier and are lost); [`Mesh::cut_one_way`] deletes
//! one side's route only (that side cannot send; the other still can, but
//! gets no TCP answers); [`Mesh::heal`] brings both ends up and puts both
//! routes back. No tc, netem or firewall is used (none on the test machines).
//!
//! Names carry the test's pid (`gn{pid}{k}-{host}` for namespaces,
//! `g{pid}{k}{a}{b}` for veths, `g{pid}{k}o{h}` for the root side of the
//! observer links); [`Mesh`] removes them on drop (panics included), and
//! leftovers of dead pids are removed when a mesh is made. Needs root
//! (`ip netns add`); [`Mesh::new`] says why not otherwise.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static MESHES: AtomicU32 = AtomicU32::new(0);

/// The root namespace's address on the observer links (last octet).
const OBSERVER: u8 = 250;

pub struct Mesh {
    /// `g{pid}{k}`: the prefix of every veth.
    tag: String,
    hosts: Vec<String>,
    net: [u8; 3],
    links: Vec<(usize, usize)>,
}

/// Run `ip ARGS`; Err with its stderr if it fails.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn host_char(h: usize) -> char {
    std::char::from_digit(h as u32, 36).expect("at most 36 hosts")
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name made by a mesh (`gn{pid}…` or `g{pid}…`), if any.
fn pid_of(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    // The last digit is the per-process mesh counter.
    digits.get(..digits.len().checked_sub(1)?)?.parse().ok()
}

/// Remove the namespaces and observer veths of meshes whose process is gone.
fn remove_stale() {
    for line in ip(&["netns", "list"]).unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if let Some(pid) = pid_of(name, "gn") {
            if !pid_alive(pid) && name.contains('-') {
                eprintln!("netns: removing {name}, left over by dead pid {pid}");
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    for line in ip(&["-o", "link", "show"]).unwrap_or_default().lines() {
        let name = line.split(':').nth(1).unwrap_or("").trim();
        let name = name.split('@').next().unwrap_or("");
        if let Some(pid) = pid_of(name, "g") {
            if !pid_alive(pid) && name.len() >= 3 && name.as_bytes()[name.len() - 2] == b'o' {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

impl Mesh {
    /// Namespaces for `hosts` (labels, e.g. "n0"), each with its address
    /// and an observer link, and no other link yet. Err says why it cannot
    /// be made (not root, no `ip netns`).
    pub fn new(hosts: &[&str]) -> Result<Mesh, String> {
        remove_stale();
        let pid = std::process::id();
        let k = MESHES.fetch_add(1, Ordering::Relaxed) % 10;
        let b = ((pid * 10 + k) % 250) as u8;
        let mut mesh = Mesh {
            tag: format!("g{pid}{k}"),
            hosts: Vec::new(),
            net: [10, 77, b],
            links: Vec::new(),
        };
        for (h, label) in hosts.iter().enumerate() {
            let ns = format!("gn{pid}{k}-{label}");
            ip(&["netns", "add", &ns])?;
            mesh.hosts.push(ns.clone());
            let own = format!("{}/32", mesh.ip(h));
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "addr", "add", &own, "dev", "lo"])?;
            mesh.observe(h)?;
        }
        Ok(mesh)
    }

    fn addr(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.net[0], self.net[1], self.net[2], last)
    }

    /// Host `h`'s address.
    pub fn ip(&self, h: usize) -> Ipv4Addr {
        self.addr(h as u8 + 1)
    }

    /// Host `h`'s namespace name (for `ip netns exec`).
    pub fn ns(&self, h: usize) -> &str {
        &self.hosts[h]
    }

    fn dev(&self, a: usize, b: usize) -> String {
        format!("{}{}{}", self.tag, host_char(a), host_char(b))
    }

    fn observe(&self, h: usize) -> Result<(), String> {
        let root = format!("{}o{}", self.tag, host_char(h));
        let inner = self.dev(h, 35);
        let ns = self.ns(h).to_string();
        let (obs, own) = (self.addr(OBSERVER).to_string(), self.ip(h).to_string());
        ip(&[
            "link", "add", &root, "type", "veth", "peer", "name", &inner, "netns", &ns,
        ])?;
        ip(&["link", "set", &root, "up"])?;
        if h == 0 {
            ip(&["addr", "add", &format!("{obs}/32"), "dev", &root])?;
        }
        ip(&[
            "route",
            "add",
            &format!("{own}/32"),
            "dev",
            &root,
            "src",
            &obs,
        ])?;
        ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            &format!("{obs}/32"),
            "dev",
            &inner,
            "src",
            &own,
        ])?;
        Ok(())
    }

    /// One side's host route over the link a–b (a's route to b).
    fn route(&self, a: usize, b: usize, verb: &str) -> Result<String, String> {
        let (to, src) = (format!("{}/32", self.ip(b)), self.ip(a).to_string());
        let dev = self.dev(a, b);
        let mut args = vec!["-n", self.ns(a), "route", verb, &to, "dev", &dev];
        if verb != "del" {
            args.extend(["src", &src]);
        }
        ip(&args)
    }

    /// A veth pair between a and b, up, with a host route on each side.
    pub fn link(&mut self, a: usize, b: usize) -> Result<(), String> {
        let (da, db) = (self.dev(a, b), self.dev(b, a));
        ip(&[
            "-n",
            self.ns(a),
            "link",
            "add",
            &da,
            "type",
            "veth",
            "peer",
            "name",
            &db,
            "netns",
            self.ns(b),
        ])?;
        self.links.push((a, b));
        self.heal(a, b)
    }

    /// Whether a and b have a link (either way round).
    pub fn linked(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a, b)) || self.links.contains(&(b, a))
    }

    /// Cut the link a–b both ways: a's end set down (a's route goes with it).
    pub fn cut(&self, a: usize, b: usize) -> Result<(), String> {
        assert!(self.linked(a, b), "no link {a}-{b}");
        ip(&["-n", self.ns(a), "link", "set", &self.dev(a, b), "down"]).map(|_| ())
    }

    /// a can no longer send to b (a's route to b deleted); b's route stays.
    pub fn cut_one_way(&self, a: usize, b: usize) -> Result<(), String> {
        assert!(self.linked(a, b), "no link {a}-{b}");
        self.route(a, b, "del").map(|_| ())
    }

    /// Both ends up and both routes in place (after either kind of cut).
    pub fn heal(&self, a: usize, b: usize) -> Result<(), String> {
        ip(&["-n", self.ns(a), "link", "set", &self.dev(a, b), "up"])?;
        ip(&["-n", self.ns(b), "link", "set", &self.dev(b, a), "up"])?;
        self.route(a, b, "replace")?;
        self.route(b, a, "replace")?;
        Ok(())
    }

    /// Move the calling thread into host `h`'s namespace: sockets it makes
    /// from now on are that host's.
    pub fn enter(&self, h: usize) -> std::io::Result<()> {
        let f = std::fs::File::open(format!("/run/netns/{}", self.ns(h)))?;
        // SAFETY: setns(2) on an fd we hold open; it changes only this thread.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        for h in 0..self.hosts.len() {
            let _ = ip(&["link", "del", &format!("{}o{}", self.tag, host_char(h))]);
        }
        for ns in &self.hosts {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns: {e}");
            }
        }
    }
}
