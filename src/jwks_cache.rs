//! When to fetch the JWKS: the policy only, with the clock passed in.
//!
//! - a fetched set is fresh for `TTL_SECS` (10 min, as the JS SDK's jose cache);
//! - a token whose `kid` is not in the set may trigger one refetch, at most once per
//!   `REFETCH_INTERVAL_SECS` (rotation without letting unknown kids hammer the frontend API);
//! - a failed fetch is not retried for `REFETCH_INTERVAL_SECS`, with or without a cached set;
//! - while fetches fail, the last good set serves for at most `MAX_STALE_SECS` after it was
//!   fetched: a key Wacht removed must not stay trusted for as long as fetches can be made to fail.

use crate::jwks::KeySet;

pub const TTL_SECS: u64 = 600;
pub const REFETCH_INTERVAL_SECS: u64 = 30;
pub const MAX_STALE_SECS: u64 = 3600;

#[derive(Debug, Default)]
pub struct JwksCache {
    current: Option<(KeySet, u64)>,
    last_attempt: Option<u64>,
}

impl JwksCache {
    /// Whether the cached set is within its TTL (no fetch needed).
    pub fn fresh(&self, now: u64) -> bool {
        self.current
            .as_ref()
            .is_some_and(|(_, at)| now < at.saturating_add(TTL_SECS))
    }

    /// The last good set, if it is not older than `MAX_STALE_SECS`.
    pub fn last_good(&self, now: u64) -> Option<&KeySet> {
        let (keys, at) = self.current.as_ref()?;
        (now < at.saturating_add(MAX_STALE_SECS)).then_some(keys)
    }

    /// Whether a fetch may be attempted now (stale set, unknown `kid`, or none yet).
    pub fn may_refetch(&self, now: u64) -> bool {
        self.last_attempt
            .is_none_or(|t| now >= t.saturating_add(REFETCH_INTERVAL_SECS))
    }

    pub fn fetched(&mut self, keys: KeySet, now: u64) {
        self.current = Some((keys, now));
        self.last_attempt = Some(now);
    }

    pub fn fetch_failed(&mut self, now: u64) {
        self.last_attempt = Some(now);
    }
}
