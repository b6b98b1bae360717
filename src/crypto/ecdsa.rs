//! ECDSA verification on P-256 (with SHA-256) and P-384 (with SHA-384), signatures as r‖s.
//!
//! Points are in Jacobian coordinates (X/Z^2, Y/Z^3; Z = 0 is the point at infinity) over the
//! Montgomery field of `mont`. u1·G + u2·Q is computed in one pass over the w-NAF digits of the
//! scalars (shared doublings), adding precomputed odd multiples in affine form: G's table is
//! built once per process, Q's once when the key is parsed. From a key's second verification on,
//! both scalars are split at half their bits, u = u_hi·2^k + u_lo, with tables for 2^k·G (once
//! per process) and 2^k·Q (once per key), which halves the doublings (see `Key`).
//!
//! Variable time: verification handles only public data.

use std::iter;
use std::sync::OnceLock;

use sha2::{Digest as _, Sha256, Sha384};

use super::mont::{self, Fe, Field, hex_limbs};

/// Curve constants, big-endian hex, from SEC 2 v2 §2.4.2 / §2.5.1 (= FIPS 186-4 D.1.2.3 and
/// D.1.2.4, NIST P-256 and P-384); a = -3 on both curves.
struct Params<const N: usize> {
    p: [u32; N],
    n: [u32; N],
    b: [u32; N],
    gx: [u32; N],
    gy: [u32; N],
}

const P256_PARAMS: Params<8> = Params {
    p: hex_limbs("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"),
    n: hex_limbs("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"),
    b: hex_limbs("5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"),
    gx: hex_limbs("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"),
    gy: hex_limbs("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"),
};

const P384_PARAMS: Params<12> = Params {
    p: hex_limbs(concat!(
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe",
        "ffffffff0000000000000000ffffffff"
    )),
    n: hex_limbs(concat!(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf",
        "581a0db248b0a77aecec196accc52973"
    )),
    b: hex_limbs(concat!(
        "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875a",
        "c656398d8a2ed19d2a85c8edd3ec2aef"
    )),
    gx: hex_limbs(concat!(
        "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a38",
        "5502f25dbf55296c3a545e3872760ab7"
    )),
    gy: hex_limbs(concat!(
        "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c0",
        "0a60b1ce1d7e819d7a431d7c90ea0e5f"
    )),
};

/// w-NAF widths: G's table (2^(7-2) = 32 points) is shared by every verification, so it can be
/// larger than a key's (8 points, built at each JWKS parse).
const G_WINDOW: u32 = 7;
const Q_WINDOW: u32 = 5;

#[derive(Clone, Copy)]
struct Affine<const N: usize> {
    x: Fe<N>,
    y: Fe<N>,
}

#[derive(Clone, Copy)]
struct Jacobian<const N: usize> {
    x: Fe<N>,
    y: Fe<N>,
    z: Fe<N>,
}

impl<const N: usize> Jacobian<N> {
    const INFINITY: Jacobian<N> = Jacobian {
        x: [0; N],
        y: [0; N],
        z: [0; N],
    };

    fn is_infinity(&self) -> bool {
        mont::is_zero(&self.z)
    }
}

/// One curve's derived constants and the table of G.
struct Curve<const N: usize> {
    fp: Field<N>,
    fn_: Field<N>,
    /// b and 3, Montgomery form mod p.
    b: Fe<N>,
    three: Fe<N>,
    /// Odd multiples G, 3G, 5G, …, in affine Montgomery form.
    g_table: Vec<Affine<N>>,
    /// The same for 2^(16N)·G, built at the first split multiplication (see `Key`).
    g_hi_table: OnceLock<Vec<Affine<N>>>,
}

fn p256() -> &'static Curve<8> {
    static CURVE: OnceLock<Curve<8>> = OnceLock::new();
    CURVE.get_or_init(|| Curve::new(&P256_PARAMS))
}

fn p384() -> &'static Curve<12> {
    static CURVE: OnceLock<Curve<12>> = OnceLock::new();
    CURVE.get_or_init(|| Curve::new(&P384_PARAMS))
}

