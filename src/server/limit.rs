//! The sign-in rate limit: a small token bucket per client address, so that guessing
//! tokens through `POST /login` costs minutes, not milliseconds. Addresses are the peer's
//! (IPv6 by its /64, which one host usually holds whole); behind a reverse proxy every
//! visitor shares the proxy's bucket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts allowed at once from one address.
pub const SIGN_IN_BURST: u32 = 5;
/// Then one more attempt every this long (5 a minute).
pub const SIGN_IN_EVERY: Duration = Duration::from_secs(12);

/// Buckets are dropped once full again, when there are more than this many.
const PRUNE_ABOVE: usize = 4096;

pub struct SignInLimit {
    burst: f64,
    every: Duration,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, every: Duration, burst: f64) {
        let gained = now.saturating_duration_since(self.at).as_secs_f64() / every.as_secs_f64();
        self.tokens = (self.tokens + gained).min(burst);
        self.at = now;
    }
}

/// The bucket an address draws from: itself, or its /64 for IPv6.
fn bucket_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

impl Default for SignInLimit {
    fn default() -> Self {
        SignInLimit::new(SIGN_IN_BURST, SIGN_IN_EVERY)
    }
}

impl SignInLimit {
    pub fn new(burst: u32, every: Duration) -> SignInLimit {
        SignInLimit { burst: f64::from(burst), every, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one attempt for `addr` at `now`; refused with how long until the next one.
    pub fn take(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().expect("sign-in buckets");
        if buckets.len() > PRUNE_ABOVE {
            let (every, burst) = (self.every, self.burst);
            buckets.retain(|_, b| {
                b.refill(now, every, burst);
                b.tokens < burst
            });
        }
        let bucket = buckets.entry(bucket_of(addr)).or_insert(Bucket { tokens: self.burst, at: now });
        bucket.refill(now, self.every, self.burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.every.mul_f64(1.0 - bucket.tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_attempt_per_interval_per_address() {
        let limit = SignInLimit::new(3, Duration::from_secs(12));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.take(a, t0), Ok(()));
        }
        assert_eq!(limit.take(a, t0), Err(Duration::from_secs(12)), "the fourth at once waits a whole interval");
        assert_eq!(limit.take(b, t0), Ok(()), "another address has its own bucket");
        assert_eq!(limit.take(a, t0 + Duration::from_secs(3)), Err(Duration::from_secs(9)));
        assert_eq!(limit.take(a, t0 + Duration::from_secs(12)), Ok(()), "one attempt more per interval");
        assert!(limit.take(a, t0 + Duration::from_secs(13)).is_err());
        let later = t0 + Duration::from_secs(600);
        for _ in 0..3 {
            assert_eq!(limit.take(a, later), Ok(()), "refilled up to the burst, not beyond");
        }
        assert!(limit.take(a, later).is_err());
    }

    #[test]
    fn an_ipv6_host_cannot_escape_by_changing_the_low_bits() {
        let limit = SignInLimit::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(limit.take("2001:db8:1:2::1".parse().unwrap(), t0).is_ok());
        assert!(limit.take("2001:db8:1:2:ffff::9".parse().unwrap(), t0).is_err(), "the same /64");
        assert!(limit.take("2001:db8:1:3::1".parse().unwrap(), t0).is_ok(), "another /64");
        assert!(limit.take("127.0.0.1".parse().unwrap(), t0).is_ok());
        assert!(limit.take("::ffff:127.0.0.1".parse().unwrap(), t0).is_err(), "an IPv4-mapped address is the IPv4 one");
    }
}
