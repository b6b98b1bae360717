//! Compact JWS verification for session tokens: header policy, key selection, signature.
//!
//! The signature layer (`verify_signature`) knows nothing of JWT claims, so the Wycheproof JWS
//! vectors can drive it directly; `verify` adds `claims::check`.
//!
//! Policy (RFC 8725): the key, not the header, decides the algorithm; only ES256, ES384 and
//! RS256 exist here; `jku`, `jwk`, `x5u`, `x5c`, `x5t` are never used to find a key; any `crit`
//! is refused, since this core implements no JWS extension.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::claims::{self, ClaimRules, Claims, ClaimsError};
use crate::json::json_object;
use crate::jwks::{Jwk, KeySet};
use crate::signature::Alg;

/// Tokens longer than this are rejected before any parsing (Wacht's are ~600 bytes).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// What the signature layer vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub alg: Alg,
    /// The `kid` of the key that verified the signature (the set's, which equals the header's
    /// when the header has one).
    pub kid: Option<String>,
    /// The decoded payload; not yet checked as claims.
    pub payload: Vec<u8>,
}

#[derive(thiserror::Error, Debug, PartialEq, Eq, Clone)]
pub enum TokenError {
    #[error("token larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token algorithm not accepted")]
    UnsupportedAlgorithm,
    #[error("token has a crit header")]
    CriticalHeader,
    #[error("token kid not in the key set")]
    UnknownKid,
    #[error("no key of the token's algorithm in the key set")]
    NoMatchingKey,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token claims rejected: {0}")]
    Claims(#[from] ClaimsError),
}

impl TokenError {
    /// The adapter refetches the JWKS (rate-limited) on this one: the keys may have rotated.
    pub fn is_unknown_kid(&self) -> bool {
        matches!(self, TokenError::UnknownKid)
    }
}

/// A compact JWS that passed every check that needs no key: size, segments, strict base64url,
/// header policy (`alg` allowed, no `crit`).
pub struct Parsed<'a> {
    alg: Alg,
    kid: Option<String>,
    signing_input: &'a [u8],
    payload: Vec<u8>,
    signature: Vec<u8>,
}

/// The keyless checks. Callers run this before fetching any keys, so a garbled or `alg: none`
/// token costs no JWKS request.
pub fn parse(token: &str) -> Result<Parsed<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let (header_b64, payload_b64, signature_b64) = split(token)?;
    // Every segment is decoded before the key lookup, so a garbled token never reads as an
    // unknown kid (which would trigger a JWKS refetch).
    let header = decode(header_b64).ok_or(TokenError::Malformed("header encoding"))?;
    let payload = decode(payload_b64).ok_or(TokenError::Malformed("payload encoding"))?;
    let signature = decode(signature_b64).ok_or(TokenError::Malformed("signature encoding"))?;
    let header = Header::parse(&header)?;
    let alg = Alg::from_name(&header.alg).ok_or(TokenError::UnsupportedAlgorithm)?;
    if header.crit {
        return Err(TokenError::CriticalHeader);
    }
    // The signing input is the token up to the second dot, as sent (RFC 7515 §5.2).
    let input_len = header_b64.len() + 1 + payload_b64.len();
    let signing_input = token
        .as_bytes()
        .get(..input_len)
        .ok_or(TokenError::Malformed("segments"))?;
    Ok(Parsed {
        alg,
        kid: header.kid,
        signing_input,
        payload,
        signature,
    })
}

/// Verifies a compact JWS against `keys` and returns its payload, unchecked.
pub fn verify_signature(token: &str, keys: &KeySet) -> Result<Verified, TokenError> {
    parse(token)?.check_signature(keys)
}

impl Parsed<'_> {
    fn key<'k>(&self, keys: &'k KeySet) -> Result<&'k Jwk, TokenError> {
        select_and_verify(
            self.alg,
            self.kid.as_deref(),
            self.signing_input,
            &self.signature,
            keys,
        )
    }

    /// `verify_signature` on an already parsed token.
    pub fn check_signature(self, keys: &KeySet) -> Result<Verified, TokenError> {
        let kid = self.key(keys)?.kid.clone();
        Ok(Verified {
            alg: self.alg,
            kid,
            payload: self.payload,
        })
    }

    /// The signature against `keys`, then the claims rules; also the `kid` of the key that
    /// verified it. Borrows, so a caller can try again with a refetched key set.
    pub fn verify(
        &self,
        keys: &KeySet,
        rules: &ClaimRules,
    ) -> Result<(Claims, Option<String>), TokenError> {
        let kid = self.key(keys)?.kid.clone();
        Ok((claims::check(&self.payload, rules)?, kid))
    }
}