impl<const N: usize> Curve<N> {
    fn new(params: &Params<N>) -> Curve<N> {
        let fp = Field::new(params.p);
        let mut three = [0u32; N];
        if let Some(l) = three.first_mut() {
            *l = 3;
        }
        let mut curve = Curve {
            b: fp.to_mont(&params.b),
            three: fp.to_mont(&three),
            fn_: Field::new(params.n),
            g_table: Vec::new(),
            g_hi_table: OnceLock::new(),
            fp,
        };
        let g = Jacobian {
            x: curve.fp.to_mont(&params.gx),
            y: curve.fp.to_mont(&params.gy),
            z: curve.fp.one(),
        };
        // G is a valid point, so this cannot fail; an empty table would only make every
        // verification fail, never accept.
        curve.g_table = curve.odd_multiples(&g, G_WINDOW).unwrap_or_default();
        curve
    }

    fn g_hi_table(&self) -> &[Affine<N>] {
        self.g_hi_table.get_or_init(|| {
            let g = self.g_table.first().map(|g| self.jacobian(g));
            g.and_then(|g| self.shifted_table(&g, G_WINDOW))
                .unwrap_or_default()
        })
    }

    /// The odd multiples of 2^(16N)·P (the upper half of a split scalar).
    fn shifted_table(&self, p: &Jacobian<N>, w: u32) -> Option<Vec<Affine<N>>> {
        let mut hi = *p;
        for _ in 0..16 * N {
            hi = self.double(&hi);
        }
        self.odd_multiples(&hi, w)
    }

    fn jacobian(&self, p: &Affine<N>) -> Jacobian<N> {
        Jacobian {
            x: p.x,
            y: p.y,
            z: self.fp.one(),
        }
    }

    fn on_curve(&self, p: &Affine<N>) -> bool {
        // y^2 = x^3 - 3x + b = x(x^2 - 3) + b
        let f = &self.fp;
        let rhs = f.add(&f.mul(&f.sub(&f.sqr(&p.x), &self.three), &p.x), &self.b);
        f.sqr(&p.y) == rhs
    }

