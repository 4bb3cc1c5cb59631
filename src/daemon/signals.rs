//! The signal and reload loop: SIGHUP and the control API's `reload`
//! reload the configuration; SIGTERM and SIGINT end the loop (the caller
//! then stops every stage).
//!
//! A reload reads and validates config and zones on a blocking thread and
//! hands them to the controller only if everything loads: a bad file
//! changes nothing. A new configuration then goes to every stage that
//! follows it (health checks, certificate audit) through `config`, and the
//! zones' transfer and UPDATE rules are replaced ([`Follow`]).

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tracing::info;

use super::systemd::Notify;
use crate::config::Config;
use crate::decide::{Actor, Command, ControllerHandle};
use crate::load::{load, ReloadError, ReloadRequest, Source};
use crate::replicate::{access_rules, ZoneAccess};

/// The signals ggond answers, taken over before anything else starts: a
/// signal that arrives while the stages start (a SIGTERM right after the
/// ready file appears) must stop ggond cleanly, not kill it.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// What follows a reload besides the controller: the stages watching the
/// configuration, and the zones' transfer and UPDATE rules.
pub struct Follow<'a> {
    pub config: &'a watch::Sender<Arc<Config>>,
    pub access: &'a ArcSwap<HashMap<Name, ZoneAccess>>,
}

/// Serve reloads until SIGTERM or SIGINT.
pub async fn serve(
    signals: Signals,
    source: &Source,
    handle: &ControllerHandle,
    follow: Follow<'_>,
    mut requests: mpsc::Receiver<ReloadRequest>,
    notify: &Notify,
) {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        let reply = tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => { info!("SIGHUP: reloading configuration"); None }
            r = requests.recv() => match r { Some(r) => Some(r), None => continue },
        };
        notify.reloading();
        let result = reload(source, handle).await;
        match &result {
            Ok((summary, cfg)) => {
                follow.access.store(Arc::new(access_rules(cfg)));
                let _ = follow.config.send(Arc::new(cfg.clone()));
                info!(%summary, "reload done");
                notify.send(&format!("READY=1\nSTATUS=reload done: {summary}"));
            }
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; still serving the previous configuration");
                notify.send(&format!(
                    "READY=1\nSTATUS=reload rejected: {}",
                    e.to_string().replace('\n', " ")
                ));
            }
        }
        if let Some(reply) = reply {
            let _ = reply.send(result.map(|(s, _)| s));
        }
    }
}

/// Read and validate config and zones again, then hand them to the
/// controller. Nothing changes unless everything loads.
async fn reload(
    source: &Source,
    handle: &ControllerHandle,
) -> Result<(String, Config), ReloadError> {
    let path = source.path.clone();
    let overrides = source.overrides.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&path, &overrides)).await??;
    let cfg = loaded.cfg.clone();
    let summary = handle
        .call(|reply| Command::Reload {
            config: Box::new(loaded.cfg),
            regions: loaded.regions,
            zones: loaded.zones,
            signers: loaded.signers,
            actor: Actor::new("reload"),
            reply,
        })
        .await
        .and_then(|r| r)?;
    Ok((summary, cfg))
}
