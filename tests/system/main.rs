//! ggond as a system service: the systemd protocol (READY, RELOADING,
//! STOPPING, the watchdog), the switch to an unprivileged user, log formats,
//! the man pages and completions, and the Debian package built, inspected
//! (dpkg-deb, lintian), installed into a throw-away root and run there.
//!
//! Tests that need root (the user switch, the throw-away root) say so and
//! return early without it; CI runs as root.

#[path = "../support/mod.rs"]
mod support;

mod docs;
mod logs;
mod notify;
mod package;
mod privileges;

/// Is this test process root?
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A service whose targets are checked by `true`: always healthy, no
/// network needed, and it runs as any user.
pub fn exec_service(name: &str) -> String {
    format!(
        "[[service]]\nname = \"{name}\"\nfqdn = \"{name}.ggon.org\"\n\n\
         [[service.target]]\nname = \"primary\"\naddresses = [\"127.0.0.11\"]\n\
         check = {{ type = \"exec\", command = [\"true\"], interval = \"200ms\", rise = 1, fall = 1 }}\n\n\
         [[service.target]]\nname = \"backup\"\naddresses = [\"127.0.0.12\"]\n\
         check = {{ type = \"exec\", command = [\"true\"], interval = \"200ms\", rise = 1, fall = 1 }}\n\n"
    )
}
