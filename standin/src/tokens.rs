//! TEST-ONLY token minting: signing keys, JWKS documents and compact JWS/JWT strings, for the
//! stand-in Wacht server and the tests. The keys here are public (derived from small seeds, or
//! the committed `keys/rs256-test-only.pem`): they must never sign anything real.

use std::fmt;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::Generate as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256, Sha384};

/// A 2048-bit RSA key generated once with `openssl genrsa`: RSA key generation in a debug build is
/// too slow for tests. TEST-ONLY (see `keys/README.md`).
const RS256_TEST_PEM: &str = include_str!("../keys/rs256-test-only.pem");

#[derive(Clone)]
enum Private {
    Es256(p256::ecdsa::SigningKey),
    Es384(p384::ecdsa::SigningKey),
    Rs256(Box<rsa::PrivateKey>),
}

/// A signing key with an optional `kid`.
#[derive(Clone)]
pub struct TestKey {
    kid: Option<String>,
    key: Private,
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("alg", &self.alg())
            .field("kid", &self.kid)
            .finish()
    }
}

impl TestKey {
    /// A deterministic P-256 key: the same seed gives the same key in every run.
    pub fn es256(seed: u8) -> TestKey {
        // Hash (label, seed, counter) until the digest is a valid scalar (the first one, in
        // practice: the chance of a miss is ~2^-32).
        let key = (0..=u8::MAX)
            .find_map(|counter| {
                let digest = Sha256::new()
                    .chain_update(b"wacht-standin ES256 test key")
                    .chain_update([seed, counter])
                    .finalize();
                p256::ecdsa::SigningKey::from_bytes(&digest).ok()
            })
            .expect("a valid P-256 scalar among 256 hashes");
        TestKey::from(Private::Es256(key))
    }

    /// A fresh random P-256 key (demo mode of the stand-in).
    pub fn es256_random() -> TestKey {
        TestKey::from(Private::Es256(p256::ecdsa::SigningKey::generate()))
    }

    /// A deterministic P-384 key.
    pub fn es384(seed: u8) -> TestKey {
        let key = (0..=u8::MAX)
            .find_map(|counter| {
                let digest = Sha384::new()
                    .chain_update(b"wacht-standin ES384 test key")
                    .chain_update([seed, counter])
                    .finalize();
                p384::ecdsa::SigningKey::from_bytes(&digest).ok()
            })
            .expect("a valid P-384 scalar among 256 hashes");
        TestKey::from(Private::Es384(key))
    }

    /// The committed 2048-bit TEST-ONLY RSA key (always the same one).
    pub fn rs256() -> TestKey {
        static KEY: OnceLock<rsa::PrivateKey> = OnceLock::new();
        let key = KEY.get_or_init(|| {
            rsa::PrivateKey::from_pkcs8_pem(RS256_TEST_PEM).expect("keys/rs256-test-only.pem")
        });
        TestKey::from(Private::Rs256(Box::new(key.clone())))
    }

    fn from(key: Private) -> TestKey {
        TestKey { kid: None, key }
    }

    pub fn with_kid(mut self, kid: &str) -> TestKey {
        self.kid = Some(kid.to_owned());
        self
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// "ES256" / "ES384" / "RS256".
    pub fn alg(&self) -> &'static str {
        match self.key {
            Private::Es256(_) => "ES256",
            Private::Es384(_) => "ES384",
            Private::Rs256(_) => "RS256",
        }
    }

    /// The public JWK, with `use: sig`, `alg`, and `kid` when set.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &self.key {
            Private::Es256(k) => {
                let point = k.verifying_key().to_sec1_point(false);
                ec_jwk(
                    "P-256",
                    point.x().map(|c| &c[..]),
                    point.y().map(|c| &c[..]),
                )
            }
            Private::Es384(k) => {
                let point = k.verifying_key().to_sec1_point(false);
                ec_jwk(
                    "P-384",
                    point.x().map(|c| &c[..]),
                    point.y().map(|c| &c[..]),
                )
            }
            Private::Rs256(k) => json!({
                "kty": "RSA",
                "n": b64url(&k.n_bytes()),
                "e": b64url(&k.e_bytes()),
            }),
        };
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(self.alg());
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    /// A compact JWS of `claims` under `header`, both serialised as given, signed by this key
    /// (whatever `header.alg` says: that is what attack tests need).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let signature = self.sign_input(input.as_bytes());
        format!("{input}.{}", b64url(&signature))
    }

    /// Raw signature bytes over `signing_input`: r‖s (P1363) for ECDSA, PKCS#1 v1.5 for RSA.
    pub fn sign_input(&self, signing_input: &[u8]) -> Vec<u8> {
        match &self.key {
            Private::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(signing_input);
                sig.to_bytes().to_vec()
            }
            Private::Es384(k) => {
                let sig: p384::ecdsa::Signature = k.sign(signing_input);
                sig.to_bytes().to_vec()
            }
            Private::Rs256(k) => k
                .sign(
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(signing_input),
                )
                .expect("RSA PKCS#1 v1.5 signing with a 2048-bit key"),
        }
    }

    /// A session token: header `{"alg": <alg>, "typ": "JWT"}` plus `kid` when set.
    pub fn token(&self, claims: &Value) -> String {
        let mut header = json!({"alg": self.alg(), "typ": "JWT"});
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        self.sign(&header, claims)
    }
}

