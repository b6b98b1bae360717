//! Verification inside the component, for hosts without native crypto (`wasmtime serve`, Spin).
//!
//! jwt-simple builds and checks the keys (`from_bytes` refuses a point off the curve,
//! `from_components` an RSA key outside its size policy); each signature is then checked by the
//! primitive jwt-simple itself verifies with (RustCrypto's ECDSA, superboring's PKCS#1 v1.5), on
//! the raw signing input. Not `verify_token`: the policy and the claims rules are ours, and a
//! second, looser claims check (it has a 15 min default leeway) would only blur them.

use std::rc::Rc;

use jwt_simple::prelude::{
    ECDSAP256PublicKeyLike as _, ECDSAP384PublicKeyLike as _, ES256PublicKey, ES384PublicKey,
    RS256PublicKey, RSAPublicKeyLike as _,
};
use p256::ecdsa::signature::Verifier as _;
use superboring::hash::MessageDigest;
use superboring::pkey::{PKey, Public};
use superboring::rsa::Padding;

use super::{Alg, PublicParams, Verifier, VerifyingKey};

/// The in-component provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct Portable;

impl Verifier for Portable {
    fn import(&self, params: PublicParams<'_>) -> Option<Rc<dyn VerifyingKey>> {
        match params {
            PublicParams::Ec { alg, x, y } => {
                let sec1 = [&[4u8][..], x, y].concat();
                match alg {
                    Alg::Es256 => Some(Rc::new(Es256(ES256PublicKey::from_bytes(&sec1).ok()?))),
                    Alg::Es384 => Some(Rc::new(Es384(ES384PublicKey::from_bytes(&sec1).ok()?))),
                    Alg::Rs256 => None,
                }
            }
            PublicParams::Rsa { n, e } => {
                let key = RS256PublicKey::from_components(n, e).ok()?;
                let pkey = PKey::from_rsa(key.public_key().as_ref().clone()).ok()?;
                Some(Rc::new(Rs256(pkey)))
            }
        }
    }
}

struct Es256(ES256PublicKey);
struct Es384(ES384PublicKey);
struct Rs256(PKey<Public>);

impl VerifyingKey for Es256 {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|sig| self.0.public_key().as_ref().verify(message, &sig).is_ok())
    }
}

impl VerifyingKey for Es384 {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        p384::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|sig| self.0.public_key().as_ref().verify(message, &sig).is_ok())
    }
}

impl VerifyingKey for Rs256 {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(mut verifier) = superboring::sign::Verifier::new(MessageDigest::sha256(), &self.0)
        else {
            return false;
        };
        verifier.set_rsa_padding(Padding::PKCS1).is_ok()
            && verifier.verify_oneshot(signature, message).unwrap_or(false)
    }
}
