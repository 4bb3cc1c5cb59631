//! The per-(notifier, service) rate limit: a token bucket per service, and
//! the count of what it held back, reported later as one summary.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Alert, MAX_BUCKETS};
use crate::decide::{Event, EventCause, EventKind};

/// Token buckets per service for one notifier: `burst` tokens, refilled
/// continuously at `burst / per`.
pub(super) struct Limiter {
    /// None = unlimited (`burst` or `per` of zero).
    rate: Option<(f64, f64)>,
    buckets: HashMap<Option<String>, Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl Limiter {
    pub(super) fn new(burst: u32, per: Duration) -> Limiter {
        let rate = (burst > 0 && !per.is_zero())
            .then(|| (f64::from(burst), f64::from(burst) / per.as_secs_f64()));
        Limiter {
            rate,
            buckets: HashMap::new(),
        }
    }

    fn bucket(&mut self, service: &Option<String>, now: Instant) -> Option<&mut Bucket> {
        let (burst, per_sec) = self.rate?;
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(service) {
            self.prune(now);
        }
        let b = self.buckets.entry(service.clone()).or_insert(Bucket {
            tokens: burst,
            last: now,
            suppressed: 0,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(burst);
        b.last = now;
        Some(b)
    }

    /// Take a token for one event. `Ok(n)`: send it, after a summary of `n`
    /// suppressed events if `n > 0`. `Err(())`: suppressed (counted here).
    pub(super) fn admit(&mut self, service: &Option<String>, now: Instant) -> Result<u64, ()> {
        let Some(b) = self.bucket(service, now) else {
            return Ok(0);
        };
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(std::mem::take(&mut b.suppressed))
        } else {
            b.suppressed += 1;
            Err(())
        }
    }

    /// Summaries now due: services with suppressed events whose bucket has a
    /// token again. The summary itself does not spend the token.
    pub(super) fn due(&mut self, now: Instant) -> Vec<(Option<String>, u64)> {
        let waiting: Vec<Option<String>> = self
            .buckets
            .iter()
            .filter(|(_, b)| b.suppressed > 0)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in waiting {
            if let Some(b) = self.bucket(&key, now) {
                if b.tokens >= 1.0 {
                    out.push((key, std::mem::take(&mut b.suppressed)));
                }
            }
        }
        out
    }

    /// When the next summary becomes due, if any is waiting.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let (_, per_sec) = self.rate?;
        self.buckets
            .values()
            .filter(|b| b.suppressed > 0)
            .map(|b| {
                let missing = (1.0 - b.tokens).max(0.0);
                b.last + Duration::from_secs_f64(missing / per_sec)
            })
            .min()
    }

    fn prune(&mut self, now: Instant) {
        let Some((burst, per_sec)) = self.rate else {
            return;
        };
        self.buckets.retain(|_, b| {
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.suppressed > 0 || b.tokens + elapsed * per_sec < burst
        });
    }
}

pub(super) fn summary(service: Option<String>, count: u64) -> Alert {
    let what = service.as_deref().unwrap_or("events without a service");
    let message = format!("{count} events suppressed for {what}");
    let mut event = Event::new(
        crate::decide::unix_now(),
        EventKind::Suppressed,
        EventCause::RateLimit,
    )
    .reason(&message)
    .who("ggon");
    event.service = service;
    Alert {
        at: event.time,
        event,
        message,
    }
}
