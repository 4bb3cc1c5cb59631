//! A parent zone for ggon.org served by BIND: `org.` signed by named
//! itself (`dnssec-policy default`, a dynamic zone), delegating ggon.org to
//! ggond with a DS the test chooses and changes with nsupdate, as a
//! registry would after reading the child's CDS. Stopped on drop.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::support::bind::{dig, named_options, nsupdate, poll, run};
use super::support::process::{free_port, tail, term_and_reap};

pub struct Parent {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Parent {
    /// named serving `org.` on a free port, with `ds` (presentation form,
    /// `ggon.org. IN DS …`) for the child; returns once it serves the zone
    /// signed (its DNSKEY answered).
    pub fn start(dir: PathBuf, ds: &str) -> Parent {
        fs::create_dir_all(&dir).expect("parent dir");
        let port = free_port();
        let d = dir.display();
        fs::write(
            dir.join("org.db"),
            format!(
                "$TTL 1\n@ IN SOA ns.org. hostmaster.org. 1 60 60 600 1\n@ IN NS ns.org.\n\
                 ns IN A 127.0.0.1\nggon IN NS ns1.ggon.org.\nns1.ggon IN A 127.0.0.1\n{ds}\n"
            ),
        )
        .expect("parent zone");
        let conf = dir.join("named.conf");
        fs::write(
            &conf,
            named_options(&dir, port, "notify no;")
                + &format!(
                    r#"zone "org" {{
  type primary;
  file "{d}/org.db";
  key-directory "{d}";
  allow-update {{ 127.0.0.1; }};
  dnssec-policy default;
}};
"#
                ),
        )
        .expect("named.conf");
        let log = fs::File::create(dir.join("named.log")).expect("named.log");
        let child = Command::new("named")
            .args(["-g", "-n", "1", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("cannot start named");
        let p = Parent {
            port,
            dir,
            child: Some(child),
        };
        assert!(
            poll(secs(20), ms(200), || p.key()).is_some(),
            "named did not serve org. signed within 20 s\n{}",
            p.log_tail()
        );
        p
    }

    /// The parent's key-signing key as a trust anchor (`org. DNSKEY 257 …`).
    pub fn key(&self) -> Option<String> {
        let out = dig(self.port, &["+norec", "+noall", "+answer", "org", "DNSKEY"]);
        out.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 7 && f[3] == "DNSKEY" && f[4] == "257")
                .then(|| format!("org. DNSKEY {}", f[4..].join(" ")))
        })
    }

    /// The DS records it serves for ggon.org (key tags).
    pub fn ds_tags(&self) -> Vec<u64> {
        let out = dig(
            self.port,
            &["+norec", "+noall", "+answer", "ggon.org", "DS"],
        );
        let mut tags: Vec<u64> = out
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 5 && f[3] == "DS").then(|| f[4].parse().ok())?
            })
            .collect();
        tags.sort();
        tags
    }

    /// Replace the child's DS RRset by `ds` (`ggon.org. 1 IN DS …` lines).
    pub fn set_ds(&self, ds: &[String]) {
        let mut script = format!(
            "server 127.0.0.1 {}\nzone org\nupdate delete ggon.org. DS\n",
            self.port
        );
        for d in ds {
            script += &format!("update add {d}\n");
        }
        script += "send\n";
        let out = nsupdate(None, &script);
        assert!(
            out.ok,
            "nsupdate to the parent failed: {}\n{}",
            out.text(),
            self.log_tail()
        );
    }

    /// Take the child's DS from one of its CDS records (`tag alg type
    /// digest`, as dig +short prints it), as a registry would.
    pub fn set_ds_from_cds(&self, cds: &str) {
        let f: Vec<&str> = cds.split_whitespace().collect();
        self.set_ds(&[format!(
            "ggon.org. 1 IN DS {} {} {} {}",
            f[0],
            f[1],
            f[2],
            f[3..].concat()
        )]);
    }

    pub fn log_tail(&self) -> String {
        format!(
            "named (parent) log:\n{}",
            tail(&self.dir.join("named.log"), 30)
        )
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            term_and_reap(&mut c, Duration::from_secs(5));
        }
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// `dnssec-dsfromkey -2` for a key file: `ggon.org. 1 IN DS …` (TTL 1).
pub fn ds_line(key: &std::path::Path) -> String {
    let out = run(
        "dnssec-dsfromkey",
        &["-2", "-T", "1", &format!("{}.key", key.display())],
        None,
        10,
    );
    assert!(out.ok, "dnssec-dsfromkey failed: {}", out.text());
    out.stdout.trim().to_string()
}
