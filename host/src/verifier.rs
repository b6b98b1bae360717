//! `wacht:admin/verifier` served with ring: the component's signature checks run natively.
//!
//! The component keeps the policy (key type decides the algorithm, signature lengths, the RSA
//! key policy); this answers only whether a signature verifies. ring is already in the build
//! through rustls.

use std::rc::Rc;

use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use wacht_admin::jwks::Alg;
use wacht_admin::signature::{PublicParams, Verifier, VerifyingKey};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "verifier-provider",
        with: { "wacht:admin/verifier.verifying-key": super::RingKey },
    });
}

use bindings::wacht::admin::verifier::{self as wit, PublicKey};

/// One imported key. ring checks an EC point when it first verifies with it: an off-curve key
/// is kept but verifies nothing (the portable verifier refuses it at import instead).
pub enum RingKey {
    Ec(UnparsedPublicKey<Vec<u8>>),
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
}

impl RingKey {
    pub fn import(params: PublicParams<'_>) -> Option<RingKey> {
        Some(match params {
            PublicParams::Ec { alg, x, y } => {
                let algorithm = match alg {
                    Alg::Es256 => &ECDSA_P256_SHA256_FIXED,
                    Alg::Es384 => &ECDSA_P384_SHA384_FIXED,
                    Alg::Rs256 => return None,
                };
                // SEC1 uncompressed: 0x04 ‖ x ‖ y.
                let point = [&[4u8][..], x, y].concat();
                RingKey::Ec(UnparsedPublicKey::new(algorithm, point))
            }
            PublicParams::Rsa { n, e } => RingKey::Rsa(RsaPublicKeyComponents {
                n: n.to_vec(),
                e: e.to_vec(),
            }),
        })
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            RingKey::Ec(key) => key.verify(message, signature).is_ok(),
            RingKey::Rsa(key) => key
                .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
                .is_ok(),
        }
    }
}

/// ring as the core's verifier, natively (the Wycheproof tests run the policy layer on it).
#[derive(Debug, Default, Clone, Copy)]
pub struct Ring;

impl Verifier for Ring {
    fn import(&self, params: PublicParams<'_>) -> Option<Rc<dyn VerifyingKey>> {
        Some(Rc::new(RingKey::import(params)?))
    }
}

impl VerifyingKey for RingKey {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        RingKey::verify(self, message, signature)
    }
}

/// The store data's view for the import: its resource table.
pub struct VerifierView<'a> {
    pub table: &'a mut ResourceTable,
}

struct VerifierData;

impl HasData for VerifierData {
    type Data<'a> = VerifierView<'a>;
}

/// Adds `wacht:admin/verifier` to `linker`. Components that do not import it (the portable
/// build) are unaffected.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> VerifierView<'_>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, VerifierData>(linker, view)
}

impl wit::Host for VerifierView<'_> {
    fn import_key(&mut self, key: PublicKey) -> Result<Resource<RingKey>, ()> {
        let params = match &key {
            PublicKey::Es256(p) => PublicParams::Ec {
                alg: Alg::Es256,
                x: &p.x,
                y: &p.y,
            },
            PublicKey::Es384(p) => PublicParams::Ec {
                alg: Alg::Es384,
                x: &p.x,
                y: &p.y,
            },
            PublicKey::Rs256(k) => PublicParams::Rsa { n: &k.n, e: &k.e },
        };
        let key = RingKey::import(params).ok_or(())?;
        self.table.push(key).map_err(|_| ())
    }
}

impl wit::HostVerifyingKey for VerifierView<'_> {
    fn verify(&mut self, key: Resource<RingKey>, message: Vec<u8>, signature: Vec<u8>) -> bool {
        self.table
            .get(&key)
            .is_ok_and(|key| key.verify(&message, &signature))
    }

    fn drop(&mut self, key: Resource<RingKey>) -> wasmtime::Result<()> {
        self.table.delete(key)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the README says of ring: an off-curve point is accepted at import (ring parses the key
    /// when it verifies) and then verifies nothing, while a real key verifies its signature.
    #[test]
    fn an_off_curve_point_is_kept_but_verifies_nothing() {
        use ring::rand::SystemRandom;
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let sig = pair.sign(&rng, b"message").unwrap();
        let public = pair.public_key().as_ref();
        let (x, y) = (&public[1..33], &public[33..65]);
        let key = |x: &[u8], y: &[u8]| {
            RingKey::import(PublicParams::Ec {
                alg: Alg::Es256,
                x,
                y,
            })
            .unwrap()
        };
        assert!(key(x, y).verify(b"message", sig.as_ref()));
        assert!(!key(x, y).verify(b"messagE", sig.as_ref()));
        let mut off = y.to_vec();
        off[31] ^= 1;
        assert!(!key(x, &off).verify(b"message", sig.as_ref()));
    }

    #[test]
    fn ring_key_import_refuses_rsa_as_ec() {
        let params = PublicParams::Ec {
            alg: Alg::Rs256,
            x: &[1; 32],
            y: &[1; 32],
        };
        assert!(RingKey::import(params).is_none());
    }
}
