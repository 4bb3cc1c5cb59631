//! ggond: the nameserver and failover controller.
//!
//! Start-up, in this order: read systemd's environment (one thread), set up
//! logging, load and validate the config, decide about privileges, bind the
//! sockets, switch to the unprivileged user, then start the runtime and
//! serve. Exit statuses are in `ggon::cli::exit` (and the man page).

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ggon::cli::exit;
use ggon::cli::ggond::Args;
use ggon::daemon::privileges::{self, Plan};
use ggon::daemon::{self, logging, systemd, Overrides};

fn main() -> ExitCode {
    let args = Args::parse();
    // Before any thread exists: it edits the environment.
    let notify = Arc::new(systemd::Notify::from_env());
    // Logging next: loading the config may already warn (readable secrets).
    logging::init(args.log_format);

    let config = args.config_file();
    let overrides = Overrides {
        listen: args.listen.clone(),
        control: args.control,
        state_dir: args.state_dir.clone(),
        workers: args.workers,
    };
    let source = daemon::Source {
        path: config.clone(),
        overrides: overrides.clone(),
    };
    // One ggond per state directory, locked before anything in it is read
    // (loading reads DNSSEC key sets there). A directory that does not exist
    // yet holds nothing to read: `run` locks it once it is created.
    let state_lock = match daemon::lock_existing_state_dir(&config, &overrides, args.check_config) {
        Ok(l) => l,
        Err(e) => {
            logging::fatal(e);
            return ExitCode::from(exit::FAILURE);
        }
    };
    let loaded = match daemon::load(&config, &overrides) {
        Ok(x) => x,
        Err(e) => {
            logging::fatal(e);
            return ExitCode::from(exit::CONFIG);
        }
    };
    let plan = match privileges::plan(
        &loaded.cfg,
        args.user.as_deref(),
        args.group.as_deref(),
        !args.check_config,
    ) {
        Ok(p) => p,
        Err(e) => {
            logging::fatal(&e);
            return ExitCode::from(e.exit_code());
        }
    };
    let control_tls = match daemon::control_tls(&loaded.cfg) {
        Ok(t) => t,
        Err(e) => {
            logging::fatal(e);
            return ExitCode::from(exit::CONFIG);
        }
    };
    if args.check_config {
        println!(
            "{}: OK ({} zones, {} services)",
            config.display(),
            loaded.zones.len(),
            loaded.cfg.services.len()
        );
        return ExitCode::from(exit::OK);
    }
    let sockets = match daemon::bind(&loaded.cfg) {
        Ok(s) => s,
        Err(e) => {
            logging::fatal(e);
            return ExitCode::from(exit::FAILURE);
        }
    };
    if let Plan::Switch(account) = &plan {
        if let Err(code) = switch(account, state_lock.as_ref(), &loaded.cfg) {
            return code;
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            logging::fatal(format!("cannot start runtime: {e}"));
            return ExitCode::from(exit::FAILURE);
        }
    };
    let opts = daemon::RunOptions {
        ready_file: args.ready_file,
        notify,
        control_tls,
        state_lock,
    };
    match rt.block_on(daemon::run(loaded, sockets, source, opts)) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            logging::fatal(e);
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// Hand what root created to `account` (the state directory's lock file,
/// the control socket), then become it for good.
fn switch(
    account: &privileges::Account,
    lock: Option<&ggon::daemon::state_lock::StateLock>,
    cfg: &ggon::config::Config,
) -> Result<(), ExitCode> {
    if let Some(lock) = lock {
        if let Err(e) = lock.chown_to(account.uid, account.gid) {
            tracing::warn!(path = %lock.path.display(), error = %e,
                "cannot give the state directory's lock file to the account ggond runs as");
        }
    }
    if let Some(path) = &cfg.control.socket {
        // Bound by root: the account serves it and may remove it.
        if let Err(e) = std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid)) {
            logging::fatal(format!(
                "cannot chown the control socket {}: {e}",
                path.display()
            ));
            return Err(ExitCode::from(exit::FAILURE));
        }
    }
    if let Err(e) = privileges::switch(account) {
        logging::fatal(&e);
        return Err(ExitCode::from(e.exit_code()));
    }
    tracing::info!(user = %account.user, uid = account.uid, group = %account.group,
        gid = account.gid, "sockets bound; now running as an unprivileged user");
    Ok(())
}
