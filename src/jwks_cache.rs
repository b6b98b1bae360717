//! When to fetch the JWKS: the policy only, with the clock passed in.
//!
//! - a fetched set is fresh for `TTL_SECS` (10 min, as the JS SDK's jose cache);
//! - a token whose `kid` is not in the set may trigger one refetch, at most once per
//!   `REFETCH_INTERVAL_SECS` (rotation without letting unknown kids hammer the frontend API);
//! - a failed refetch keeps the last good set, and is not retried for `REFETCH_INTERVAL_SECS`.

use crate::jwks::KeySet;

pub const TTL_SECS: u64 = 600;
pub const REFETCH_INTERVAL_SECS: u64 = 30;

#[derive(Debug, Default)]
pub struct JwksCache {
    current: Option<(KeySet, u64)>,
    last_attempt: Option<u64>,
    /// `WACHT_JWKS`, parsed once: the raw text it came from and the keys.
    inline: Option<(String, KeySet)>,
}

impl JwksCache {
    /// The set to verify with now, if it needs no fetch first.
    pub fn usable(&self, now: u64) -> Option<&KeySet> {
        let (keys, fetched_at) = self.current.as_ref()?;
        let fresh = now < fetched_at.saturating_add(TTL_SECS);
        (fresh || !self.attempt_allowed(now)).then_some(keys)
    }

    /// The last good set, however old: used when a fetch fails.
    pub fn last_good(&self) -> Option<&KeySet> {
        self.current.as_ref().map(|(k, _)| k)
    }

    /// Whether an unknown `kid` may trigger a refetch now.
    pub fn may_refetch(&self, now: u64) -> bool {
        self.attempt_allowed(now)
    }

    fn attempt_allowed(&self, now: u64) -> bool {
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

    /// Keys from `WACHT_JWKS`, parsed on first use and whenever the text changes.
    pub fn inline(&mut self, raw: &str) -> Result<&KeySet, crate::jwks::JwksError> {
        let stale = self.inline.as_ref().is_none_or(|(text, _)| text != raw);
        if stale {
            self.inline = Some((raw.to_string(), KeySet::parse(raw.as_bytes())?));
        }
        match &self.inline {
            Some((_, keys)) => Ok(keys),
            None => Err(crate::jwks::JwksError::NotJson),
        }
    }
}
