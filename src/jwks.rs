//! The JWK Set of the frontend API: the keys that may sign session tokens.
//!
//! Each usable JWK is parsed once into a ready verifying key. The key type alone decides the
//! algorithm (EC P-256 → ES256, EC P-384 → ES384, RSA → RS256), so a token can never pick how
//! it is checked. Keys this core cannot or must not use are skipped, not fatal: a set that also
//! publishes an encryption key or an HMAC secret still works with its signing keys.

use std::fmt;
use std::rc::Rc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

pub use crate::signature::Alg;
use crate::signature::{PublicParams, Verifier, VerifyingKey};

/// Documents over this size are refused unparsed (a JWKS with a few keys is ~1 KiB).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Sets with more entries are refused: a token without `kid` is tried against every key of its type.
pub const MAX_KEYS: usize = 32;
const MIN_RSA_BITS: usize = 2048;
/// jwt-simple's bound, so every host accepts the same keys (ring and WebCrypto take up to 8192).
const MAX_RSA_BITS: usize = 4096;
/// The one RSA public exponent accepted, as in jwt-simple: every real JWKS key uses it.
const RSA_EXPONENT: [u8; 3] = [1, 0, 1];

/// One usable key of the set, imported once into the host's (or the portable) verifier.
#[derive(Clone)]
pub struct Jwk {
    pub kid: Option<String>,
    alg: Alg,
    /// The one signature length this key accepts: r‖s for ECDSA, the modulus size for RSA.
    signature_len: usize,
    key: Rc<dyn VerifyingKey>,
}

impl Jwk {
    /// The only algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// Does `signature` verify `message` under this key? Any other length than the key's own is
    /// refused here, before the provider sees it, so every host refuses the same signatures.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == self.signature_len && self.key.verify(message, signature)
    }
}

// Kid and algorithm only: key material has no place in logs.
impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg().name())
            .finish()
    }
}

/// The usable keys of one JWKS document.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<Jwk>,
    skipped: usize,
    /// SHA-256 of the document: the same keys fetched again keep their verified tokens cached.
    fingerprint: [u8; 32],
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.keys)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

#[derive(thiserror::Error, Debug, PartialEq, Eq, Clone)]
pub enum JwksError {
    #[error("JWKS document larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("JWKS document is not JSON")]
    NotJson,
    #[error("JWKS document is not a {{\"keys\": [...]}} object")]
    NotAKeySet,
    #[error("JWKS document has more than {MAX_KEYS} keys")]
    TooManyKeys,
    #[error("JWKS has two usable keys with the same kid")]
    DuplicateKid,
    #[error("JWKS has no usable signing key")]
    NoUsableKeys,
}

impl KeySet {
    /// Parses a JWK Set document (RFC 7517 §5) and imports its usable keys into `verifier`.
    pub fn parse(json: &[u8], verifier: &dyn Verifier) -> Result<KeySet, JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let doc: Value = serde_json::from_slice(json).map_err(|_| JwksError::NotJson)?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NotAKeySet)?;
        if entries.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut keys: Vec<Jwk> = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(jwk) = entry.as_object().and_then(|e| parse_jwk(e, verifier)) else {
                continue;
            };
            // Two usable keys under one kid make `kid` selection ambiguous: fail closed, as
            // Wycheproof's `DuplicateKid` vectors recommend.
            if let Some(kid) = &jwk.kid
                && keys.iter().any(|k| k.kid.as_ref() == Some(kid))
            {
                return Err(JwksError::DuplicateKid);
            }
            keys.push(jwk);
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        let skipped = entries.len().saturating_sub(keys.len());
        let fingerprint = Sha256::digest(json).into();
        Ok(KeySet {
            keys,
            skipped,
            fingerprint,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn contains_kid(&self, kid: &str) -> bool {
        self.find_kid(kid).is_some()
    }

    /// The usable keys, in document order.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// How many entries of the document were skipped as unusable (worth a log line).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Identifies the document the set was parsed from.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    pub(crate) fn find_kid(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}

/// One JWK → a usable key, or `None` to skip it.
fn parse_jwk(jwk: &Map<String, Value>, verifier: &dyn Verifier) -> Option<Jwk> {
    // Optional members must have the right type when present; a malformed key is not used.
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return None,
    };
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return None,
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return None;
        }
    }
    let (alg, size) = match str_member(jwk, "kty")? {
        "EC" => match str_member(jwk, "crv")? {
            "P-256" => (Alg::Es256, 32),
            "P-384" => (Alg::Es384, 48),
            _ => return None,
        },
        "RSA" => (Alg::Rs256, 0),
        _ => return None,
    };
    // `alg`, when present, must name the algorithm the key type implies (RFC 7517 §4.4).
    match jwk.get("alg") {
        None => {}
        Some(Value::String(name)) if name == alg.name() => {}
        Some(_) => return None,
    }
    let (key, signature_len) = match alg {
        Alg::Es256 | Alg::Es384 => {
            let (x, y) = coordinates(jwk, size)?;
            let params = PublicParams::Ec { alg, x: &x, y: &y };
            (verifier.import(params)?, 2 * size)
        }
        Alg::Rs256 => {
            let (n, e) = (b64_member(jwk, "n")?, b64_member(jwk, "e")?);
            let (n, e) = rsa_components(&n, &e)?;
            (verifier.import(PublicParams::Rsa { n, e })?, n.len())
        }
    };
    Some(Jwk {
        kid,
        alg,
        signature_len,
        key,
    })
}