fn select_and_verify<'k>(
    alg: Alg,
    kid: Option<&str>,
    signing_input: &[u8],
    signature: &[u8],
    keys: &'k KeySet,
) -> Result<&'k Jwk, TokenError> {
    let key = match kid {
        Some(kid) => {
            // A kid selects that key only: no fallback to the other keys.
            let key = keys.find_kid(kid).ok_or(TokenError::UnknownKid)?;
            if key.alg() != alg {
                return Err(TokenError::NoMatchingKey);
            }
            verify_raw(key, signing_input, signature)?;
            key
        }
        None => {
            // Wacht sends no kid: try each key of the header's algorithm (at most MAX_KEYS).
            let mut candidates = keys.keys().iter().filter(|k| k.alg() == alg).peekable();
            if candidates.peek().is_none() {
                return Err(TokenError::NoMatchingKey);
            }
            candidates
                .find(|key| verify_raw(key, signing_input, signature).is_ok())
                .ok_or(TokenError::BadSignature)?
        }
    };
    Ok(key)
}

/// `verify_signature`, then the claims rules.
pub fn verify(token: &str, keys: &KeySet, rules: &ClaimRules) -> Result<Claims, TokenError> {
    Ok(parse(token)?.verify(keys, rules)?.0)
}

/// The raw signature check, with the key's own algorithm. ECDSA signatures are r‖s (P1363):
/// exactly 64 bytes for ES256, 96 for ES384; high-S is accepted, as JWS and Wycheproof expect.
/// RS256 is RSASSA-PKCS1-v1_5 with SHA-256, the signature exactly as long as the modulus.
pub fn verify_raw(key: &Jwk, signing_input: &[u8], signature: &[u8]) -> Result<(), TokenError> {
    if key.verify(signing_input, signature) {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

/// Exactly three segments.
fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => Err(TokenError::Malformed("segments")),
    }
}

/// Strict base64url: no padding, no `+`/`/`, no whitespace, no non-zero trailing bits.
fn decode(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment).ok()
}

/// The members of the protected header this core reads; all others are ignored.
struct Header {
    alg: String,
    kid: Option<String>,
    crit: bool,
}

