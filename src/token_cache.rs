//! Verified session tokens, so that each token is verified once per instance (as Envoy's
//! `jwt_authn` filter caches them with `jwt_cache_config`).
//!
//! - Bounded LRU, keyed by SHA-256 of the whole token: the token itself is not kept. Memory is
//!   taken as entries come, not reserved for the whole capacity up front.
//! - An entry holds the verified claims and the `kid` of the key that verified them.
//! - A hit costs no signature check, but the time rules (`exp`, `nbf`, skew) run again against
//!   now, and the permission rules run as for any token. An entry that has expired is dropped.
//! - Entries belong to the key set that verified them: when the set differs (rotation, a key
//!   removed), every entry goes.

use std::num::NonZeroUsize;

use lru::LruCache;
use sha2::{Digest as _, Sha256};

use crate::claims::Claims;
use crate::jwks::KeySet;

#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Option<LruCache<[u8; 32], Entry>>,
    /// The fingerprint of the key set the entries were verified with.
    key_set: Option<[u8; 32]>,
}

#[derive(Debug)]
struct Entry {
    claims: Claims,
    kid: Option<String>,
}

impl TokenCache {
    /// The claims of the token with this `digest` if it was verified with `keys` and is still
    /// within its validity window. `capacity` 0 means the cache is off.
    pub fn get(
        &mut self,
        digest: &[u8; 32],
        keys: &KeySet,
        now: u64,
        skew: u64,
        capacity: usize,
    ) -> Option<Claims> {
        let entries = self.entries_for(keys, capacity)?;
        let entry = entries.get(digest)?;
        let kid_still_there = entry
            .kid
            .as_deref()
            .is_none_or(|kid| keys.contains_kid(kid));
        if kid_still_there && entry.claims.validity.check(now, skew).is_ok() {
            return Some(entry.claims.clone());
        }
        entries.pop(digest);
        None
    }

    /// Keeps `claims` of the token with this `digest`, verified just now with `keys` (by the
    /// key `kid`).
    pub fn insert(
        &mut self,
        digest: [u8; 32],
        keys: &KeySet,
        claims: Claims,
        kid: Option<String>,
        capacity: usize,
    ) {
        if let Some(entries) = self.entries_for(keys, capacity) {
            entries.put(digest, Entry { claims, kid });
        }
    }

    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, LruCache::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries, emptied first when `keys` is another set than theirs.
    fn entries_for(
        &mut self,
        keys: &KeySet,
        capacity: usize,
    ) -> Option<&mut LruCache<[u8; 32], Entry>> {
        let capacity = NonZeroUsize::new(capacity)?;
        let entries = self.entries.get_or_insert_with(|| {
            // `LruCache::new` would reserve the whole table at the first token (1.1 MiB at the
            // upper bound, however few tokens come). Unbounded, then bounded by `resize` (which
            // reserves nothing), the table grows as the cache fills, and `put` still evicts the
            // least recently used entry at capacity.
            let mut entries = LruCache::unbounded();
            entries.resize(capacity);
            entries
        });
        if self.key_set != Some(keys.fingerprint()) {
            entries.clear();
            self.key_set = Some(keys.fingerprint());
        }
        Some(entries)
    }
}