fn str_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(Value::as_str)
}

/// Strict base64url without padding, as JWK members are (RFC 7515 §2).
fn b64_member(jwk: &Map<String, Value>, name: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(str_member(jwk, name)?).ok()
}

/// The coordinates `x` and `y`, each exactly the field size, as RFC 7518 §6.2.1.2 requires.
/// Whether the point is on the curve is the verifier's check, at import.
fn coordinates(jwk: &Map<String, Value>, len: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let (x, y) = (b64_member(jwk, "x")?, b64_member(jwk, "y")?);
    (x.len() == len && y.len() == len).then_some((x, y))
}

/// The RSA key policy, the same on every host: an odd modulus of 2048 to 4096 bits that is not
/// ROCA-weak, and e = 65537. Leading zero octets (some libraries emit one) are dropped, so the
/// modulus length is the signature length.
fn rsa_components<'a>(n: &'a [u8], e: &'a [u8]) -> Option<(&'a [u8], &'a [u8])> {
    let (n, e) = (trim_zeros(n), trim_zeros(e));
    let ok = n.last().is_some_and(|b| b & 1 == 1)
        && (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bit_len(n))
        && e == RSA_EXPONENT
        && !roca::is_vulnerable(n);
    ok.then_some((n, e))
}

/// A big-endian integer without its leading zero octets.
fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// The bit length of a big-endian integer without leading zero octets.
fn bit_len(trimmed: &[u8]) -> usize {
    match trimmed.first() {
        None => 0,
        Some(&top) => trimmed.len() * 8 - top.leading_zeros() as usize,
    }
}

