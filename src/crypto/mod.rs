//! Signature verification for ES256, ES384 and RS256: our own verify-only code instead of the
//! RustCrypto `p256`, `p384` and `rsa` crates, which carried ~105 KB of generic big-integer and
//! curve code into the component (the Workers upload budget is 100 KiB gzip). Verification
//! needs only public-key operations on public data, so this code is variable time.
//!
//! - `mont`: Montgomery arithmetic on `u32` limbs, shared by RSA and both curves
//! - `rsa`: RSASSA-PKCS1-v1_5 with SHA-256
//! - `ecdsa`: ECDSA on P-256 / SHA-256 and P-384 / SHA-384, r‖s signatures
//!
//! Tested here and against the Wycheproof vectors (`tests/wycheproof.rs`).

pub(crate) mod ecdsa;
mod mont;
pub(crate) mod rsa;