fn ec_jwk(crv: &str, x: Option<&[u8]>, y: Option<&[u8]>) -> Value {
    json!({"kty": "EC", "crv": crv, "x": x.map(b64url), "y": y.map(b64url)})
}

/// `{"keys": [public JWKs]}`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Forgeries of `key`'s token for `claims`, each named: the payload upgraded (more permissions,
/// another subject) under the same signature, one signature bit flipped, and for EC keys the same
/// claims signed by another key of the same curve and `kid` (there is one committed RSA key).
pub fn forgeries(key: &TestKey, claims: &Value) -> Vec<(&'static str, String)> {
    let good = key.token(claims);
    let mut upgraded = claims.clone();
    upgraded["permissions"] = json!({"organization": ["deployment:read", "admin"]});
    upgraded["sub"] = json!("1");
    let mut forged = vec![
        ("tampered payload", with_payload(&good, &upgraded)),
        (
            "signature with a flipped bit",
            with_flipped_signature_bit(&good),
        ),
    ];
    let rogue = match key.alg() {
        "ES256" => Some(TestKey::es256(99)),
        "ES384" => Some(TestKey::es384(99)),
        _ => None,
    };
    if let Some(rogue) = rogue {
        let rogue = match key.kid() {
            Some(kid) => rogue.with_kid(kid),
            None => rogue,
        };
        forged.push(("foreign key", rogue.token(claims)));
    }
    forged
}

/// Forgery for tests: `token` with its payload replaced by `claims`, the signature kept.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let (header, _, signature) = (parts.next(), parts.next(), parts.next());
    format!(
        "{}.{}.{}",
        header.unwrap_or_default(),
        b64url(claims.to_string().as_bytes()),
        signature.unwrap_or_default()
    )
}

/// Forgery for tests: `token` with the lowest bit of its signature's 11th byte flipped.
pub fn with_flipped_signature_bit(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap_or((token, ""));
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
    if let Some(byte) = signature.get_mut(10) {
        *byte ^= 0x01;
    }
    format!("{input}.{}", b64url(&signature))
}

/// `base64url(header).base64url(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64url(&to_json(header)), b64url(&to_json(claims)))
}

fn to_json(v: &Value) -> Vec<u8> {
    // Serialising a Value cannot fail (its map keys are strings).
    serde_json::to_vec(v).unwrap_or_default()
}

/// HMAC-SHA256, for forging HS256 tokens (key-confusion tests).
pub fn hs256(key: &[u8], signing_input: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(signing_input);
    mac.finalize().into_bytes().to_vec()
}

/// Claims as the newest Wacht issuer sends them, issued at `now`, valid for 35 s.
pub fn session_claims(issuer: &str, now: u64) -> Value {
    json!({
        "iss": issuer,
        "sub": "1234567890",
        "sid": "sess_1234567890",
        "iat": now,
        "exp": now + 35,
        "organization": "42",
        "workspace": "7",
        "permissions": {"organization": ["deployment:read"], "workspace": []},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_keys_are_deterministic_and_distinct() {
        assert_eq!(
            TestKey::es256(1).public_jwk(),
            TestKey::es256(1).public_jwk()
        );
        assert_ne!(
            TestKey::es256(1).public_jwk(),
            TestKey::es256(2).public_jwk()
        );
        assert_eq!(
            TestKey::es384(1).public_jwk(),
            TestKey::es384(1).public_jwk()
        );
        assert_ne!(
            TestKey::es256_random().public_jwk(),
            TestKey::es256_random().public_jwk()
        );
    }

    #[test]
    fn jwks_and_tokens_have_the_expected_shape() {
        let key = TestKey::es256(1).with_kid("k1");
        let jwk = key.public_jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["x"].as_str().map(str::len), Some(43));
        let jwk = TestKey::es384(1).public_jwk();
        assert_eq!(jwk["x"].as_str().map(str::len), Some(64));
        assert!(jwk.get("kid").is_none());
        let jwk = TestKey::rs256().public_jwk();
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["n"].as_str().map(str::len), Some(342));
        assert_eq!(
            jwks(&[&key, &TestKey::rs256()])["keys"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );

        let token = key.token(&session_claims("https://f.example", 1));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}));
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 64);
        assert_eq!(TestKey::es384(1).sign_input(b"x").len(), 96);
        assert_eq!(TestKey::rs256().sign_input(b"x").len(), 256);
        assert_eq!(hs256(b"k", b"x").len(), 32);
    }
}