/// The ROCA fingerprint (CVE-2017-15361): moduli from the flawed Infineon generator are, modulo
/// each small prime p below, a power of 65537. Such keys' private keys can be recovered.
/// A random modulus passes all these tests with probability ~2^-154 at most.
mod roca {
    const PRIMES: [u32; 39] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173,
    ];
    const GENERATOR: u64 = 65537;

    /// `n`: the modulus, big-endian.
    pub(super) fn is_vulnerable(n: &[u8]) -> bool {
        PRIMES.iter().all(|&p| {
            let p = u64::from(p);
            // n mod p by Horner's rule; every intermediate stays below 256 * p.
            let residue = n
                .iter()
                .fold(0u64, |acc, &b| ((acc << 8) | u64::from(b)) % p);
            in_subgroup(residue, p)
        })
    }

    /// Is `residue` in the multiplicative subgroup of Z_p* generated by 65537?
    fn in_subgroup(residue: u64, p: u64) -> bool {
        let g = GENERATOR % p;
        let mut x = 1u64;
        // The subgroup has at most p - 1 elements.
        for _ in 0..p {
            if x == residue {
                return true;
            }
            x = x * g % p;
            if x == 1 {
                break;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Portable;
    use serde_json::json;
    use wacht_standin::tokens::{TestKey, b64url, jwks};

    fn parse(v: &Value) -> Result<KeySet, JwksError> {
        KeySet::parse(&serde_json::to_vec(v).unwrap(), &Portable)
    }

    fn one(jwk: Value) -> Result<KeySet, JwksError> {
        parse(&json!({ "keys": [jwk] }))
    }

    #[test]
    fn key_type_decides_the_algorithm() {
        let set = parse(&jwks(&[
            &TestKey::es256(1).with_kid("a"),
            &TestKey::es384(1).with_kid("b"),
            &TestKey::rs256().with_kid("c"),
        ]))
        .unwrap();
        let algs: Vec<Alg> = set.keys().iter().map(Jwk::alg).collect();
        assert_eq!(algs, [Alg::Es256, Alg::Es384, Alg::Rs256]);
        assert_eq!(set.len(), 3);
        assert!(!set.is_empty());
        assert!(set.contains_kid("b"));
        assert!(!set.contains_kid("B"));
        assert_eq!(set.skipped(), 0);
    }

    #[test]
    fn alg_names_round_trip_and_are_case_sensitive() {
        for alg in [Alg::Es256, Alg::Es384, Alg::Rs256] {
            assert_eq!(Alg::from_name(alg.name()), Some(alg));
        }
        for name in [
            "none", "None", "es256", "HS256", "PS256", "RS384", "ES512", "",
        ] {
            assert_eq!(Alg::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn documents_that_are_not_key_sets_are_errors() {
        assert_eq!(
            KeySet::parse(b"not json", &Portable).unwrap_err(),
            JwksError::NotJson
        );
        assert_eq!(
            KeySet::parse(b"", &Portable).unwrap_err(),
            JwksError::NotJson
        );
        for doc in [
            json!([]),
            json!({}),
            json!({"keys": {}}),
            json!({"keys": null}),
            json!("keys"),
        ] {
            assert_eq!(parse(&doc).unwrap_err(), JwksError::NotAKeySet, "{doc}");
        }
        assert_eq!(
            parse(&json!({"keys": []})).unwrap_err(),
            JwksError::NoUsableKeys
        );
    }

    #[test]
    fn size_and_count_are_bounded() {
        let mut big = br#"{"keys":[]}"#.to_vec();
        big.resize(MAX_JWKS_BYTES + 1, b' ');
        assert_eq!(
            KeySet::parse(&big, &Portable).unwrap_err(),
            JwksError::TooLarge
        );
        big.truncate(MAX_JWKS_BYTES);
        assert_eq!(
            KeySet::parse(&big, &Portable).unwrap_err(),
            JwksError::NoUsableKeys
        );

        let jwk = TestKey::es256(1).public_jwk();
        let keys: Vec<Value> = (0..MAX_KEYS).map(|_| jwk.clone()).collect();
        assert_eq!(parse(&json!({ "keys": keys })).unwrap().len(), MAX_KEYS);
        let keys: Vec<Value> = (0..=MAX_KEYS).map(|_| jwk.clone()).collect();
        assert_eq!(
            parse(&json!({ "keys": keys })).unwrap_err(),
            JwksError::TooManyKeys
        );
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let good = TestKey::es256(1).with_kid("good").public_jwk();
        let mut p256_as_p384 = good.clone();
        p256_as_p384["crv"] = json!("P-384");
        let mut off_curve = good.clone();
        let mut y = URL_SAFE_NO_PAD.decode(good["y"].as_str().unwrap()).unwrap();
        y[31] ^= 1;
        off_curve["y"] = json!(b64url(&y));
        let mut short_x = good.clone();
        short_x["x"] = json!(b64url(&[1u8; 31]));
        let mut padded_x = good.clone();
        padded_x["x"] = json!(format!("{}=", good["x"].as_str().unwrap()));
        let with = |member: &str, value: Value| {
            let mut k = good.clone();
            k[member] = value;
            k
        };
        let bad = [
            json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256"}),
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(&[9u8; 32])}),
            json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
            json!("not an object"),
            json!(null),
            with("use", json!("enc")),
            with("use", json!(1)),
            with("alg", json!("ES384")),
            with("alg", json!("RS256")),
            with("alg", json!("HS256")),
            with("alg", json!("ES521")),
            with("key_ops", json!(["encrypt"])),
            with("key_ops", json!("verify")),
            with("kid", json!(7)),
            with("kty", json!("RSA")),
            p256_as_p384,
            off_curve,
            short_x,
            padded_x,
        ];
        for b in &bad {
            assert_eq!(one(b.clone()).unwrap_err(), JwksError::NoUsableKeys, "{b}");
        }
        let mut all = bad.to_vec();
        all.push(good);
        let set = parse(&json!({ "keys": all })).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.skipped(), bad.len());
        assert!(set.contains_kid("good"));
    }

    #[test]
    fn ec_points_must_be_on_the_curve() {
        const P256_P: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
        const P384_P: &str = concat!(
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "fffffffeffffffff0000000000000000ffffffff"
        );
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        for (key, p) in [
            (TestKey::es256(3).public_jwk(), hex(P256_P)),
            (TestKey::es384(3).public_jwk(), hex(P384_P)),
        ] {
            assert!(one(key.clone()).is_ok());
            let len = p.len();
            assert!(len == 32 || len == 48);
            let with = |x: &[u8], y: &[u8]| {
                let mut k = key.clone();
                k["x"] = json!(b64url(x));
                k["y"] = json!(b64url(y));
                k
            };
            let y = URL_SAFE_NO_PAD.decode(key["y"].as_str().unwrap()).unwrap();
            let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
            let mut x_flipped = x.clone();
            x_flipped[len - 1] ^= 1;
            let mut y_flipped = y.clone();
            y_flipped[0] ^= 0x80;
            for bad in [
                // The identity has no affine coordinates; (0, 0) is not on these curves.
                with(&vec![0; len], &vec![0; len]),
                // Coordinates must be below the field modulus.
                with(&p, &y),
                with(&x, &p),
                with(&vec![0xff; len], &vec![0xff; len]),
                with(&x_flipped, &y),
                with(&x, &y_flipped),
            ] {
                assert_eq!(one(bad).unwrap_err(), JwksError::NoUsableKeys);
            }
        }
    }

    #[test]
    fn optional_members_that_fit_are_accepted() {
        let mut k = TestKey::es256(1).public_jwk();
        k.as_object_mut().unwrap().remove("use");
        k.as_object_mut().unwrap().remove("alg");
        assert_eq!(one(k.clone()).unwrap().len(), 1);
        k["key_ops"] = json!(["verify", "sign"]);
        // Private parts are ignored, not an error.
        k["d"] = json!(b64url(&[1u8; 32]));
        assert_eq!(one(k).unwrap().keys()[0].alg(), Alg::Es256);
    }

    fn rsa_jwk(n: &[u8], e: &[u8]) -> Value {
        json!({"kty": "RSA", "n": b64url(n), "e": b64url(e)})
    }

    #[test]
    fn rsa_key_limits() {
        let good = TestKey::rs256().public_jwk();
        let n = URL_SAFE_NO_PAD.decode(good["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert!(one(rsa_jwk(&n, &[1, 0, 1])).is_ok());
        // A leading zero octet is tolerated (some libraries emit one).
        let mut n0 = vec![0u8];
        n0.extend_from_slice(&n);
        assert!(one(rsa_jwk(&n0, &[1, 0, 1])).is_ok());
        assert!(one(rsa_jwk(&n, &[0, 1, 0, 1])).is_ok());
        for e in [
            &[1u8][..],
            &[0],
            &[],
            &[1, 0, 0],
            &[2],
            &[3],
            &[1, 0, 0, 0, 1],
            &[1, 0, 3],
        ] {
            assert_eq!(
                one(rsa_jwk(&n, e)).unwrap_err(),
                JwksError::NoUsableKeys,
                "{e:?}"
            );
        }
        // 2047 bits: too small.
        let mut small = n[1..].to_vec();
        small.insert(0, 0x7f);
        small[255] |= 1;
        assert_eq!(small.len(), 256);
        assert!(one(rsa_jwk(&small, &[1, 0, 1])).is_err());
        // Even modulus.
        let mut even = n.clone();
        even[255] &= 0xfe;
        assert!(one(rsa_jwk(&even, &[1, 0, 1])).is_err());
        // 4096 bits accepted, 4104 refused (odd values; these need not be real moduli to parse).
        let mut big = vec![0xffu8; 512];
        assert!(one(rsa_jwk(&big, &[1, 0, 1])).is_ok());
        big.push(0xff);
        assert!(one(rsa_jwk(&big, &[1, 0, 1])).is_err());
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("e");
        assert!(one(missing).is_err());
    }

    /// 65537^k, big-endian.
    fn power_of_65537(k: u32) -> Vec<u8> {
        let mut n = vec![1u8];
        for _ in 0..k {
            let mut carry = 0u64;
            for byte in n.iter_mut().rev() {
                let v = u64::from(*byte) * 65537 + carry;
                *byte = v as u8;
                carry = v >> 8;
            }
            while carry > 0 {
                n.insert(0, carry as u8);
                carry >>= 8;
            }
        }
        n
    }

    #[test]
    fn roca_fingerprint() {
        // A power of 65537 is, modulo every prime, in the subgroup 65537 generates.
        let fake = power_of_65537(87);
        assert_eq!(bit_len(&fake), 1393);
        assert!(roca::is_vulnerable(&fake));
        // Leading zero octets do not change the residues.
        assert!(roca::is_vulnerable(&[&[0u8, 0][..], &fake].concat()));
        let real = URL_SAFE_NO_PAD
            .decode(TestKey::rs256().public_jwk()["n"].as_str().unwrap())
            .unwrap();
        assert!(!roca::is_vulnerable(&real));
        assert!(!roca::is_vulnerable(&[2]));
        // The JWK parser refuses a fingerprinted modulus of an accepted size (and odd, as
        // every power of 65537 is), which nothing but the ROCA check rejects.
        let roca_n = power_of_65537(157);
        assert_eq!(bit_len(&roca_n), 2513);
        assert!(roca::is_vulnerable(&roca_n));
        assert_eq!(
            one(rsa_jwk(&roca_n, &[1, 0, 1])).unwrap_err(),
            JwksError::NoUsableKeys
        );
        // One more bit of difference and it is a usable key again.
        let mut not_roca = roca_n.clone();
        *not_roca.last_mut().unwrap() ^= 2;
        assert!(!roca::is_vulnerable(&not_roca));
        assert!(one(rsa_jwk(&not_roca, &[1, 0, 1])).is_ok());
    }

    #[test]
    fn big_endian_helpers() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(trim_zeros(&[0, 0, 0x7f, 0])), 15);
        assert_eq!(trim_zeros(&[0, 0]), &[] as &[u8]);
        assert_eq!(trim_zeros(&[]), &[] as &[u8]);
    }

    #[test]
    fn duplicate_kids_are_refused() {
        let a = TestKey::es256(1).with_kid("k");
        let b = TestKey::es256(2).with_kid("k");
        assert_eq!(
            parse(&jwks(&[&a, &b])).unwrap_err(),
            JwksError::DuplicateKid
        );
        // A skipped key does not collide.
        let mut doc = jwks(&[&a]);
        doc["keys"]
            .as_array_mut()
            .unwrap()
            .push(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "k"}));
        assert_eq!(parse(&doc).unwrap().len(), 1);
        // Keys without kid are no duplicates of each other.
        let set = parse(&jwks(&[&TestKey::es256(1), &TestKey::es256(2)])).unwrap();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn debug_does_not_dump_key_material() {
        let key = TestKey::rs256().with_kid("kid-1");
        let set = parse(&jwks(&[&key])).unwrap();
        let debug = format!("{set:?}");
        assert!(debug.contains("kid-1"), "{debug}");
        assert!(debug.contains("RS256"), "{debug}");
        assert!(debug.len() < 200, "{debug}");
        let n = key.public_jwk()["n"].as_str().unwrap().to_owned();
        assert!(!debug.contains(&n[..16]));
    }
}
