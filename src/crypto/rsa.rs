//! RSASSA-PKCS1-v1_5 verification with SHA-256 (RFC 8017 §8.2.2), public-key operation only.
//!
//! The recovered block is compared with the one correct encoding
//! `00 01 FF…FF 00 DigestInfo(SHA-256) digest` (§9.2, note 1): nothing is parsed, so no ASN.1
//! leniency can creep in. Variable time: only public data is handled.

use sha2::{Digest as _, Sha256};

use super::mont::{self, Modulus};

/// DER of DigestInfo { sha256, NULL } up to the digest (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// An RSA public key (n, e).
#[derive(Clone)]
pub(crate) struct RsaPublicKey {
    n: Modulus,
    /// The modulus length in bytes: every signature has exactly this length.
    len: usize,
    e: u64,
}

impl RsaPublicKey {
    /// `n`: big-endian without leading zero octets, odd; `e` > 1 and odd. Size limits are the
    /// caller's.
    pub(crate) fn new(n: &[u8], e: u64) -> Option<RsaPublicKey> {
        if n.first() == Some(&0) || e < 3 || e & 1 == 0 {
            return None;
        }
        let mut limbs = vec![0u32; n.len().div_ceil(4)];
        if !mont::from_be_bytes(&mut limbs, n) {
            return None;
        }
        Some(RsaPublicKey {
            n: Modulus::new(limbs)?,
            len: n.len(),
            e,
        })
    }

    /// Verifies `sig` over `msg` (RS256).
    pub(crate) fn verify_sha256(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != self.len {
            return false;
        }
        let Some(expected) = encode_sha256(&Sha256::digest(msg), self.len) else {
            return false;
        };
        let mut s = vec![0u32; self.n.limbs().len()];
        // s < n (RFC 8017 §5.2.2 step 1).
        if !mont::from_be_bytes(&mut s, sig) || !mont::less_than(&s, self.n.limbs()) {
            return false;
        }
        let m = self.n.pow_u64(&s, self.e);
        let mut em = vec![0u8; self.len];
        mont::to_be_bytes(&m, &mut em);
        em == expected
    }
}

/// EMSA-PKCS1-v1_5 with SHA-256 for a `len`-byte modulus; `None` when there is no room for the
/// 8-byte minimum of padding (RFC 8017 §9.2 step 3).
fn encode_sha256(digest: &[u8], len: usize) -> Option<Vec<u8>> {
    let t_len = SHA256_DIGEST_INFO.len() + digest.len();
    let ps_len = len.checked_sub(t_len + 3).filter(|&ps| ps >= 8)?;
    let mut em = Vec::with_capacity(len);
    em.extend_from_slice(&[0x00, 0x01]);
    em.resize(2 + ps_len, 0xff);
    em.push(0x00);
    em.extend_from_slice(&SHA256_DIGEST_INFO);
    em.extend_from_slice(digest);
    Some(em)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use wacht_standin::tokens::TestKey;

    /// The committed TEST-ONLY key (standin/keys/rs256-test-only.pem), via its JWK.
    fn test_key() -> (TestKey, Vec<u8>, RsaPublicKey) {
        let key = TestKey::rs256();
        let jwk = key.public_jwk();
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
        assert_eq!(e, [1, 0, 1]);
        let public = RsaPublicKey::new(&n, 65537).unwrap();
        (key, n, public)
    }

    #[test]
    fn encoding_layout() {
        let em = encode_sha256(&[7; 32], 256).unwrap();
        assert_eq!(em.len(), 256);
        // 00 01, 202 × FF, 00, the 19-byte DigestInfo prefix, the 32-byte digest.
        assert_eq!(em[..2], [0, 1]);
        assert!(em[2..204].iter().all(|&b| b == 0xff));
        assert_eq!(em[204], 0);
        assert_eq!(em[205..224], SHA256_DIGEST_INFO);
        assert_eq!(em[224..], [7; 32]);
        // 3 + 8 + 51 bytes at least.
        assert!(encode_sha256(&[7; 32], 62).is_some());
        assert!(encode_sha256(&[7; 32], 61).is_none());
        assert!(encode_sha256(&[7; 32], 0).is_none());
    }

    #[test]
    fn known_answer_with_the_standin_key() {
        let (key, n, public) = test_key();
        assert_eq!(public.len, 256);
        for msg in [&b"hello"[..], b"", &[0u8; 1000]] {
            let sig = key.sign_input(msg);
            assert!(public.verify_sha256(msg, &sig));
            assert!(!public.verify_sha256(b"hellO", &sig));
            let mut flipped = sig.clone();
            flipped[100] ^= 0x10;
            assert!(!public.verify_sha256(msg, &flipped));
            assert!(!public.verify_sha256(msg, &sig[1..]));
            assert!(!public.verify_sha256(msg, &[&[0u8][..], &sig].concat()));
            // s + n has the same residue but is not below n (and no longer fits 256 bytes
            // unless n is small); n itself and 0 are refused too.
            assert!(!public.verify_sha256(msg, &n));
            assert!(!public.verify_sha256(msg, &[0; 256]));
            assert!(!public.verify_sha256(msg, &[0xff; 256]));
        }
        // The wrong exponent.
        let e3 = RsaPublicKey::new(&n, 3).unwrap();
        assert!(!e3.verify_sha256(b"hello", &key.sign_input(b"hello")));
    }

    #[test]
    fn exponentiation_by_65537_is_sixteen_squarings_and_a_product() {
        let (_, n, key) = test_key();
        let mut two = vec![0u32; 64];
        two[0] = 2;
        let cube = RsaPublicKey::new(&n, 3).unwrap();
        assert_eq!(cube.n.pow_u64(&two, 3)[..2], [8, 0]);
        // 2^65536 by squaring 16 times, then doubled mod n, equals 2^65537.
        let mut x = two.clone();
        for _ in 0..16 {
            x = key.n.pow_u64(&x, 2);
        }
        let mut want = vec![0u32; 64];
        let mut carry = 0u64;
        for (w, &l) in want.iter_mut().zip(&x) {
            let v = u64::from(l) * 2 + carry;
            *w = v as u32;
            carry = v >> 32;
        }
        if carry != 0 || !mont::less_than(&want, key.n.limbs()) {
            mont::sub_assign(&mut want, key.n.limbs());
        }
        assert_eq!(key.n.pow_u64(&two, 65537), want);
    }

    #[test]
    fn malformed_keys_are_refused() {
        let (_, n, _) = test_key();
        assert!(RsaPublicKey::new(&n, 1).is_none());
        assert!(RsaPublicKey::new(&n, 65536).is_none());
        assert!(RsaPublicKey::new(&[&[0u8][..], &n].concat(), 65537).is_none());
        let mut even = n.clone();
        even[255] &= 0xfe;
        assert!(RsaPublicKey::new(&even, 65537).is_none());
        assert!(RsaPublicKey::new(&[], 65537).is_none());
        // A modulus too small for a SHA-256 encoding parses but verifies nothing.
        let small = RsaPublicKey::new(&n[..40], 65537);
        if let Some(small) = small {
            assert!(!small.verify_sha256(b"x", &[1; 40]));
        }
    }
}
