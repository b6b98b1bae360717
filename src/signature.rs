//! The signature primitive: whoever has native crypto verifies.
//!
//! The policy (which key, which algorithm, which lengths) stays in `jwks` and `jwt`; this is only
//! "does this signature verify under this key". A host with native crypto provides it through
//! the `wacht:admin/verifier` import (`wit/verifier.wit`: ring in the native host, WebCrypto on
//! Workers); elsewhere the component carries `portable`, built on jwt-simple.
//! Each key is imported once, when its JWKS is parsed, and verifies many tokens.

use std::rc::Rc;

#[cfg(feature = "portable-verifier")]
mod portable;
#[cfg(feature = "portable-verifier")]
pub use portable::Portable;

/// A signature algorithm this core verifies; decided by the key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Es256,
    Es384,
    Rs256,
}

impl Alg {
    /// The JWS `alg` name.
    pub fn name(&self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Rs256 => "RS256",
        }
    }

    /// Exact, case-sensitive match of a JWS `alg` name (RFC 7515 §4.1.1): `none`, `es256`,
    /// HS*, PS* and the rest are `None`.
    pub fn from_name(name: &str) -> Option<Alg> {
        match name {
            "ES256" => Some(Alg::Es256),
            "ES384" => Some(Alg::Es384),
            "RS256" => Some(Alg::Rs256),
            _ => None,
        }
    }
}

/// A JWK's public parameters, big-endian, already through the key policy of `jwks`: the curve
/// fixes the coordinate sizes, and an RSA key is 2048 to 4096 bits with an odd exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicParams<'a> {
    /// P-256 (ES256) or P-384 (ES384): the affine coordinates.
    Ec { alg: Alg, x: &'a [u8], y: &'a [u8] },
    /// RS256: modulus and exponent, without leading zero octets.
    Rsa { n: &'a [u8], e: &'a [u8] },
}

impl PublicParams<'_> {
    pub fn alg(&self) -> Alg {
        match self {
            PublicParams::Ec { alg, .. } => *alg,
            PublicParams::Rsa { .. } => Alg::Rs256,
        }
    }
}

/// One imported key. ECDSA signatures arrive as r‖s (IEEE P1363, as JWS sends them), RSA ones
/// as long as the modulus: the caller has checked both lengths.
pub trait VerifyingKey {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool;
}

/// Imports keys; `None` when the provider refuses the parameters (a point not on the curve).
pub trait Verifier {
    fn import(&self, params: PublicParams<'_>) -> Option<Rc<dyn VerifyingKey>>;
}
