//! What happened: one [`Event`] type for history, alerts and metrics.
//!
//! Why typed: an event used to be seven positional strings, and the alert
//! code matched on "failover"/"failback"/"remap" to decide what to count. A
//! misspelt kind then silently went uncounted. Here the kinds and causes are
//! enums (serialized as the same snake_case words as before, so old
//! `history.jsonl` files still read), and [`EventKind::is_remap`] says once
//! which kinds change the answer.

use serde::{Deserialize, Serialize};

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An operator moved the service (or a pin/release/drill end moved it).
    Remap,
    /// An operator pinned the service to the target it already answers.
    Pin,
    /// Health moved the service to another target.
    Failover,
    /// Automatic failback after the hold-down.
    Failback,
    Release,
    Drain,
    Undrain,
    /// A pin expired.
    Expire,
    DrillStart,
    DrillEnd,
    /// Every target is down: still answering the current one (fail-open).
    AllDown,
    Recovered,
    /// An RFC 2136 UPDATE was applied to a local zone.
    Update,
    Reload,
    /// Publishing to an RFC 2136 primary failed.
    PublisherError,
    /// Alerts held back by the rate limit (sent as one summary).
    Suppressed,
    /// A standby target's TLS certificate would break a failover to it
    /// (wrong name, expired, expiring soon); sent once per problem.
    CertNotReady,
    /// A DNSSEC key roll began or took a step.
    KeyRoll,
    /// A kind written by a newer ggond; kept readable.
    #[serde(other)]
    Other,
}

impl EventKind {
    /// Did this event change the answer served for a service?
    pub fn is_remap(self) -> bool {
        matches!(
            self,
            EventKind::Remap | EventKind::Failover | EventKind::Failback
        )
    }

    /// The word used in history, alerts and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Remap => "remap",
            EventKind::Pin => "pin",
            EventKind::Failover => "failover",
            EventKind::Failback => "failback",
            EventKind::Release => "release",
            EventKind::Drain => "drain",
            EventKind::Undrain => "undrain",
            EventKind::Expire => "expire",
            EventKind::DrillStart => "drill_start",
            EventKind::DrillEnd => "drill_end",
            EventKind::AllDown => "all_down",
            EventKind::Recovered => "recovered",
            EventKind::Update => "update",
            EventKind::Reload => "reload",
            EventKind::PublisherError => "publisher_error",
            EventKind::Suppressed => "suppressed",
            EventKind::CertNotReady => "cert_not_ready",
            EventKind::KeyRoll => "key_roll",
            EventKind::Other => "other",
        }
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventCause {
    #[default]
    Operator,
    Health,
    Failback,
    Expired,
    Drill,
    /// An operator's drain took the answered target out of selection.
    Drain,
    Update,
    Publisher,
    RateLimit,
    /// The periodic certificate audit.
    Certificate,
    #[serde(other)]
    Other,
}

impl EventCause {
    pub fn as_str(self) -> &'static str {
        match self {
            EventCause::Operator => "operator",
            EventCause::Health => "health",
            EventCause::Failback => "failback",
            EventCause::Expired => "expired",
            EventCause::Drill => "drill",
            EventCause::Drain => "drain",
            EventCause::Update => "update",
            EventCause::Publisher => "publisher",
            EventCause::RateLimit => "rate_limit",
            EventCause::Certificate => "certificate",
            EventCause::Other => "other",
        }
    }
}

impl std::fmt::Display for EventCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl From<super::policy::Cause> for EventKind {
    /// What a move of the answer made for this cause is called.
    fn from(c: super::policy::Cause) -> Self {
        match c {
            super::policy::Cause::Health => EventKind::Failover,
            super::policy::Cause::Failback => EventKind::Failback,
            super::policy::Cause::Operator => EventKind::Remap,
        }
    }
}

impl From<super::policy::Cause> for EventCause {
    fn from(c: super::policy::Cause) -> Self {
        match c {
            super::policy::Cause::Health => EventCause::Health,
            super::policy::Cause::Failback => EventCause::Failback,
            super::policy::Cause::Operator => EventCause::Operator,
        }
    }
}

/// One thing that happened: a line of `history.jsonl`, an alert, a count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unix seconds.
    pub time: u64,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default)]
    pub cause: EventCause,
    #[serde(default)]
    pub reason: String,
    /// Token name, `ggond`, or the TSIG key of an UPDATE.
    #[serde(default)]
    pub who: String,
    /// The region it concerns, for a per-region service's regional change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl Event {
    /// An event at `time` with no service, targets, reason or author yet.
    pub fn new(time: u64, kind: EventKind, cause: EventCause) -> Event {
        Event {
            time,
            kind,
            service: None,
            from: None,
            to: None,
            cause,
            reason: String::new(),
            who: String::new(),
            region: None,
        }
    }

    /// A drill began: `target` is treated as failed for `dur`.
    pub fn drill_start(
        at: u64,
        service: &str,
        target: &str,
        dur: std::time::Duration,
        actor: &super::Actor,
    ) -> Event {
        Event::new(at, EventKind::DrillStart, EventCause::Drill)
            .service(service)
            .to_target(target)
            .reason(format!(
                "{target} treated as failed for {}",
                humantime::format_duration(dur)
            ))
            .who(&actor.name)
    }

    /// The listed region it concerns (None: the service's default answer).
    pub fn region(mut self, r: Option<&str>) -> Event {
        self.region = r.map(str::to_string);
        self
    }

    pub fn service(mut self, s: &str) -> Event {
        self.service = Some(s.to_string());
        self
    }

    pub fn from_target(mut self, t: &str) -> Event {
        self.from = Some(t.to_string());
        self
    }

    pub fn to_target(mut self, t: &str) -> Event {
        self.to = Some(t.to_string());
        self
    }

    pub fn reason(mut self, r: impl Into<String>) -> Event {
        self.reason = r.into();
        self
    }

    pub fn who(mut self, w: &str) -> Event {
        self.who = w.to_string();
        self
    }

    /// One human-readable line, as alerts carry it.
    pub fn message(&self) -> String {
        let service = self.service.as_deref().unwrap_or("-");
        match (self.from.as_deref(), self.to.as_deref()) {
            (Some(f), Some(t)) => format!("{service}: {} {f} -> {t} ({})", self.kind, self.reason),
            (None, Some(t)) => format!("{service}: {} {t} ({})", self.kind, self.reason),
            _ => format!("{service}: {} ({})", self.kind, self.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_causes_keep_their_history_words() {
        let e = Event::new(5, EventKind::DrillStart, EventCause::Drill)
            .service("cic")
            .to_target("primary")
            .who("ops");
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(
            line,
            r#"{"time":5,"kind":"drill_start","service":"cic","to":"primary","cause":"drill","reason":"","who":"ops"}"#
        );
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, e);
        // A kind from a newer version still reads.
        let odd: Event = serde_json::from_str(r#"{"time":1,"kind":"teleport"}"#).unwrap();
        assert_eq!(odd.kind, EventKind::Other);
    }

    #[test]
    fn message_names_the_move() {
        let e = Event::new(1, EventKind::Failover, EventCause::Health)
            .service("cic")
            .from_target("primary")
            .to_target("backup")
            .reason("primary is unhealthy");
        assert_eq!(
            e.message(),
            "cic: failover primary -> backup (primary is unhealthy)"
        );
        assert!(e.kind.is_remap());
        // Padded like a string in tables (ggon-ctl history).
        assert_eq!(format!("{:<10}|", EventKind::Drain), "drain     |");
        assert!(!EventKind::Drain.is_remap());
    }
}
