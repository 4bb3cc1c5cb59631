//! Response rate limiting (RRL) for UDP answers, per client prefix.
//!
//! Owns: one token bucket per client prefix (IPv4 /24, IPv6 /56 by default)
//! in each UDP worker: `responses_per_second` tokens a second, as many at
//! most. An answer without a token is dropped, except every `slip`-th, which
//! goes out truncated (TC=1, question only) so a legitimate client whose
//! address is being spoofed still gets through over TCP. Off unless
//! configured. Per-worker tables need no lock; with several workers a prefix
//! can get up to workers × the rate (the kernel spreads one client's packets
//! over workers by its address and port).
//!
//! It must not look inside answers beyond the header and question.

use std::net::IpAddr;
use std::time::Instant;

use rustc_hash::FxHashMap;

use crate::config::RrlConfig;

/// Buckets kept per worker before the table is reset (bounds memory under a
/// flood from many prefixes).
const MAX_BUCKETS: usize = 100_000;

struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u32,
}

pub struct Rrl {
    cfg: RrlConfig,
    buckets: FxHashMap<u128, Bucket>,
}

/// What to do with one answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send it truncated (TC=1, no records).
    Slip,
    Drop,
}

fn prefix_key(ip: IpAddr, v4: u8, v6: u8) -> u128 {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(v4.min(32)))
                .unwrap_or(0);
            u128::from(u32::from(a) & mask) | (1 << 127)
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(v6.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask & !(1 << 127)
        }
    }
}

impl Rrl {
    pub fn new(cfg: RrlConfig) -> Rrl {
        Rrl {
            cfg,
            buckets: FxHashMap::default(),
        }
    }

    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        let rate = f64::from(self.cfg.responses_per_second.max(1));
        if self.buckets.len() >= MAX_BUCKETS {
            self.buckets.clear();
        }
        let b = self
            .buckets
            .entry(prefix_key(ip, self.cfg.ipv4_prefix, self.cfg.ipv6_prefix))
            .or_insert(Bucket {
                tokens: rate,
                last: now,
                suppressed: 0,
            });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Send;
        }
        b.suppressed = b.suppressed.wrapping_add(1);
        if self.cfg.slip > 0 && b.suppressed.is_multiple_of(self.cfg.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// Cut an answer down to its header and question, with TC=1 and no records.
pub fn truncate(resp: &mut Vec<u8>) {
    let mut i = 12;
    if resp.get(4..6) == Some(&[0, 1]) {
        while let Some(&l) = resp.get(i) {
            if l == 0 {
                break;
            }
            i += 1 + l as usize;
        }
        i += 5;
    }
    resp.truncate(i.min(resp.len()));
    if resp.len() >= 12 {
        resp[2] |= 0x02;
        resp[6..12].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_refill_and_slip() {
        let mut r = Rrl::new(RrlConfig {
            responses_per_second: 5,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        });
        let t0 = Instant::now();
        let a: IpAddr = "127.0.0.9".parse().unwrap();
        let same_net: IpAddr = "127.0.0.200".parse().unwrap();
        let other: IpAddr = "127.0.1.1".parse().unwrap();
        let v: Vec<Verdict> = (0..9).map(|_| r.check(a, t0)).collect();
        assert_eq!(v.iter().filter(|x| **x == Verdict::Send).count(), 5);
        assert_eq!(
            v[5..],
            [Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
        );
        assert_eq!(
            r.check(same_net, t0),
            Verdict::Drop,
            "same /24 shares the bucket"
        );
        assert_eq!(r.check(other, t0), Verdict::Send, "another /24 has its own");
        // One second later: five more.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            (0..5).filter(|_| r.check(a, t1) == Verdict::Send).count(),
            5
        );
    }

    #[test]
    fn truncation_keeps_the_question() {
        let mut resp = vec![0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 1];
        resp.extend(b"\x03cic\x04ggon\x03org\x00\x00\x01\x00\x01");
        resp.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 11]);
        truncate(&mut resp);
        assert_eq!(resp.len(), 12 + 14 + 4);
        assert_eq!(resp[2] & 0x02, 0x02);
        assert_eq!(&resp[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
    }
}