    /// dbl-2001-b (a = -3), with Z3 = 2YZ: a squaring costs a full product here, so the
    /// (Y+Z)^2 - gamma - delta form would only add subtractions. Infinity (Z = 0) doubles to
    /// Z3 = 0; no point of these prime-order curves has Y = 0.
    fn double(&self, p: &Jacobian<N>) -> Jacobian<N> {
        let f = &self.fp;
        let delta = f.sqr(&p.z);
        let gamma = f.sqr(&p.y);
        let beta = f.mul(&p.x, &gamma);
        let t = f.mul(&f.sub(&p.x, &delta), &f.add(&p.x, &delta));
        let alpha = f.add(&f.add(&t, &t), &t);
        let beta2 = f.add(&beta, &beta);
        let beta4 = f.add(&beta2, &beta2);
        let beta8 = f.add(&beta4, &beta4);
        let x3 = f.sub(&f.sqr(&alpha), &beta8);
        let yz = f.mul(&p.y, &p.z);
        let z3 = f.add(&yz, &yz);
        let gamma2 = f.sqr(&gamma);
        let gamma2_2 = f.add(&gamma2, &gamma2);
        let gamma2_4 = f.add(&gamma2_2, &gamma2_2);
        let gamma2_8 = f.add(&gamma2_4, &gamma2_4);
        let y3 = f.sub(&f.mul(&alpha, &f.sub(&beta4, &x3)), &gamma2_8);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// p + q with q affine (Hankerson-Menezes-Vanstone, Guide to ECC alg. 3.22: 8M + 3S, fewer
    /// additions than madd-2007-bl), complete: p = ∞, p = q and p = -q are handled (Wycheproof
    /// has signatures that hit them).
    fn add_affine(&self, p: &Jacobian<N>, q: &Affine<N>) -> Jacobian<N> {
        let f = &self.fp;
        if p.is_infinity() {
            return Jacobian {
                x: q.x,
                y: q.y,
                z: f.one(),
            };
        }
        let z1z1 = f.sqr(&p.z);
        let u2 = f.mul(&q.x, &z1z1);
        let s2 = f.mul(&q.y, &f.mul(&p.z, &z1z1));
        let h = f.sub(&u2, &p.x);
        let s_diff = f.sub(&s2, &p.y);
        if mont::is_zero(&h) {
            // Same x: the same point (double it) or its negation (the sum is infinity).
            return if mont::is_zero(&s_diff) {
                self.double(p)
            } else {
                Jacobian::INFINITY
            };
        }
        // X3 = r^2 - H^3 - 2 X1 H^2, Y3 = r (X1 H^2 - X3) - Y1 H^3, Z3 = Z1 H.
        let hh = f.sqr(&h);
        let hhh = f.mul(&h, &hh);
        let v = f.mul(&p.x, &hh);
        let x3 = f.sub(&f.sub(&f.sqr(&s_diff), &hhh), &f.add(&v, &v));
        let y3 = f.sub(&f.mul(&s_diff, &f.sub(&v, &x3)), &f.mul(&p.y, &hhh));
        let z3 = f.mul(&p.z, &h);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    #[cfg(test)]
    fn to_affine(&self, p: &Jacobian<N>) -> Option<Affine<N>> {
        let table = self.normalize(&[*p])?;
        table.first().copied()
    }

    /// Jacobian → affine for many points with one inversion (Montgomery's trick). `None` if
    /// any is infinity.
    fn normalize(&self, points: &[Jacobian<N>]) -> Option<Vec<Affine<N>>> {
        let f = &self.fp;
        // prefix[i] = z_0 · … · z_i
        let mut prefix = Vec::with_capacity(points.len());
        let mut acc = f.one();
        for p in points {
            acc = f.mul(&acc, &p.z);
            prefix.push(acc);
        }
        if mont::is_zero(&acc) {
            return None;
        }
        // inv = (z_0 · … · z_i)^-1, walking i down; z_i^-1 = inv · prefix[i-1].
        let mut inv = f.invert(&acc);
        let mut out = vec![
            Affine {
                x: [0; N],
                y: [0; N]
            };
            points.len()
        ];
        let before = prefix
            .iter()
            .rev()
            .skip(1)
            .map(Some)
            .chain(iter::once(None));
        for ((p, o), prev) in points.iter().zip(out.iter_mut()).rev().zip(before) {
            let z_inv = match prev {
                Some(prev) => f.mul(&inv, prev),
                None => inv,
            };
            inv = f.mul(&inv, &p.z);
            let z_inv2 = f.sqr(&z_inv);
            o.x = f.mul(&p.x, &z_inv2);
            o.y = f.mul(&p.y, &f.mul(&z_inv2, &z_inv));
        }
        Some(out)
    }

    /// P, 3P, 5P, …, (2^(w-1) - 1)P in affine form: the table for w-NAF digits of width w.
    /// One inversion: the sums are taken on the isomorphic curve (x, y) → (Z^2 x, Z^3 y) with
    /// Z = Z(2P), where 2P is affine, and mapped back by multiplying their Z by Z(2P). The
    /// mixed addition never uses a or b there: (2i+1)P = ±2P would need a multiple of P below
    /// n to vanish, and P has prime order n.
    fn odd_multiples(&self, p: &Jacobian<N>, w: u32) -> Option<Vec<Affine<N>>> {
        let f = &self.fp;
        let count = 1usize << (w - 2);
        let two = self.double(p);
        let z2 = f.sqr(&two.z);
        let two_iso = Affine { x: two.x, y: two.y };
        let mut acc = Jacobian {
            x: f.mul(&p.x, &z2),
            y: f.mul(&p.y, &f.mul(&z2, &two.z)),
            z: p.z,
        };
        let mut points = Vec::with_capacity(count);
        for _ in 0..count {
            points.push(Jacobian {
                z: f.mul(&acc.z, &two.z),
                ..acc
            });
            acc = self.add_affine(&acc, &two_iso);
        }
        self.normalize(&points)
    }

    /// u1·G + u2·Q, with `q_table` the odd multiples of Q for width `Q_WINDOW`.
    fn lincomb(&self, u1: &Fe<N>, u2: &Fe<N>, q_table: &[Affine<N>]) -> Jacobian<N> {
        self.multi_mul(&[(u1, G_WINDOW, &self.g_table), (u2, Q_WINDOW, q_table)])
    }

    /// u1·G + u2·Q with each scalar split at k = 16N bits, u = u_hi·2^k + u_lo: as
    /// u1_lo·G + u1_hi·(2^k G) + u2_lo·Q + u2_hi·(2^k Q), half the doublings.
    fn lincomb_split(
        &self,
        u1: &Fe<N>,
        u2: &Fe<N>,
        q_table: &[Affine<N>],
        q_hi_table: &[Affine<N>],
    ) -> Jacobian<N> {
        let ((u1_lo, u1_hi), (u2_lo, u2_hi)) = (halves(u1), halves(u2));
        self.multi_mul(&[
            (u1_lo, G_WINDOW, &self.g_table),
            (u1_hi, G_WINDOW, self.g_hi_table()),
            (u2_lo, Q_WINDOW, q_table),
            (u2_hi, Q_WINDOW, q_hi_table),
        ])
    }

    /// Σ k_i·P_i, each scalar with its w-NAF width and table of odd multiples of P_i, in one
    /// pass over the digits (shared doublings).
    fn multi_mul(&self, terms: &[(&[u32], u32, &[Affine<N>])]) -> Jacobian<N> {
        let streams: Vec<(Vec<i8>, &[Affine<N>])> = terms
            .iter()
            .map(|&(k, w, table)| (wnaf(k, w), table))
            .collect();
        let len = streams.iter().map(|(d, _)| d.len()).max().unwrap_or(0);
        let mut acc = Jacobian::INFINITY;
        for i in (0..len).rev() {
            // Doubling ∞ gives ∞: skipping it saves the leading zero digits.
            if !acc.is_infinity() {
                acc = self.double(&acc);
            }
            for (digits, table) in &streams {
                let digit = digits.get(i).copied().unwrap_or(0);
                if let Some(point) = self.select(table, digit) {
                    acc = self.add_affine(&acc, &point);
                }
            }
        }
        acc
    }

    /// digit·P from a table of odd multiples; `None` for 0 (or a digit beyond the table, which
    /// w-NAF never produces).
    fn select(&self, table: &[Affine<N>], digit: i8) -> Option<Affine<N>> {
        if digit == 0 {
            return None;
        }
        let point = table.get(usize::from(digit.unsigned_abs() / 2))?;
        Some(if digit < 0 {
            Affine {
                x: point.x,
                y: self.fp.sub(&[0; N], &point.y),
            }
        } else {
            *point
        })
    }

    /// A public key from its affine coordinates (big-endian, exactly the field size): each
    /// below p, the point on the curve (which also rules out the identity).
    fn public_key(&self, x: &[u8], y: &[u8]) -> Option<Key<N>> {
        let point = Affine {
            x: self.fp.to_mont(&self.fp.decode(x)?),
            y: self.fp.to_mont(&self.fp.decode(y)?),
        };
        if !self.on_curve(&point) {
            return None;
        }
        Some(Key {
            table: self.odd_multiples(&self.jacobian(&point), Q_WINDOW)?,
            hi_table: OnceLock::new(),
            used: OnceLock::new(),
        })
    }

    /// u1·G + u2·Q for `key`: split from the key's second verification on (see `Key`).
    fn key_lincomb(&self, key: &Key<N>, u1: &Fe<N>, u2: &Fe<N>) -> Jacobian<N> {
        if key.used.set(()).is_ok() {
            return self.lincomb(u1, u2, &key.table);
        }
        let hi_table = key.hi_table.get_or_init(|| {
            let q = key.table.first().map(|q| self.jacobian(q));
            q.and_then(|q| self.shifted_table(&q, Q_WINDOW))
                .unwrap_or_default()
        });
        self.lincomb_split(u1, u2, &key.table, hi_table)
    }

    /// ECDSA verification of `sig` = r‖s over a digest as long as the field.
    fn verify(&self, key: &Key<N>, digest: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 8 * N {
            return false;
        }
        let Some((r, s)) = sig.split_at_checked(4 * N) else {
            return false;
        };
        let n = self.fn_.modulus();
        // 1 <= r, s <= n - 1
        let (Some(r), Some(s)) = (self.fn_.decode(r), self.fn_.decode(s)) else {
            return false;
        };
        if mont::is_zero(&r) || mont::is_zero(&s) {
            return false;
        }
        // The digest is as long as n, and n > 2^(bits-1), so one subtraction reduces it.
        let mut e = [0u32; N];
        if digest.len() != 4 * N || !mont::from_be_bytes(&mut e, digest) {
            return false;
        }
        if !mont::less_than(&e, n) {
            mont::sub_assign(&mut e, n);
        }
        // w = s^-1 in Montgomery form; a Montgomery product of an ordinary value and a
        // Montgomery one is ordinary: u1 = e·w, u2 = r·w mod n.
        let w = self.fn_.invert(&self.fn_.to_mont(&s));
        let (u1, u2) = (self.fn_.mul(&e, &w), self.fn_.mul(&r, &w));
        let point = self.key_lincomb(key, &u1, &u2);
        if point.is_infinity() {
            return false;
        }
        // x(R) mod n == r without an inversion: x(R) = X/Z^2 is r or r + n (when below p).
        let f = &self.fp;
        let z2 = f.sqr(&point.z);
        if f.mul(&f.to_mont(&r), &z2) == point.x {
            return true;
        }
        let mut r_plus_n = [0u32; N];
        let carry = mont::add_into(&mut r_plus_n, &r, n);
        !carry
            && mont::less_than(&r_plus_n, f.modulus())
            && f.mul(&f.to_mont(&r_plus_n), &z2) == point.x
    }
}

/// (low, high) halves of a scalar's limbs.
fn halves<const N: usize>(k: &Fe<N>) -> (&[u32], &[u32]) {
    // N is even; the fallback (all low, no high) would still be the same scalar.
    k.split_at_checked(N / 2).unwrap_or((k, &[]))
}

/// The width-w NAF of k (limbs), least significant digit first: odd digits in
/// (-2^(w-1), 2^(w-1)), each followed by at least w-1 zeros; 32·len + 1 digits hold any k.
fn wnaf(k: &[u32], w: u32) -> Vec<i8> {
    let mut digits = vec![0i8; 32 * k.len() + 1];
    let mut k: Vec<u32> = k.iter().copied().chain(iter::once(0)).collect();
    let (window, half) = (1i32 << w, 1i32 << (w - 1));
    for d in digits.iter_mut() {
        let low = k.first().copied().unwrap_or(0);
        if low & 1 == 1 {
            let mut v = (low & (window as u32 - 1)) as i32;
            if v >= half {
                v -= window;
            }
            // |v| < 2^(w-1) <= 64 fits i8.
            *d = v as i8;
            // k -= v, making k divisible by 2^w.
            if v > 0 {
                add_small(&mut k, v.unsigned_abs(), true);
            } else {
                add_small(&mut k, v.unsigned_abs(), false);
            }
        }
        mont::shr1(&mut k, 0);
    }
    digits
}

/// k -= v (`subtract`) or k += v, with the borrow or carry propagated.
fn add_small(k: &mut [u32], v: u32, subtract: bool) {
    let mut c = v;
    for limb in k.iter_mut() {
        if c == 0 {
            break;
        }
        let (r, over) = if subtract {
            limb.overflowing_sub(c)
        } else {
            limb.overflowing_add(c)
        };
        *limb = r;
        c = u32::from(over);
    }
}

/// A parsed public key Q: its table of odd multiples, and that of 2^(16N)·Q for split scalars.
/// The second table costs 16N doublings, about what one split verification saves, so it is
/// built at the key's second verification: an instance that verifies once per key (Workers,
/// one instance per request) never pays for it, nor for the table of 2^(16N)·G.
#[derive(Clone)]
struct Key<const N: usize> {
    table: Vec<Affine<N>>,
    hi_table: OnceLock<Vec<Affine<N>>>,
    /// Set by the first verification.
    used: OnceLock<()>,
}

/// A P-256 public key, ready to verify ES256.
#[derive(Clone)]
pub(crate) struct P256Key(Key<8>);

/// A P-384 public key, ready to verify ES384.
#[derive(Clone)]
pub(crate) struct P384Key(Key<12>);

impl P256Key {
    /// From the big-endian affine coordinates, each exactly 32 bytes.
    pub(crate) fn from_coordinates(x: &[u8], y: &[u8]) -> Option<P256Key> {
        p256().public_key(x, y).map(P256Key)
    }

    /// ECDSA P-256 with SHA-256 over `msg`, `sig` = r‖s (64 bytes).
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        p256().verify(&self.0, &Sha256::digest(msg), sig)
    }
}

impl P384Key {
    /// From the big-endian affine coordinates, each exactly 48 bytes.
    pub(crate) fn from_coordinates(x: &[u8], y: &[u8]) -> Option<P384Key> {
        p384().public_key(x, y).map(P384Key)
    }

