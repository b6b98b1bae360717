//! When to fetch the JWKS: the policy only, with the clock passed in.
//!
//! - a fetched set is fresh for `TTL_SECS` (10 min, as the JS SDK's jose cache);
//! - a token whose `kid` is not in the set may trigger one refetch, at most once per
//!   `REFETCH_INTERVAL_SECS` (rotation without letting unknown kids hammer the frontend API);
//! - a failed fetch is not retried for `REFETCH_INTERVAL_SECS`, with or without a cached set;
//! - while fetches fail, the last good set serves for at most `MAX_STALE_SECS` after it was
//!   fetched: a key Wacht removed must not stay trusted for as long as fetches can be made to fail;
//! - both bounds count from when the answer was made, not when it reached us: an answer with
//!   `Age: a` (RFC 9111 §5.1; from a CDN, or the native host's shared cache) counts as fetched
//!   `a` seconds ago, so a cache in front cannot stretch a removed key's life. An answer already
//!   `MAX_STALE_SECS` old, or with an invalid `Age`, is refused like a failed fetch. The refetch
//!   limit counts from our own attempt, but ends no later than the set's expiry, so an answer
//!   that arrived old is not kept past its TTL either.

use crate::jwks::KeySet;

pub const TTL_SECS: u64 = 600;
pub const REFETCH_INTERVAL_SECS: u64 = 30;
pub const MAX_STALE_SECS: u64 = 3600;
/// The least time between two fetches when the first answer was already at its TTL.
pub const EXPIRY_REFETCH_GAP_SECS: u64 = 1;

#[derive(Debug, Default)]
pub struct JwksCache {
    /// The set and when it counts as fetched (Unix seconds, its `Age` taken off).
    current: Option<(KeySet, u64)>,
    last_attempt: Option<u64>,
}

/// Why a JWKS answer's `Age` makes it unusable as a key set.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgeError {
    #[error("its Age header is not a number of seconds")]
    Invalid,
    #[error("it is {0} s old (Age header), past the {MAX_STALE_SECS} s a key set may serve")]
    TooOld(u64),
}

/// How old a JWKS answer already is, from its `Age` header: always below `MAX_STALE_SECS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Age(u64);

impl Age {
    /// Parses the `Age` field as RFC 9111 §5.1 says: the first member of its first line, a
    /// non-negative integer of seconds; no field is age 0, and a value too large for a u64
    /// saturates (and is then too old).
    ///
    /// An invalid value (a sign, a fraction, text, nothing) makes the answer unusable, where the
    /// RFC lets a cache ignore it: ignoring would count it as age 0, the longest trust there is,
    /// and a cache that mangles `Age` cannot be relied on to say how old the keys are.
    pub fn from_field(field: Option<&[u8]>) -> Result<Age, AgeError> {
        let Some(field) = field else {
            return Ok(Age(0));
        };
        let first = field
            .split(|&b| b == b',')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if first.is_empty() || !first.iter().all(u8::is_ascii_digit) {
            return Err(AgeError::Invalid);
        }
        let secs = first.iter().fold(0u64, |secs, digit| {
            secs.saturating_mul(10)
                .saturating_add(u64::from(digit.saturating_sub(b'0')))
        });
        if secs >= MAX_STALE_SECS {
            return Err(AgeError::TooOld(secs));
        }
        Ok(Age(secs))
    }

    pub fn secs(self) -> u64 {
        self.0
    }
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

    /// A set fetched `now` whose answer was already `age` old.
    pub fn fetched(&mut self, keys: KeySet, now: u64, age: Age) {
        let made = now.saturating_sub(age.0);
        self.current = Some((keys, made));
        // The refetch limit must not keep an answer that arrived old past its TTL: the next
        // fetch is allowed at its expiry, if that comes sooner, but never sooner than
        // `EXPIRY_REFETCH_GAP_SECS` after this one (an upstream whose answers are always
        // older than the TTL is asked at most that often).
        let expiry = made
            .saturating_add(TTL_SECS)
            .max(now.saturating_add(EXPIRY_REFETCH_GAP_SECS));
        self.last_attempt = Some(now.min(expiry.saturating_sub(REFETCH_INTERVAL_SECS)));
    }

    pub fn fetch_failed(&mut self, now: u64) {
        self.last_attempt = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(field: &str) -> Result<u64, AgeError> {
        Age::from_field(Some(field.as_bytes())).map(Age::secs)
    }

    #[test]
    fn age_is_rfc_9111_delta_seconds() {
        assert_eq!(Age::from_field(None), Ok(Age(0)));
        assert_eq!(age("0"), Ok(0));
        assert_eq!(age("597"), Ok(597));
        assert_eq!(age("007"), Ok(7));
        assert_eq!(age(" 42\t"), Ok(42), "optional whitespace around the value");
        // A list: the first member counts, the rest is discarded (§5.1).
        assert_eq!(age("5, 700"), Ok(5));
        assert_eq!(age("5,x"), Ok(5));
        assert_eq!(age("3599"), Ok(3599));
        assert_eq!(age("3600"), Err(AgeError::TooOld(3600)));
        // Past any integer: saturates, and is too old.
        assert_eq!(
            age("99999999999999999999999999"),
            Err(AgeError::TooOld(u64::MAX))
        );
        for invalid in [
            "", " ", "-1", "+5", "1.5", "1e3", "abc", "x, 5", "0x10", "٣",
        ] {
            assert_eq!(age(invalid), Err(AgeError::Invalid), "{invalid:?}");
        }
    }

    fn keys() -> KeySet {
        let key = wacht_standin::tokens::TestKey::es256(1);
        let doc = wacht_standin::tokens::jwks(&[&key]).to_string();
        KeySet::parse(doc.as_bytes(), &crate::signature::Portable).unwrap()
    }

    #[test]
    fn the_ttl_and_the_stale_bound_count_the_age() {
        const NOW: u64 = 1_800_000_000;
        let mut cache = JwksCache::default();
        cache.fetched(keys(), NOW, Age::from_field(Some(b"590")).unwrap());
        assert!(cache.fresh(NOW + 9));
        assert!(!cache.fresh(NOW + 10), "590 s old when fetched: 10 s left");
        assert!(cache.last_good(NOW + MAX_STALE_SECS - 591).is_some());
        assert!(cache.last_good(NOW + MAX_STALE_SECS - 590).is_none());
        // The next fetch may come at the TTL's end, not 30 s after ours: the answer arrived old.
        assert!(!cache.may_refetch(NOW + 9));
        assert!(cache.may_refetch(NOW + 10));

        // A young answer: the refetch limit counts from our own attempt.
        let mut cache = JwksCache::default();
        cache.fetched(keys(), NOW, Age::from_field(Some(b"5")).unwrap());
        assert!(!cache.may_refetch(NOW + REFETCH_INTERVAL_SECS - 1));
        assert!(cache.may_refetch(NOW + REFETCH_INTERVAL_SECS));

        // Already past its TTL when it came: used, and asked again after the gap, not at once.
        let mut cache = JwksCache::default();
        cache.fetched(keys(), NOW, Age::from_field(Some(b"900")).unwrap());
        assert!(!cache.fresh(NOW) && cache.last_good(NOW).is_some());
        assert!(!cache.may_refetch(NOW));
        assert!(cache.may_refetch(NOW + EXPIRY_REFETCH_GAP_SECS));
    }

    #[test]
    fn an_age_past_the_clock_counts_from_zero() {
        let mut cache = JwksCache::default();
        cache.fetched(keys(), 5, Age(100));
        assert!(cache.fresh(TTL_SECS - 1));
        assert!(!cache.fresh(TTL_SECS));
    }
}
