//! Montgomery arithmetic on little-endian `u32` limbs: one multiplication routine for the RSA
//! moduli (any length, in `Vec`s) and the two curve fields (fixed `[u32; N]`).
//!
//! `u32` limbs because the component runs on wasm32, which multiplies 32x32→64 natively; `u64`
//! limbs would need 64x64→128 products, which wasm32 lowers to slow library calls.
//!
//! Variable time throughout: only signature verification uses this, and every value it handles
//! (keys, signatures, digests of signed messages) is public.

/// -m^-1 mod 2^32 for an odd m0, by Newton's iteration (each step doubles the correct bits).
pub(crate) fn neg_inv(m0: u32) -> u32 {
    // m0 * m0 ≡ 1 mod 8 for odd m0: 3 correct bits, then 6, 12, 24, 48.
    let mut inv = m0;
    for _ in 0..4 {
        inv = inv.wrapping_mul(2u32.wrapping_sub(m0.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// Big-endian bytes → little-endian limbs, into `out` (zero-extended). `false` if the value does
/// not fit.
pub(crate) fn from_be_bytes(out: &mut [u32], bytes: &[u8]) -> bool {
    out.fill(0);
    let mut limbs = out.iter_mut();
    for chunk in bytes.rchunks(4) {
        let word = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        match limbs.next() {
            Some(limb) => *limb = word,
            None if word == 0 => {}
            None => return false,
        }
    }
    true
}

/// Little-endian limbs → big-endian bytes, filling `out` (the value must fit; higher limbs are
/// dropped).
pub(crate) fn to_be_bytes(limbs: &[u32], out: &mut [u8]) {
    let words = limbs.iter().flat_map(|l| l.to_le_bytes());
    out.fill(0);
    for (byte, value) in out.iter_mut().rev().zip(words) {
        *byte = value;
    }
}

/// dst = src for equal lengths (`copy_from_slice` would be a panic path, if an unreachable one).
fn copy(dst: &mut [u32], src: &[u32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

pub(crate) fn is_zero(a: &[u32]) -> bool {
    a.iter().all(|&l| l == 0)
}

/// a < b, both of the same length.
pub(crate) fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// out = a + b; returns the carry.
pub(crate) fn add_into(out: &mut [u32], a: &[u32], b: &[u32]) -> bool {
    let mut carry = 0u64;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let v = u64::from(x) + u64::from(y) + carry;
        *o = v as u32;
        carry = v >> 32;
    }
    carry != 0
}

/// out = a - b; returns the borrow.
fn sub_into(out: &mut [u32], a: &[u32], b: &[u32]) -> bool {
    let mut borrow = false;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(u32::from(borrow));
        *o = d;
        borrow = b1 || b2;
    }
    borrow
}

/// a -= b in place; returns the borrow.
pub(crate) fn sub_assign(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(u32::from(borrow));
        *x = d;
        borrow = b1 || b2;
    }
    borrow
}

/// One CIOS step of the Montgomery product: dst = (src + ai*b + q*m) / 2^32, where q makes the
/// sum divisible by 2^32. `hi` is the word above `src`; returns the word above `dst`. With
/// src < 2m the result stays below 2m, so that word is 0 or 1.
#[inline(always)]
fn mont_step(
    dst: &mut [u32],
    src: &[u32],
    hi: u64,
    ai: u32,
    b: &[u32],
    m: &[u32],
    m0inv: u32,
) -> u64 {
    let ai = u64::from(ai);
    let (s0, b0, m0) = (
        src.first().copied().unwrap_or(0),
        b.first().copied().unwrap_or(0),
        m.first().copied().unwrap_or(0),
    );
    let v = u64::from(s0) + ai * u64::from(b0);
    let q = u64::from((v as u32).wrapping_mul(m0inv));
    // The low word of w is 0 by the choice of q.
    let w = (v & 0xffff_ffff) + q * u64::from(m0);
    let (mut c1, mut c2) = (v >> 32, w >> 32);
    // Each sum is at most (2^32-1) + (2^32-1)^2 + (2^32-1) = 2^64-1: no overflow.
    for (((&sj, &bj), &mj), dj) in src.iter().zip(b).zip(m).skip(1).zip(dst.iter_mut()) {
        let v = u64::from(sj) + ai * u64::from(bj) + c1;
        c1 = v >> 32;
        let w = (v & 0xffff_ffff) + q * u64::from(mj) + c2;
        c2 = w >> 32;
        *dj = w as u32;
    }
    let v = hi + c1;
    let w = (v & 0xffff_ffff) + c2;
    if let Some(top) = dst.last_mut() {
        *top = w as u32;
    }
    (v >> 32) + (w >> 32)
}

/// out = a * b / 2^(32n) mod m, fully reduced, for a, b < m (all of length n, m odd).
/// `scratch` (length n) is working space. Inlined so that each fixed-size field gets a copy with
/// known lengths (unrolled, no length checks): the curves spend nearly all their time here.
#[inline(always)]
pub(crate) fn mont_mul(
    out: &mut [u32],
    a: &[u32],
    b: &[u32],
    m: &[u32],
    m0inv: u32,
    scratch: &mut [u32],
) {
    out.fill(0);
    let mut hi = 0u64;
    // The running sum alternates between `out` and `scratch` (no copy per step).
    let mut in_out = true;
    for &ai in a {
        hi = if in_out {
            mont_step(scratch, out, hi, ai, b, m, m0inv)
        } else {
            mont_step(out, scratch, hi, ai, b, m, m0inv)
        };
        in_out = !in_out;
    }
    // The sum t < 2m: subtract m once if t >= m.
    if in_out {
        let borrow = sub_into(scratch, out, m);
        if hi != 0 || !borrow {
            copy(out, scratch);
        }
    } else {
        let borrow = sub_into(out, scratch, m);
        if hi == 0 && borrow {
            copy(out, scratch);
        }
    }
}

/// `mont_mul` for the variable-length (RSA) moduli: one out-of-line copy for all of them.
#[inline(never)]
fn mont_mul_var(out: &mut [u32], a: &[u32], b: &[u32], m: &[u32], m0inv: u32, scratch: &mut [u32]) {
    mont_mul(out, a, b, m, m0inv, scratch);
}

/// A modulus of any length (RSA): limbs, Montgomery constants, and R^2 mod m for conversions.
#[derive(Clone)]
pub(crate) struct Modulus {
    m: Vec<u32>,
    m0inv: u32,
    /// R^2 mod m, R = 2^(32 * limbs).
    r2: Vec<u32>,
}

impl Modulus {
    /// `m`: little-endian limbs without leading zero limbs; must be odd and > 1.
    pub(crate) fn new(m: Vec<u32>) -> Option<Modulus> {
        let m0 = *m.first()?;
        if m0 & 1 == 0 || m.last() == Some(&0) || (m.len() == 1 && m0 == 1) {
            return None;
        }
        let m0inv = neg_inv(m0);
        let r2 = r_squared(&m, m0inv);
        Some(Modulus { m, m0inv, r2 })
    }

    pub(crate) fn limbs(&self) -> &[u32] {
        &self.m
    }

    /// a * b / R mod m.
    fn mul(&self, out: &mut [u32], a: &[u32], b: &[u32], scratch: &mut [u32]) {
        mont_mul_var(out, a, b, &self.m, self.m0inv, scratch);
    }

    /// base^e mod m for base < m (ordinary form in and out), e > 0.
    pub(crate) fn pow_u64(&self, base: &[u32], e: u64) -> Vec<u32> {
        let n = self.m.len();
        let mut scratch = vec![0u32; n];
        let mut base_m = vec![0u32; n];
        self.mul(&mut base_m, base, &self.r2, &mut scratch);
        let acc = pow_mont(&self.m, self.m0inv, &base_m, e, &mut scratch);
        let mut one = vec![0u32; n];
        if let Some(l) = one.first_mut() {
            *l = 1;
        }
        let mut out = vec![0u32; n];
        self.mul(&mut out, &acc, &one, &mut scratch);
        out
    }
}

/// base^e in the Montgomery domain (base and result in Montgomery form), left to right, e > 0.
fn pow_mont(m: &[u32], m0inv: u32, base: &[u32], e: u64, scratch: &mut [u32]) -> Vec<u32> {
    let mut acc = base.to_vec();
    let mut tmp = vec![0u32; m.len()];
    let top = 63u32.saturating_sub(e.leading_zeros());
    for bit in (0..top).rev() {
        mont_mul_var(&mut tmp, &acc, &acc, m, m0inv, scratch);
        if (e >> bit) & 1 == 1 {
            mont_mul_var(&mut acc, &tmp, base, m, m0inv, scratch);
        } else {
            std::mem::swap(&mut acc, &mut tmp);
        }
    }
    acc
}

/// R^2 mod m, R = 2^(32n), for odd m > 1 of n limbs with a non-zero top limb.
pub(crate) fn r_squared(m: &[u32], m0inv: u32) -> Vec<u32> {
    let n = m.len();
    let bits = 32 * n - m.last().map_or(0, |t| t.leading_zeros() as usize);
    // x = 2^(bits-1) < m (m is odd, so above its top bit's power), then doubled up to 2R mod m,
    // which is 2 in Montgomery form.
    let mut x = vec![0u32; n];
    let top = bits.saturating_sub(1);
    if let Some(l) = x.get_mut(top / 32) {
        *l = 1 << (top % 32);
    }
    let mut tmp = vec![0u32; n];
    for _ in top..=32 * n {
        let carry = add_into(&mut tmp, &x, &x);
        // x < m, so 2x < 2m: one subtraction reduces it.
        if carry || !less_than(&tmp, m) {
            sub_assign(&mut tmp, m);
        }
        std::mem::swap(&mut x, &mut tmp);
    }
    // (2 in Montgomery form)^(32n) = 2^(32n) in Montgomery form = R * R mod m.
    pow_mont(m, m0inv, &x, 32 * n as u64, &mut tmp)
}

fn plain_one<const N: usize>() -> [u32; N] {
    let mut one = [0u32; N];
    if let Some(l) = one.first_mut() {
        *l = 1;
    }
    one
}

fn is_one(a: &[u32]) -> bool {
    a.split_first()
        .is_some_and(|(&low, rest)| low == 1 && is_zero(rest))
}

fn is_even(a: &[u32]) -> bool {
    a.first().is_none_or(|l| l & 1 == 0)
}

/// a >>= 1, with `top` (0 or 1) shifted in as the new highest bit.
pub(crate) fn shr1(a: &mut [u32], top: u32) {
    let mut carry = top;
    for limb in a.iter_mut().rev() {
        let next = *limb & 1;
        *limb = (*limb >> 1) | (carry << 31);
        carry = next;
    }
}

/// A fixed-size prime modulus (the curve fields): values are `[u32; N]`, below the modulus, and
/// in Montgomery form unless a method says otherwise.
pub(crate) struct Field<const N: usize> {
    m: [u32; N],
    m0inv: u32,
    r2: [u32; N],
    /// 1 in Montgomery form (R mod m).
    one: [u32; N],
    /// R^3 mod m: turns the plain inverse of a Montgomery value back into Montgomery form.
    r3: [u32; N],
}

pub(crate) type Fe<const N: usize> = [u32; N];

impl<const N: usize> Field<N> {
    /// `m`: an odd prime with a non-zero top limb.
    pub(crate) fn new(m: [u32; N]) -> Field<N> {
        let m0inv = neg_inv(m.first().copied().unwrap_or(1));
        let mut r2 = [0u32; N];
        copy(&mut r2, &r_squared(&m, m0inv));
        let mut field = Field {
            m,
            m0inv,
            r2,
            one: [0; N],
            r3: [0; N],
        };
        field.one = field.to_mont(&plain_one());
        field.r3 = field.mul(&r2, &r2);
        field
    }

    pub(crate) fn modulus(&self) -> &[u32; N] {
        &self.m
    }

    pub(crate) fn one(&self) -> Fe<N> {
        self.one
    }

    #[inline]
    pub(crate) fn mul(&self, a: &Fe<N>, b: &Fe<N>) -> Fe<N> {
        let mut out = [0u32; N];
        let mut scratch = [0u32; N];
        mont_mul(&mut out, a, b, &self.m, self.m0inv, &mut scratch);
        out
    }

    #[inline]
    pub(crate) fn sqr(&self, a: &Fe<N>) -> Fe<N> {
        self.mul(a, a)
    }

    pub(crate) fn add(&self, a: &Fe<N>, b: &Fe<N>) -> Fe<N> {
        let mut out = [0u32; N];
        let carry = add_into(&mut out, a, b);
        if carry || !less_than(&out, &self.m) {
            sub_assign(&mut out, &self.m);
        }
        out
    }

    pub(crate) fn sub(&self, a: &Fe<N>, b: &Fe<N>) -> Fe<N> {
        let mut out = [0u32; N];
        if sub_into(&mut out, a, b) {
            let mut fixed = [0u32; N];
            add_into(&mut fixed, &out, &self.m);
            return fixed;
        }
        out
    }

    /// Ordinary form (below m) → Montgomery form.
    pub(crate) fn to_mont(&self, a: &Fe<N>) -> Fe<N> {
        self.mul(a, &self.r2)
    }

    /// Montgomery form → ordinary form (verification never needs it: see `ecdsa::verify`).
    #[cfg(test)]
    pub(crate) fn to_plain(&self, a: &Fe<N>) -> Fe<N> {
        self.mul(a, &plain_one())
    }

    /// a^-1 (m prime); 0 for 0. The binary extended Euclidean algorithm on the plain values
    /// (invariants x1·a ≡ u, x2·a ≡ v mod m): several times faster than Fermat's a^(m-2).
    pub(crate) fn invert(&self, a: &Fe<N>) -> Fe<N> {
        let (mut u, mut v) = (*a, self.m);
        let (mut x1, mut x2) = (plain_one(), [0u32; N]);
        // Each round takes at least one bit off u or v, so 64N rounds reach 1 (gcd(a, m) = 1
        // for a prime m and 0 < a < m); the bound only guards the loop.
        for _ in 0..=64 * N {
            if is_zero(&u) || is_zero(&v) {
                break;
            }
            // (a R)^-1 · R^3 / R = a^-1 R.
            if is_one(&u) {
                return self.mul(&x1, &self.r3);
            }
            if is_one(&v) {
                return self.mul(&x2, &self.r3);
            }
            while is_even(&u) {
                shr1(&mut u, 0);
                self.halve(&mut x1);
            }
            while is_even(&v) {
                shr1(&mut v, 0);
                self.halve(&mut x2);
            }
            if less_than(&u, &v) {
                sub_assign(&mut v, &u);
                x2 = self.sub(&x2, &x1);
            } else {
                sub_assign(&mut u, &v);
                x1 = self.sub(&x1, &x2);
            }
        }
        [0; N]
    }

    /// x/2 mod m: x or x + m, whichever is even, shifted right.
    fn halve(&self, x: &mut Fe<N>) {
        let carry = if is_even(x) {
            false
        } else {
            let sum = *x;
            add_into(x, &sum, &self.m)
        };
        shr1(x, u32::from(carry));
    }

    /// Big-endian bytes of exactly the field size → an ordinary-form value, if below m.
    pub(crate) fn decode(&self, bytes: &[u8]) -> Option<Fe<N>> {
        let mut out = [0u32; N];
        (bytes.len() == 4 * N && from_be_bytes(&mut out, bytes) && less_than(&out, &self.m))
            .then_some(out)
    }
}

/// A big-endian hex constant → little-endian limbs, at compile time (only used in `const`
/// items, so a bad constant is a build error, never a runtime panic).
#[allow(clippy::indexing_slicing)]
pub(crate) const fn hex_limbs<const N: usize>(hex: &str) -> [u32; N] {
    let s = hex.as_bytes();
    assert!(s.len() == 8 * N, "hex constant of the wrong length");
    let mut out = [0u32; N];
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        assert!(
            c.is_ascii_digit() || matches!(c, b'a'..=b'f'),
            "not a lower-case hex digit"
        );
        let digit = if c.is_ascii_digit() {
            c - b'0'
        } else {
            c - b'a' + 10
        };
        // Digit i (from the left) lands in limb (len-1-i)/8, nibble (len-1-i)%8.
        let pos = s.len() - 1 - i;
        out[pos / 8] |= (digit as u32) << (4 * (pos % 8));
        i += 1;
    }
    out
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

    /// A small deterministic generator (xorshift) for random-ish operands.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 16) as u32
        }
        fn below(&mut self, m: &[u32]) -> Vec<u32> {
            loop {
                let v: Vec<u32> = m.iter().map(|_| self.next()).collect();
                if less_than(&v, m) {
                    return v;
                }
            }
        }
    }

    /// Reference: (a * b) mod m by schoolbook product and bitwise long division.
    fn mul_mod_ref(a: &[u32], b: &[u32], m: &[u32]) -> Vec<u32> {
        let n = m.len();
        let mut prod = vec![0u32; 2 * n];
        for (i, &x) in a.iter().enumerate() {
            let mut carry = 0u64;
            for (j, &y) in b.iter().enumerate() {
                let v = u64::from(prod[i + j]) + u64::from(x) * u64::from(y) + carry;
                prod[i + j] = v as u32;
                carry = v >> 32;
            }
            prod[i + n] = carry as u32;
        }
        reduce_ref(&prod, m)
    }

    /// x mod m by shift-and-subtract, one bit at a time.
    fn reduce_ref(x: &[u32], m: &[u32]) -> Vec<u32> {
        let n = m.len();
        let mut r = vec![0u32; n + 1];
        let mut m_ext = m.to_vec();
        m_ext.push(0);
        for i in (0..32 * x.len()).rev() {
            // r = 2r + bit
            let mut carry = (x[i / 32] >> (i % 32)) & 1;
            for limb in r.iter_mut() {
                let top = *limb >> 31;
                *limb = (*limb << 1) | carry;
                carry = top;
            }
            if !less_than(&r, &m_ext) {
                sub_assign(&mut r, &m_ext);
            }
        }
        r.truncate(n);
        r
    }

    /// 2^(32 * k) mod m.
    fn pow2_ref(k: usize, m: &[u32]) -> Vec<u32> {
        let mut x = vec![0u32; k + 1];
        x[k] = 1;
        reduce_ref(&x, m)
    }

    const P256: [u32; 8] =
        hex_limbs("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");

    #[test]
    fn hex_limbs_are_little_endian() {
        assert_eq!(P256[0], 0xffff_ffff);
        assert_eq!(P256[6], 1);
        assert_eq!(P256[7], 0xffff_ffff);
        assert_eq!(hex_limbs::<2>("0000000100000002"), [2, 1]);
    }

    #[test]
    fn neg_inv_is_the_montgomery_constant() {
        let mut rng = Rng(7);
        for _ in 0..1000 {
            let m0 = rng.next() | 1;
            assert_eq!(m0.wrapping_mul(neg_inv(m0)), u32::MAX);
        }
        // P-256's p ends in 2^96 - 1: -p^-1 = 1 mod 2^32.
        assert_eq!(neg_inv(P256[0]), 1);
    }

    #[test]
    fn r_squared_matches_the_reference() {
        let mut rng = Rng(11);
        for n in [1, 2, 3, 8, 12, 17, 64] {
            for top_bits in [1, 7, 31, 32] {
                let mut m: Vec<u32> = (0..n).map(|_| rng.next()).collect();
                m[0] |= 1;
                let last = m.len() - 1;
                m[last] = (m[last] | 1 << (top_bits - 1)) & (u32::MAX >> (32 - top_bits));
                if m == [1] {
                    continue;
                }
                let r2 = r_squared(&m, neg_inv(m[0]));
                assert_eq!(r2, pow2_ref(2 * n, &m), "n={n} top_bits={top_bits}");
            }
        }
        assert_eq!(r_squared(&P256, 1), pow2_ref(16, &P256));
    }

    #[test]
    fn mont_mul_matches_the_reference() {
        let mut rng = Rng(3);
        for n in [1, 2, 5, 8, 12, 64] {
            for _ in 0..20 {
                let mut m: Vec<u32> = (0..n).map(|_| rng.next()).collect();
                m[0] |= 1;
                if m[n - 1] == 0 {
                    m[n - 1] = 1;
                }
                let m0inv = neg_inv(m[0]);
                let r2 = r_squared(&m, m0inv);
                let (a, b) = (rng.below(&m), rng.below(&m));
                let mut scratch = vec![0; n];
                let (mut am, mut bm, mut abm, mut ab) =
                    (vec![0; n], vec![0; n], vec![0; n], vec![0; n]);
                mont_mul(&mut am, &a, &r2, &m, m0inv, &mut scratch);
                mont_mul(&mut bm, &b, &r2, &m, m0inv, &mut scratch);
                mont_mul(&mut abm, &am, &bm, &m, m0inv, &mut scratch);
                let mut one = vec![0; n];
                one[0] = 1;
                mont_mul(&mut ab, &abm, &one, &m, m0inv, &mut scratch);
                assert_eq!(ab, mul_mod_ref(&a, &b, &m), "n={n}");
            }
        }
        // Extremes: m - 1 squared, with an all-ones modulus.
        let m = vec![u32::MAX; 8];
        let a = {
            let mut a = m.clone();
            a[0] -= 1;
            a
        };
        let r2 = r_squared(&m, neg_inv(m[0]));
        let modulus = Modulus::new(m.clone()).unwrap();
        assert_eq!(modulus.r2, r2);
        assert_eq!(modulus.pow_u64(&a, 2), mul_mod_ref(&a, &a, &m));
    }

    #[test]
    fn pow_matches_repeated_multiplication() {
        let mut rng = Rng(5);
        let mut m: Vec<u32> = (0..9).map(|_| rng.next()).collect();
        m[0] |= 1;
        let modulus = Modulus::new(m.clone()).unwrap();
        let base = rng.below(&m);
        let mut want = base.clone();
        for e in 1..=20u64 {
            assert_eq!(modulus.pow_u64(&base, e), want, "e={e}");
            want = mul_mod_ref(&want, &base, &m);
        }
        assert!(Modulus::new(vec![2]).is_none());
        assert!(Modulus::new(vec![1]).is_none());
        assert!(Modulus::new(vec![3, 0]).is_none());
        assert!(Modulus::new(vec![]).is_none());
    }

    #[test]
    fn field_operations() {
        let f = Field::new(P256);
        let mut rng = Rng(9);
        for _ in 0..50 {
            let a: [u32; 8] = rng.below(&P256).try_into().unwrap();
            let b: [u32; 8] = rng.below(&P256).try_into().unwrap();
            let (am, bm) = (f.to_mont(&a), f.to_mont(&b));
            assert_eq!(f.to_plain(&am), a);
            assert_eq!(
                f.to_plain(&f.mul(&am, &bm)).to_vec(),
                mul_mod_ref(&a, &b, &P256)
            );
            assert_eq!(f.sub(&f.add(&am, &bm), &bm), am);
            assert_eq!(f.add(&f.sub(&am, &bm), &bm), am);
            assert_eq!(f.mul(&am, &f.invert(&am)), f.one());
        }
        let zero = [0u32; 8];
        assert_eq!(f.invert(&zero), zero);
        let mut p_minus_1 = P256;
        p_minus_1[0] -= 1;
        let pm1 = f.to_mont(&p_minus_1);
        assert_eq!(f.add(&pm1, &f.one()), zero);
        assert_eq!(f.sub(&zero, &f.one()), pm1);
        assert_eq!(f.invert(&pm1), pm1);
        assert_eq!(f.invert(&f.one()), f.one());
        // The scalar field of P-384, through the same code at 12 limbs.
        let n384 = hex_limbs::<12>(concat!(
            "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf",
            "581a0db248b0a77aecec196accc52973"
        ));
        let g = Field::new(n384);
        for _ in 0..20 {
            let a: [u32; 12] = rng.below(&n384).try_into().unwrap();
            let am = g.to_mont(&a);
            assert_eq!(g.mul(&am, &g.invert(&am)), g.one());
        }
        assert_eq!(f.to_plain(&f.sqr(&pm1))[..], [1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn byte_conversions() {
        let f = Field::new(P256);
        let mut bytes = [0u8; 32];
        to_be_bytes(&P256, &mut bytes);
        assert_eq!(bytes[0], 0xff);
        assert_eq!(bytes[4..8], [0, 0, 0, 1]);
        assert!(f.decode(&bytes).is_none(), "p itself");
        bytes[31] = 0xfe;
        let v = f.decode(&bytes).unwrap();
        assert_eq!(v[0], 0xffff_fffe);
        assert!(f.decode(&bytes[1..]).is_none());
        let mut limbs = [0u32; 2];
        assert!(from_be_bytes(&mut limbs, &[1, 2, 3, 4, 5]));
        assert_eq!(limbs, [0x0203_0405, 1]);
        assert!(from_be_bytes(&mut limbs, &[0, 0, 0, 0, 0, 1, 2, 3, 4, 5]));
        assert!(!from_be_bytes(&mut limbs, &[9, 0, 0, 0, 0, 0, 0, 0, 0]));
        let mut out = [0u8; 6];
        to_be_bytes(&[0x0203_0405, 1], &mut out);
        assert_eq!(out, [0, 1, 2, 3, 4, 5]);
    }
}