/// The cache key: SHA-256 of the whole token (the token itself is not kept).
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Validity;
    use crate::signature::Portable;
    use wacht_standin::tokens::{TestKey, jwks};

    const NOW: u64 = 1_800_000_000;

    fn keys(keys: &[&TestKey]) -> KeySet {
        KeySet::parse(&serde_json::to_vec(&jwks(keys)).unwrap(), &Portable).unwrap()
    }

    fn claims(expires: u64) -> Claims {
        Claims {
            validity: Validity {
                expires,
                not_before: None,
            },
            subject: "1".into(),
            session_id: None,
            organization: None,
            workspace: None,
            organization_permissions: vec!["deployment:read".into()],
            workspace_permissions: vec![],
        }
    }

    #[test]
    fn a_hit_returns_the_claims_until_exp_plus_skew() {
        let set = keys(&[&TestKey::es256(1)]);
        let mut cache = TokenCache::default();
        assert_eq!(cache.get(&digest("t"), &set, NOW, 5, 8), None);
        cache.insert(digest("t"), &set, claims(NOW + 35), None, 8);
        assert_eq!(
            cache.get(&digest("t"), &set, NOW, 5, 8),
            Some(claims(NOW + 35))
        );
        assert_eq!(cache.get(&digest("other"), &set, NOW, 5, 8), None);
        assert_eq!(
            cache.get(&digest("t"), &set, NOW + 39, 5, 8),
            Some(claims(NOW + 35))
        );
        // Dead at exp + skew, and gone from the cache.
        assert_eq!(cache.get(&digest("t"), &set, NOW + 40, 5, 8), None);
        assert!(cache.is_empty());
        assert_eq!(cache.get(&digest("t"), &set, NOW, 5, 8), None);
    }

    #[test]
    fn not_before_is_checked_on_every_hit() {
        let set = keys(&[&TestKey::es256(1)]);
        let mut cache = TokenCache::default();
        let mut c = claims(NOW + 100);
        c.validity.not_before = Some(NOW + 50);
        cache.insert(digest("t"), &set, c.clone(), None, 8);
        assert_eq!(cache.get(&digest("t"), &set, NOW, 5, 8), None);
        cache.insert(digest("t"), &set, c.clone(), None, 8);
        assert_eq!(cache.get(&digest("t"), &set, NOW + 45, 5, 8), Some(c));
    }

    #[test]
    fn another_key_set_empties_the_cache() {
        let a = keys(&[&TestKey::es256(1)]);
        let same_again = keys(&[&TestKey::es256(1)]);
        let rotated = keys(&[&TestKey::es256(2)]);
        let mut cache = TokenCache::default();
        cache.insert(digest("t"), &a, claims(NOW + 35), None, 8);
        assert!(cache.get(&digest("t"), &same_again, NOW, 5, 8).is_some());
        assert_eq!(cache.get(&digest("t"), &rotated, NOW, 5, 8), None);
        assert!(cache.is_empty());
        // Back to the first set: the entry is not resurrected.
        assert_eq!(cache.get(&digest("t"), &a, NOW, 5, 8), None);
    }

    #[test]
    fn an_entry_whose_kid_left_the_set_is_a_miss() {
        let a = TestKey::es256(1).with_kid("a");
        let set = keys(&[&a]);
        let mut cache = TokenCache::default();
        cache.insert(digest("t"), &set, claims(NOW + 35), Some("gone".into()), 8);
        assert_eq!(cache.get(&digest("t"), &set, NOW, 5, 8), None);
        cache.insert(digest("u"), &set, claims(NOW + 35), Some("a".into()), 8);
        assert!(cache.get(&digest("u"), &set, NOW, 5, 8).is_some());
    }

    #[test]
    fn bounded_lru_and_size_zero_is_off() {
        let set = keys(&[&TestKey::es256(1)]);
        let mut cache = TokenCache::default();
        for t in ["a", "b", "c"] {
            cache.insert(digest(t), &set, claims(NOW + 35), None, 2);
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&digest("a"), &set, NOW, 5, 2), None);
        assert!(cache.get(&digest("c"), &set, NOW, 5, 2).is_some());
        // Least recently used, not first in: `b` was used after `c`, so `c` goes.
        assert!(cache.get(&digest("b"), &set, NOW, 5, 2).is_some());
        cache.insert(digest("d"), &set, claims(NOW + 35), None, 2);
        assert!(cache.get(&digest("b"), &set, NOW, 5, 2).is_some());
        assert_eq!(cache.get(&digest("c"), &set, NOW, 5, 2), None);
        assert_eq!(cache.len(), 2);

        let mut off = TokenCache::default();
        off.insert(digest("a"), &set, claims(NOW + 35), None, 0);
        assert_eq!(off.get(&digest("a"), &set, NOW, 5, 0), None);
        assert!(off.is_empty());
    }
}