impl Header {
    fn parse(json: &[u8]) -> Result<Header, TokenError> {
        let header =
            json_object(json).map_err(|_| TokenError::Malformed("header is not a JSON object"))?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.clone(),
            _ => return Err(TokenError::Malformed("alg")),
        };
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(TokenError::Malformed("kid")),
        };
        // Any `crit` is refused: a valid one names extensions we do not implement, and an
        // empty, `null` or non-array one is invalid (RFC 7515 §4.1.11).
        let crit = header.contains_key("crit");
        Ok(Header { alg, kid, crit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::Portable;
    use serde_json::json;
    use wacht_standin::tokens::{TestKey, b64url, hs256, jwks, session_claims};

    const ISS: &str = "https://frontend.example.com";
    const NOW: u64 = 1_800_000_000;

    fn set(keys: &[&TestKey]) -> KeySet {
        KeySet::parse(&serde_json::to_vec(&jwks(keys)).unwrap(), &Portable).unwrap()
    }

    fn claims() -> Value {
        session_claims(ISS, NOW)
    }

    /// header.payload signed by `key` with an arbitrary header.
    fn signed(key: &TestKey, header: Value, payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            b64url(&serde_json::to_vec(&header).unwrap()),
            b64url(payload)
        );
        let sig = key.sign_input(input.as_bytes());
        format!("{input}.{}", b64url(&sig))
    }

    fn parts(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn valid_tokens_of_each_algorithm_verify() {
        for key in [TestKey::es256(1), TestKey::es384(1), TestKey::rs256()] {
            let keys = set(&[&key.clone().with_kid("k")]);
            for key in [key.clone(), key.clone().with_kid("k")] {
                let token = key.token(&claims());
                let v = verify_signature(&token, &keys).unwrap();
                assert_eq!(v.alg.name(), key.alg());
                assert_eq!(v.kid.as_deref(), Some("k"));
                assert_eq!(
                    serde_json::from_slice::<Value>(&v.payload).unwrap(),
                    claims()
                );
                let c = verify(&token, &keys, &ClaimRules::new(ISS, NOW, 5)).unwrap();
                assert_eq!(c.subject, "1234567890");
            }
        }
    }

    #[test]
    fn header_alg_cannot_override_the_key_type() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let payload = serde_json::to_vec(&claims()).unwrap();
        for (alg, want) in [
            ("ES384", TokenError::NoMatchingKey),
            ("RS256", TokenError::NoMatchingKey),
            ("HS256", TokenError::UnsupportedAlgorithm),
            ("none", TokenError::UnsupportedAlgorithm),
            ("None", TokenError::UnsupportedAlgorithm),
            ("NONE", TokenError::UnsupportedAlgorithm),
            ("es256", TokenError::UnsupportedAlgorithm),
            ("PS256", TokenError::UnsupportedAlgorithm),
            ("RS384", TokenError::UnsupportedAlgorithm),
            ("ES512", TokenError::UnsupportedAlgorithm),
            ("EdDSA", TokenError::UnsupportedAlgorithm),
            ("", TokenError::UnsupportedAlgorithm),
        ] {
            let token = signed(&key, json!({"alg": alg, "typ": "JWT"}), &payload);
            assert_eq!(verify_signature(&token, &keys), Err(want), "{alg}");
        }
        // With an ES384 key in the set, an ES256 signature relabelled ES384 still fails.
        let keys = set(&[&key, &TestKey::es384(1)]);
        let token = signed(&key, json!({"alg": "ES384"}), &payload);
        assert_eq!(
            verify_signature(&token, &keys),
            Err(TokenError::BadSignature)
        );
        // alg none with an empty signature.
        let p = parts(&key.token(&claims()));
        let none = format!("{}.{}.", b64url(br#"{"alg":"none"}"#), p[1]);
        assert_eq!(
            verify_signature(&none, &keys),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn hmac_keyed_with_public_key_bytes_is_rejected() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let jwk = key.public_jwk();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        let y = URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap();
        let sec1 = [&[4u8][..], &x, &y].concat();
        let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = b64url(&serde_json::to_vec(&claims()).unwrap());
        let input = format!("{header}.{payload}");
        for secret in [serde_json::to_vec(&jwk).unwrap(), sec1, x] {
            let token = format!("{input}.{}", b64url(&hs256(&secret, input.as_bytes())));
            assert_eq!(
                verify_signature(&token, &keys),
                Err(TokenError::UnsupportedAlgorithm)
            );
        }
    }

    fn with_signature(token: &str, sig: &[u8]) -> String {
        let p = parts(token);
        format!("{}.{}.{}", p[0], p[1], b64url(sig))
    }

    #[test]
    fn degenerate_and_misshapen_ecdsa_signatures_are_rejected() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let token = key.token(&claims());
        let good = URL_SAFE_NO_PAD.decode(&parts(&token)[2]).unwrap();
        // The P-256 group order n.
        let n = hex32("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
        let one = {
            let mut b = [0u8; 32];
            b[31] = 1;
            b
        };
        let zero = [0u8; 32];
        let cases: Vec<Vec<u8>> = vec![
            [zero, zero].concat(),
            [zero, one].concat(),
            [one, zero].concat(),
            [n, one].concat(),
            [one, n].concat(),
            [&good[..32], &n[..]].concat(),
            [[0xff; 32], [0xff; 32]].concat(),
            good[..63].to_vec(),
            [&good[..], &[0]].concat(),
            [&[0u8][..], &good[..]].concat(),
            vec![],
        ];
        for sig in cases {
            assert_eq!(
                verify_signature(&with_signature(&token, &sig), &keys),
                Err(TokenError::BadSignature),
                "{sig:?}"
            );
        }
        assert!(verify_signature(&with_signature(&token, &good), &keys).is_ok());
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn both_s_values_of_a_signature_verify() {
        // ECDSA (r, s) and (r, n - s) are both valid; JWS does not mandate low-S and Wycheproof
        // marks the malleated form "valid", so it is not normalised or refused here.
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let token = key.token(&claims());
        let sig =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(&parts(&token)[2]).unwrap())
                .unwrap();
        let (r, s) = sig.split_scalars();
        let other = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
        assert_ne!(other.to_bytes(), sig.to_bytes());
        assert!(verify_signature(&with_signature(&token, &other.to_bytes()), &keys).is_ok());
    }

    #[test]
    fn tokens_from_keys_outside_the_set_are_rejected() {
        let legit = TestKey::es256(1).with_kid("legit");
        let keys = set(&[&legit]);
        let rogue = TestKey::es256(99);
        assert_eq!(
            verify_signature(&rogue.token(&claims()), &keys),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_signature(&rogue.clone().with_kid("legit").token(&claims()), &keys),
            Err(TokenError::BadSignature)
        );
        let rogue_rsa = TestKey::rs256();
        assert_eq!(
            verify_signature(&rogue_rsa.token(&claims()), &keys),
            Err(TokenError::NoMatchingKey)
        );
    }

    #[test]
    fn embedded_keys_and_key_urls_are_ignored() {
        let legit = TestKey::es256(1).with_kid("legit");
        let keys = set(&[&legit]);
        let attacker = TestKey::es256(66).with_kid("legit");
        let payload = serde_json::to_vec(&claims()).unwrap();
        let embedded = attacker.public_jwk();
        for header in [
            json!({"alg": "ES256", "jwk": embedded}),
            json!({"alg": "ES256", "kid": "legit", "jwk": embedded}),
            json!({"alg": "ES256", "jku": "https://attacker.example/jwks.json"}),
            json!({"alg": "ES256", "x5u": "https://attacker.example/cert.pem"}),
            json!({"alg": "ES256", "x5c": ["MIIB"], "x5t": "abc"}),
        ] {
            let token = signed(&attacker, header.clone(), &payload);
            assert_eq!(
                verify_signature(&token, &keys),
                Err(TokenError::BadSignature),
                "{header}"
            );
        }
        // The same headers on a legitimately signed token are just ignored.
        let token = signed(
            &legit,
            json!({"alg": "ES256", "kid": "legit", "jwk": embedded, "jku": "https://attacker.example/"}),
            &payload,
        );
        assert!(verify_signature(&token, &keys).is_ok());
    }

    #[test]
    fn kid_selection() {
        let a = TestKey::es256(1).with_kid("a");
        let b = TestKey::es256(2).with_kid("b");
        let keys = set(&[&a, &b]);
        let unknown = TestKey::es256(3).with_kid("c").token(&claims());
        let err = verify_signature(&unknown, &keys).unwrap_err();
        assert_eq!(err, TokenError::UnknownKid);
        assert!(err.is_unknown_kid());
        assert!(!TokenError::BadSignature.is_unknown_kid());
        // A kid selects its key only: a's signature under b's kid is not retried with a.
        let mislabelled = signed(
            &a,
            json!({"alg": "ES256", "kid": "b"}),
            &serde_json::to_vec(&claims()).unwrap(),
        );
        assert_eq!(
            verify_signature(&mislabelled, &keys),
            Err(TokenError::BadSignature)
        );
        // A kid naming a key of another type.
        let r = TestKey::rs256().with_kid("r");
        let keys = set(&[&a, &r]);
        let token = signed(
            &a,
            json!({"alg": "ES256", "kid": "r"}),
            &serde_json::to_vec(&claims()).unwrap(),
        );
        assert_eq!(
            verify_signature(&token, &keys),
            Err(TokenError::NoMatchingKey)
        );
    }

    #[test]
    fn without_kid_the_right_key_of_the_type_is_found() {
        let a = TestKey::es256(1).with_kid("a");
        let b = TestKey::es256(2).with_kid("b");
        let r = TestKey::rs256().with_kid("r");
        let keys = set(&[&r, &a, &b]);
        let no_kid = TestKey::es256(2).token(&claims());
        assert_eq!(
            verify_signature(&no_kid, &keys).unwrap().kid.as_deref(),
            Some("b")
        );
        let no_kid = TestKey::es256(1).token(&claims());
        assert_eq!(
            verify_signature(&no_kid, &keys).unwrap().kid.as_deref(),
            Some("a")
        );
        let no_kid = TestKey::rs256().token(&claims());
        assert_eq!(
            verify_signature(&no_kid, &keys).unwrap().kid.as_deref(),
            Some("r")
        );
        let es384 = TestKey::es384(1).token(&claims());
        assert_eq!(
            verify_signature(&es384, &keys),
            Err(TokenError::NoMatchingKey)
        );
    }

    #[test]
    fn segments_cannot_be_swapped_or_transplanted() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let t1 = parts(&key.token(&claims()));
        let mut other = claims();
        other["sub"] = json!("999");
        let t2 = parts(&key.token(&other));
        let cases = [
            format!("{}.{}.{}", t1[0], t2[1], t1[2]),
            format!("{}.{}.{}", t1[0], t1[1], t2[2]),
            format!("{}.{}.{}", t1[1], t1[0], t1[2]),
            format!("{}.{}.{}", t1[0], t1[0], t1[2]),
            format!("{}.{}.{}", t1[0], "", t1[2]),
        ];
        for token in &cases {
            assert!(verify_signature(token, &keys).is_err(), "{token}");
        }
        assert_eq!(
            verify_signature(&cases[0], &keys),
            Err(TokenError::BadSignature)
        );
        // The claims, read as a header, have no alg.
        assert_eq!(
            verify_signature(&cases[2], &keys),
            Err(TokenError::Malformed("alg"))
        );
    }

    #[test]
    fn malformed_tokens() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let token = key.token(&claims());
        let p = parts(&token);
        let m = |t: &str| verify_signature(t, &keys);
        let seg = TokenError::Malformed("segments");
        assert_eq!(m(""), Err(seg.clone()));
        assert_eq!(m(&format!("{}.{}", p[0], p[1])), Err(seg.clone()));
        assert_eq!(m(&format!("{token}.")), Err(seg.clone()));
        assert_eq!(m(&format!("{token}.{}", p[2])), Err(seg.clone()));
        assert_eq!(m(&p[0]), Err(seg));
        let header = TokenError::Malformed("header encoding");
        let sig = TokenError::Malformed("signature encoding");
        let payload = TokenError::Malformed("payload encoding");
        assert_eq!(
            m(&format!("{}=.{}.{}", p[0], p[1], p[2])),
            Err(header.clone())
        );
        assert_eq!(
            m(&format!("{}.{}.{}==", p[0], p[1], p[2])),
            Err(sig.clone())
        );
        assert_eq!(m(&format!("{}.{}.{} ", p[0], p[1], p[2])), Err(sig.clone()));
        assert_eq!(
            m(&format!(" {}.{}.{}", p[0], p[1], p[2])),
            Err(header.clone())
        );
        assert_eq!(
            m(&format!("{}.{}\n.{}", p[0], p[1], p[2])),
            Err(payload.clone())
        );
        assert_eq!(m(&format!("{}.{}.ab+/", p[0], p[1])), Err(sig.clone()));
        assert_eq!(m(&format!("{}.{}*.{}", p[0], p[1], p[2])), Err(payload));
        // "QR" decodes only with non-zero trailing bits ("QQ" is the canonical form of "A").
        assert_eq!(m(&format!("{}.{}.QR", p[0], p[1])), Err(sig));

        let json_header = |h: &[u8]| format!("{}.{}.{}", b64url(h), p[1], p[2]);
        let not_object = TokenError::Malformed("header is not a JSON object");
        for h in [
            &b"not json"[..],
            b"",
            b"[\"ES256\"]",
            b"\"ES256\"",
            b"null",
            b"{\"alg\":\"ES256\"} x",
            b"{\"alg\":\"ES256\",\"alg\":\"ES256\"}",
            b"\xef\xbb\xbf{\"alg\":\"ES256\"}",
        ] {
            assert_eq!(m(&json_header(h)), Err(not_object.clone()), "{h:?}");
        }
        for h in [
            json!({}),
            json!({"alg": null}),
            json!({"alg": 256}),
            json!({"alg": ["ES256"]}),
            json!({"ALG": "ES256"}),
        ] {
            assert_eq!(
                m(&json_header(&serde_json::to_vec(&h).unwrap())),
                Err(TokenError::Malformed("alg")),
                "{h}"
            );
        }
        for kid in [json!(1), json!(null), json!(["a"])] {
            let h = serde_json::to_vec(&json!({"alg": "ES256", "kid": kid})).unwrap();
            assert_eq!(m(&json_header(&h)), Err(TokenError::Malformed("kid")));
        }
    }

    #[test]
    fn oversized_tokens_are_rejected_before_parsing() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        assert_eq!(
            verify_signature(&"x".repeat(MAX_TOKEN_BYTES + 1), &keys),
            Err(TokenError::TooLarge)
        );
        assert_eq!(
            verify_signature(&"x".repeat(MAX_TOKEN_BYTES), &keys),
            Err(TokenError::Malformed("segments"))
        );
        // The largest valid token within the limit passes, one byte more does not. Lengths are
        // computed, not signed, to find it: an ECDSA signature is always 86 characters.
        let padded = |extra: usize| {
            let mut c = claims();
            c["metadata"] = json!("a".repeat(extra));
            c
        };
        let header_len = parts(&key.token(&claims()))[0].len();
        let len = |extra: usize| {
            let n = serde_json::to_vec(&padded(extra)).unwrap().len();
            header_len + 1 + (4 * n).div_ceil(3) + 1 + 86
        };
        let extra = (0..MAX_TOKEN_BYTES)
            .take_while(|&e| len(e) <= MAX_TOKEN_BYTES)
            .last()
            .unwrap();
        let fits = key.token(&padded(extra));
        assert!(fits.len() <= MAX_TOKEN_BYTES && fits.len() >= MAX_TOKEN_BYTES - 1);
        assert!(verify_signature(&fits, &keys).is_ok());
        let over = key.token(&padded(extra + 1));
        assert!(over.len() > MAX_TOKEN_BYTES);
        assert_eq!(verify_signature(&over, &keys), Err(TokenError::TooLarge));
    }

    #[test]
    fn crit_is_refused_in_any_form() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let payload = serde_json::to_vec(&claims()).unwrap();
        for crit in [
            json!(["exp"]),
            json!(["b64"]),
            json!([]),
            json!(null),
            json!("x"),
        ] {
            let token = signed(
                &key,
                json!({"alg": "ES256", "crit": crit, "b64": true}),
                &payload,
            );
            assert_eq!(
                verify_signature(&token, &keys),
                Err(TokenError::CriticalHeader),
                "{crit}"
            );
        }
        let token = signed(&key, json!({"alg": "ES256", "b64": true}), &payload);
        assert!(verify_signature(&token, &keys).is_ok());
    }

    #[test]
    fn rsa_signature_length_must_equal_the_modulus() {
        let key = TestKey::rs256();
        let keys = set(&[&key]);
        let token = key.token(&claims());
        let sig = URL_SAFE_NO_PAD.decode(&parts(&token)[2]).unwrap();
        assert_eq!(sig.len(), 256);
        let padded = [&[0u8][..], &sig].concat();
        assert_eq!(
            verify_signature(&with_signature(&token, &padded), &keys),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_signature(&with_signature(&token, &sig[1..]), &keys),
            Err(TokenError::BadSignature)
        );
        assert!(verify_signature(&with_signature(&token, &sig), &keys).is_ok());
    }

    #[test]
    fn verify_raw_is_the_signature_check() {
        let key = TestKey::es384(5);
        let keys = set(&[&key]);
        let jwk = &keys.keys()[0];
        let sig = key.sign_input(b"hello");
        assert_eq!(sig.len(), 96);
        assert_eq!(verify_raw(jwk, b"hello", &sig), Ok(()));
        assert_eq!(
            verify_raw(jwk, b"hellO", &sig),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn verify_applies_the_claims_rules() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let token = key.token(&claims());
        assert_eq!(
            verify(&token, &keys, &ClaimRules::new(ISS, NOW + 100, 5)),
            Err(TokenError::Claims(ClaimsError::Expired))
        );
        assert_eq!(
            verify(
                &token,
                &keys,
                &ClaimRules::new("https://other.example", NOW, 5)
            ),
            Err(TokenError::Claims(ClaimsError::BadIssuer))
        );
        // Signature problems come first.
        let rogue = TestKey::es256(2).token(&claims());
        assert_eq!(
            verify(&rogue, &keys, &ClaimRules::new(ISS, NOW, 5)),
            Err(TokenError::BadSignature)
        );
        let payload_not_json = signed(&key, json!({"alg": "ES256"}), b"foo");
        assert!(verify_signature(&payload_not_json, &keys).is_ok());
        assert_eq!(
            verify(&payload_not_json, &keys, &ClaimRules::new(ISS, NOW, 5)),
            Err(TokenError::Claims(ClaimsError::NotJson))
        );
    }

    #[test]
    fn error_messages_do_not_echo_the_token() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let token = key.clone().with_kid("secret-kid").token(&claims());
        let p = parts(&token);
        let bad = [
            format!("{}.{}.AAAA", p[0], p[1]),
            format!("{}.{}", p[0], p[1]),
            "x".repeat(MAX_TOKEN_BYTES + 1),
            token.clone(),
        ];
        for t in &bad {
            let msg = verify(t, &keys, &ClaimRules::new(ISS, NOW, 5))
                .unwrap_err()
                .to_string();
            assert!(!msg.contains("eyJ") && !msg.contains("secret-kid"), "{msg}");
            assert!(!msg.contains(&p[2][..10]), "{msg}");
        }
    }

    /// Headers that open an object but are no valid JSON: still session tokens (refused here
    /// with a precise error), never a value for the gateway.
    fn broken_headers() -> Vec<Vec<u8>> {
        vec![
            br#"{"alg":"ES256","kid":"\ud800"}"#.to_vec(),
            format!(
                r#"{{"alg":"ES256","x":{}1{}}}"#,
                "[".repeat(200),
                "]".repeat(200)
            )
            .into_bytes(),
            br#"{"alg":"ES256","alg":"none"}"#.to_vec(),
            br#"{"alg":"ES256""#.to_vec(),
            b" \n{".to_vec(),
        ]
    }

    #[test]
    fn dotted_values_with_broken_headers_are_session_tokens_refused_here() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let p = parts(&key.token(&claims()));
        for header in broken_headers() {
            let token = format!("{}.{}.{}", b64url(&header), p[1], p[2]);
            assert!(matches!(
                crate::credentials::extract(Some(&format!("Bearer {token}")), None),
                Ok(crate::credentials::Credential::Session(_))
            ));
            assert_eq!(
                verify_signature(&token, &keys),
                Err(TokenError::Malformed("header is not a JSON object")),
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_member_named_twice_is_refused_in_header_and_claims() {
        let key = TestKey::es256(1);
        let keys = set(&[&key]);
        let rules = ClaimRules::new(ISS, NOW, 5);
        let dup_kid = br#"{"alg":"ES256","kid":"a","kid":"b"}"#;
        let token = format!("{}.{}.AAAA", b64url(dup_kid), b64url(b"{}"));
        assert_eq!(
            verify_signature(&token, &keys),
            Err(TokenError::Malformed("header is not a JSON object"))
        );
        // A later `exp` or `sub` must not replace the first: the whole claim set is refused.
        let good = serde_json::to_string(&claims()).unwrap();
        for dup in [
            format!(r#"{},"exp":{}}}"#, good.trim_end_matches('}'), NOW + 99_999),
            format!(r#"{},"sub":"0"}}"#, good.trim_end_matches('}')),
            format!(r#"{},"iss":"{ISS}"}}"#, good.trim_end_matches('}')),
        ] {
            let token = signed(&key, json!({"alg": "ES256"}), dup.as_bytes());
            assert!(verify_signature(&token, &keys).is_ok());
            assert_eq!(
                verify(&token, &keys, &rules),
                Err(TokenError::Claims(ClaimsError::NotJson)),
                "{dup}"
            );
        }
        // Repeated names inside a nested object are serde_json's to read (last wins); only the
        // top level decides which exp, iss and sub count.
        let nested = good.replacen(
            r#""permissions":{"#,
            r#""permissions":{"organization":[],"#,
            1,
        );
        let token = signed(&key, json!({"alg": "ES256"}), nested.as_bytes());
        assert!(verify(&token, &keys, &rules).is_ok(), "{nested}");
    }
}

#[cfg(test)]
#[path = "jwt_proptests.rs"]
mod proptests;