    /// ECDSA P-384 with SHA-384 over `msg`, `sig` = r‖s (96 bytes).
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        p384().verify(&self.0, &Sha384::digest(msg), sig)
    }
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

    /// k·P by plain double-and-add (most significant bit first), as a reference.
    fn mul<const N: usize>(c: &Curve<N>, k: &Fe<N>, p: &Affine<N>) -> Jacobian<N> {
        let mut acc = Jacobian::INFINITY;
        for limb in k.iter().rev() {
            for bit in (0..32).rev() {
                acc = c.double(&acc);
                if (limb >> bit) & 1 == 1 {
                    acc = c.add_affine(&acc, p);
                }
            }
        }
        acc
    }

    fn g<const N: usize>(c: &Curve<N>) -> Affine<N> {
        c.g_table[0]
    }

    fn neg<const N: usize>(c: &Curve<N>, p: &Affine<N>) -> Affine<N> {
        Affine {
            x: p.x,
            y: c.fp.sub(&[0; N], &p.y),
        }
    }

    fn same<const N: usize>(c: &Curve<N>, a: &Jacobian<N>, b: &Affine<N>) -> bool {
        let a = c.to_affine(a).unwrap();
        a.x == b.x && a.y == b.y
    }

    fn check_curve<const N: usize>(c: &Curve<N>) {
        let g = g(c);
        assert!(c.on_curve(&g));
        assert_eq!(c.g_table.len(), 1 << (G_WINDOW - 2));
        for p in &c.g_table {
            assert!(c.on_curve(p));
        }
        let n = *c.fn_.modulus();
        // n·G = ∞, (n-1)·G = -G, (n-2)·G = -2G, by plain double-and-add.
        assert!(mul(c, &n, &g).is_infinity());
        let mut n_minus_1 = n;
        n_minus_1[0] -= 1;
        assert!(same(c, &mul(c, &n_minus_1, &g), &neg(c, &g)));
        let mut n_minus_2 = n;
        n_minus_2[0] -= 2;
        let two_g = c
            .to_affine(&c.double(&Jacobian {
                x: g.x,
                y: g.y,
                z: c.fp.one(),
            }))
            .unwrap();
        assert!(same(c, &mul(c, &n_minus_2, &g), &neg(c, &two_g)));
        // G's table: odd multiples.
        let mut three = [0u32; N];
        three[0] = 3;
        assert!(same(c, &mul(c, &three, &g), &c.g_table[1]));
        // The tables of 2^k·G and 2^k·Q, k = 16N: odd multiples of the reference 2^k·P.
        let mut two_k = [0u32; N];
        two_k[N / 2] = 1;
        let g_hi = c.to_affine(&mul(c, &two_k, &g)).unwrap();
        let two_g_hi = c.to_affine(&mul(c, &two_k, &two_g)).unwrap();
        for (table, base) in [(c.g_hi_table(), g_hi), (&c.g_table[..], g)] {
            assert_eq!(table.len(), 1 << (G_WINDOW - 2));
            for (i, p) in table.iter().enumerate() {
                let mut k = [0u32; N];
                k[0] = 2 * i as u32 + 1;
                assert!(same(c, &mul(c, &k, &base), p), "{i}");
            }
        }
        let q_table = c.odd_multiples(&c.jacobian(&two_g), Q_WINDOW).unwrap();
        let q_hi_table = c.shifted_table(&c.jacobian(&two_g), Q_WINDOW).unwrap();
        assert_eq!(q_hi_table.len(), 1 << (Q_WINDOW - 2));
        assert!(same(c, &c.jacobian(&q_hi_table[0]), &two_g_hi));
        assert!(same(c, &mul(c, &three, &two_g_hi), &q_hi_table[1]));
        // Both paths agree with the reference, including the sums that meet P + P and
        // P + (-P), and scalars at the split point.
        let mut one = [0u32; N];
        one[0] = 1;
        let mut two_k_minus_1 = [0u32; N];
        two_k_minus_1[..N / 2].fill(u32::MAX);
        let mut mixed = n_minus_1;
        mixed[N / 2 - 1] = 0;
        mixed[N / 2] ^= 0x8000_0001;
        let cases: [(Fe<N>, Fe<N>); 11] = [
            (one, one),
            (n_minus_2, one),
            (three, n_minus_1),
            (n_minus_1, n_minus_1),
            (n_minus_2, n_minus_2),
            (two_k, two_k_minus_1),
            (two_k_minus_1, two_k),
            (two_k, n_minus_2),
            (mixed, three),
            ([0; N], two_k),
            (two_k_minus_1, [0; N]),
        ];
        for (u1, u2) in cases {
            let (a, b) = (mul(c, &u1, &g), mul(c, &u2, &two_g));
            let want = match c.to_affine(&b) {
                Some(b) => c.add_affine(&a, &b),
                None => a,
            };
            let plain = c.lincomb(&u1, &u2, &q_table);
            let split = c.lincomb_split(&u1, &u2, &q_table, &q_hi_table);
            for got in [plain, split] {
                match c.to_affine(&want) {
                    None => assert!(got.is_infinity()),
                    Some(want) => assert!(same(c, &got, &want)),
                }
            }
        }
        for lincomb in [
            |c: &Curve<N>, u1: &Fe<N>, u2: &Fe<N>, q: &[Affine<N>], _: &[Affine<N>]| {
                c.lincomb(u1, u2, q)
            },
            |c: &Curve<N>, u1: &Fe<N>, u2: &Fe<N>, q: &[Affine<N>], q_hi: &[Affine<N>]| {
                c.lincomb_split(u1, u2, q, q_hi)
            },
        ] {
            let f = |u1: &Fe<N>, u2: &Fe<N>| lincomb(c, u1, u2, &q_table, &q_hi_table);
            // (n-2)·G + 1·(2G) = ∞
            assert!(f(&n_minus_2, &one).is_infinity());
            // 0·G + u2·Q
            assert!(same(c, &f(&[0; N], &one), &two_g));
            assert!(f(&[0; N], &[0; N]).is_infinity());
            // 2^(k+1)·G + (n - 2^k)·(2G) = ∞
            let mut n_minus_two_k = n;
            mont::sub_assign(&mut n_minus_two_k, &two_k);
            let mut two_k1 = [0u32; N];
            two_k1[N / 2] = 2;
            assert!(f(&two_k1, &n_minus_two_k).is_infinity());
        }
        // Random-ish scalars: split and plain agree (and both are u1·G + u2·(2G)).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..8 {
            let mut u = [[0u32; N]; 2];
            for limb in u.iter_mut().flatten() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *limb = (x >> 16) as u32;
            }
            let [u1, u2] = u.map(|mut k| {
                if !mont::less_than(&k, &n) {
                    mont::sub_assign(&mut k, &n);
                }
                k
            });
            let plain = c.to_affine(&c.lincomb(&u1, &u2, &q_table)).unwrap();
            let split = c.lincomb_split(&u1, &u2, &q_table, &q_hi_table);
            assert!(same(c, &split, &plain));
        }
    }

    #[test]
    fn p256_group_law() {
        check_curve(p256());
    }

    #[test]
    fn p384_group_law() {
        check_curve(p384());
    }

    #[test]
    fn wnaf_digits_recompose_the_scalar() {
        let n = P256_PARAMS.n;
        for k in [n, [0xffff_ffff; 8], [1, 0, 0, 0, 0, 0, 0, 0], [0; 8]] {
            for w in [2, 5, 7] {
                let (lo, hi) = halves(&k);
                assert_eq!((lo, hi), (&k[..4], &k[4..]));
                // A half scalar's digits are the same as those of the zero-extended half.
                let mut lo8 = [0u32; 8];
                lo8[..4].copy_from_slice(lo);
                assert_eq!(wnaf(lo, w)[..], wnaf(&lo8, w)[..129]);
                let digits = wnaf(&k, w);
                // Σ d_i 2^i by Horner's rule on signed 32-bit limbs must give k back.
                let mut acc = [0i64; 9];
                for &d in digits.iter().rev() {
                    // acc = 2 acc + d
                    let mut carry = i64::from(d);
                    for limb in acc.iter_mut() {
                        let v = *limb * 2 + carry;
                        *limb = v.rem_euclid(1 << 32);
                        carry = v.div_euclid(1 << 32);
                    }
                    assert_eq!(carry, 0);
                }
                let got: Vec<u32> = acc.iter().map(|&l| l as u32).collect();
                assert_eq!(&got[..8], &k[..], "w={w}");
                assert_eq!(got[8], 0);
                for (i, &d) in digits.iter().enumerate() {
                    if d != 0 {
                        assert!(d % 2 != 0 && i32::from(d).abs() < 1 << (w - 1));
                        assert!(digits[i + 1..].iter().take(w as usize - 1).all(|&z| z == 0));
                    }
                }
            }
        }
    }

    #[test]
    fn public_keys_must_be_on_the_curve() {
        let c = p256();
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        mont::to_be_bytes(&P256_PARAMS.gx, &mut x);
        mont::to_be_bytes(&P256_PARAMS.gy, &mut y);
        assert!(P256Key::from_coordinates(&x, &y).is_some());
        assert!(P256Key::from_coordinates(&x, &x).is_none());
        assert!(P256Key::from_coordinates(&[0; 32], &[0; 32]).is_none());
        assert!(P256Key::from_coordinates(&x[1..], &y).is_none());
        // y and p - y are both on the curve; p + y is not below p.
        let mut p = [0u8; 32];
        mont::to_be_bytes(&P256_PARAMS.p, &mut p);
        assert!(P256Key::from_coordinates(&x, &p).is_none());
        let neg_y = c.fp.sub(&P256_PARAMS.p, &P256_PARAMS.gy);
        let mut ny = [0u8; 32];
        mont::to_be_bytes(&neg_y, &mut ny);
        assert!(P256Key::from_coordinates(&x, &ny).is_some());
    }

    #[test]
    fn standin_signatures_verify() {
        use wacht_standin::tokens::TestKey;
        let coords = |k: &TestKey| {
            use base64::Engine as _;
            let jwk = k.public_jwk();
            let d = |m: &str| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(jwk[m].as_str().unwrap())
                    .unwrap()
            };
            (d("x"), d("y"))
        };
        for seed in 1..4 {
            let k = TestKey::es256(seed);
            let (x, y) = coords(&k);
            let key = P256Key::from_coordinates(&x, &y).unwrap();
            let sig = k.sign_input(b"message");
            // The first verification takes the plain path, the next ones the split one.
            assert!(key.verify(b"message", &sig));
            assert!(key.0.hi_table.get().is_none());
            assert!(!key.verify(b"messagE", &sig));
            assert!(key.0.hi_table.get().is_some());
            assert!(key.verify(b"message", &sig));
            assert!(key.clone().verify(b"message", &sig));
            let k = TestKey::es384(seed);
            let (x, y) = coords(&k);
            let key = P384Key::from_coordinates(&x, &y).unwrap();
            let sig = k.sign_input(b"message");
            assert!(key.verify(b"message", &sig));
            assert!(key.verify(b"message", &sig));
            let mut bad = sig.clone();
            bad[95] ^= 1;
            assert!(!key.verify(b"message", &bad));
            assert!(!key.verify(b"message", &sig[..95]));
        }
    }
}
