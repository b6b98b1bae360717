//! A small strict JSON reader (RFC 8259) and writer, in place of serde_json: serde_json, serde,
//! its map and its float formatting were about 60 KB of the component.
//!
//! Three readers, one per way the component used serde_json, each accepting and refusing what
//! serde_json did (the tests check this against serde_json itself):
//! - `parse`: a `Value` tree, as `serde_json::Value`: nesting depth at most 127, strings valid
//!   UTF-8 with paired surrogates, numbers within f64 range (serde_json refuses a number that
//!   would be infinite). A repeated member name is kept; `Map::get` returns the last one.
//! - `validate`: syntax only, as serde's `IgnoredAny`: no depth limit (it is iterative), string
//!   escapes and control characters checked but not UTF-8 or surrogate pairing.
//! - `parse_fields`: an object read as serde's struct derive reads one: the named members as
//!   `parse` reads values, a repeated named member refused, the other members as `validate`.
//!
//! Numbers keep their source text: nothing here formats floats or parses them from text (one
//! multiplication replays serde_json's overflow check).

use std::cmp::Ordering;

/// serde_json's recursion limit: a value may nest 127 arrays or objects deep.
const DEPTH: u8 = 128;

/// 10^289 ..= 10^308, as serde_json's table has them (correctly rounded literals).
const POW10_HIGH: [f64; 20] = [
    1e289, 1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299, 1e300, 1e301,
    1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
];

/// Callers only need "not JSON": where the input went wrong is of no use to them.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("invalid JSON")]
pub struct JsonError;

type Result<T> = std::result::Result<T, JsonError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    Object(Map<String, Value>),
}

impl Value {
    /// The member `name` of an object; `None` for anything else.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.as_object()?.get(name)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Map<String, Value>> {
        match self {
            Value::Object(map) => Some(map),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// An object's members in document order, spelled `Map<String, Value>` as serde_json's is.
/// A repeated name is kept, and `get` returns its last value: serde_json's map overwrites, so
/// the last one is what the component has always used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map<K, V> {
    members: Vec<(K, V)>,
}

impl<V> Map<String, V> {
    pub fn get(&self, name: &str) -> Option<&V> {
        self.members
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

/// A JSON number as its validated source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number(String);

impl Number {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An integer written as one (no fraction, no exponent) that fits a u64.
    pub fn as_u64(&self) -> Option<u64> {
        digits_u64(self.0.as_bytes())
    }

    /// An integer written as one that fits an i64. `-0` is not one: serde_json reads it as the
    /// float -0.0.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0.as_bytes().split_first() {
            Some((b'-', digits)) => match digits_u64(digits)? {
                0 => None,
                magnitude => 0i64.checked_sub_unsigned(magnitude),
            },
            _ => i64::try_from(self.as_u64()?).ok(),
        }
    }

    /// Floor and ceiling of the value × 10^`shift`, saturating at u64::MAX; `None` if the value
    /// is negative (-0 is zero). Exact on the decimal text, where an f64 would round first.
    pub fn floor_ceil(&self, shift: i64) -> Option<(u64, u64)> {
        let (negative, digits, point) = self.scientific();
        if digits.is_empty() {
            return Some((0, 0));
        }
        if negative {
            return None;
        }
        // 0.DIGITS × 10^point: the first `point` digits are the integer part.
        let whole = usize::try_from(point.saturating_add(shift)).unwrap_or(0);
        if whole > 20 {
            return Some((u64::MAX, u64::MAX));
        }
        let floor = digits
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(whole)
            .try_fold(0u64, |acc, &d| {
                acc.checked_mul(10)?
                    .checked_add(u64::from(d.wrapping_sub(b'0')))
            })
            .unwrap_or(u64::MAX);
        let fraction = digits.len() > whole;
        Some((floor, floor.saturating_add(u64::from(fraction))))
    }

    /// Whether serde_json reads the number as a finite f64. Below 10^308 it always does, from
    /// 10^309 never. In between its own arithmetic decides (without its float_roundtrip feature
    /// it rounds twice, and refuses some numbers that round to f64::MAX): it is replayed here,
    /// a u64 to f64 conversion and one multiplication, so both refuse the same numbers.
    fn fits_f64(&self) -> bool {
        let (_, _, point) = self.scientific();
        match point.cmp(&309) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => {
                let (significand, exponent) = serde_parts(self.0.as_bytes());
                let pow = exponent
                    .checked_sub(289)
                    .and_then(|i| usize::try_from(i).ok())
                    .and_then(|i| POW10_HIGH.get(i));
                match pow {
                    Some(pow) => (significand as f64 * pow).is_finite(),
                    // Not reachable from 10^308 ..< 10^309 with a significand below 2^64.
                    None => exponent < 289,
                }
            }
        }
    }

    /// The number as ±0.DIGITS × 10^point, DIGITS without leading or trailing zeros (empty,
    /// with point 0, for zero). The text is valid JSON number syntax.
    fn scientific(&self) -> (bool, Vec<u8>, i64) {
        let text = self.0.as_bytes();
        let (negative, text) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let (mantissa, exponent) = split_at_byte(text, |b| b == b'e' || b == b'E');
        let (int, frac) = split_at_byte(mantissa, |b| b == b'.');
        let mut digits: Vec<u8> = int
            .iter()
            .chain(frac)
            .copied()
            .skip_while(|&d| d == b'0')
            .collect();
        let leading_zeros = int.len() + frac.len() - digits.len();
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        if digits.is_empty() {
            return (negative, digits, 0);
        }
        let point =
            (int.len() as i64 - leading_zeros as i64).saturating_add(exponent_value(exponent));
        (negative, digits, point)
    }
}

/// The bytes before and after the first byte matching `at` (which is dropped).
fn split_at_byte(text: &[u8], at: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    match text.iter().position(|&b| at(b)) {
        Some(i) => (
            text.get(..i).unwrap_or_default(),
            text.get(i + 1..).unwrap_or_default(),
        ),
        None => (text, &[]),
    }
}

/// The significand and exponent serde_json reads from number text: digits are taken while the
/// significand fits a u64; once one does not, the remaining integer digits only raise the
/// exponent and the remaining fraction digits are dropped.
fn serde_parts(text: &[u8]) -> (u64, i64) {
    let text = text.strip_prefix(b"-").unwrap_or(text);
    let (mantissa, exponent) = split_at_byte(text, |b| b == b'e' || b == b'E');
    let (int, frac) = split_at_byte(mantissa, |b| b == b'.');
    let append = |significand: u64, d: u8| {
        significand
            .checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))
    };
    let (mut significand, mut exp, mut full) = (0u64, 0i64, false);
    for &d in int {
        match append(significand, d) {
            Some(s) if !full => significand = s,
            _ => {
                full = true;
                exp += 1;
            }
        }
    }
    for &d in frac {
        let Some(s) = append(significand, d) else {
            break;
        };
        significand = s;
        exp -= 1;
    }
    (significand, exp.saturating_add(exponent_value(exponent)))
}

/// An exponent's `[+-]digits`, clamped far beyond any exponent that matters.
fn exponent_value(text: &[u8]) -> i64 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let magnitude = digits
        .iter()
        .fold(0i64, |acc, &d| {
            acc.saturating_mul(10)
                .saturating_add(i64::from(d.wrapping_sub(b'0')))
        })
        .min(1 << 40);
    if negative { -magnitude } else { magnitude }
}

/// Decimal digits only, as a u64.
fn digits_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &d| {
        if d.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// A JSON value with nothing but whitespace around it, as `serde_json::from_slice::<Value>`.
pub fn parse(json: &[u8]) -> Result<Value> {
    let mut r = Reader::new(json);
    let value = r.value(DEPTH)?;
    r.end()?;
    Ok(value)
}

/// `parse`, for a document that must be an object.
pub fn parse_object(json: &[u8]) -> Result<Map<String, Value>> {
    match parse(json)? {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError),
    }
}

/// Checks that `json` is one JSON value, building nothing, as `from_slice::<IgnoredAny>`.
pub fn validate(json: &[u8]) -> Result<()> {
    let mut r = Reader::new(json);
    r.skip()?;
    r.end()
}

/// An object's members named in `names`, each as `parse` reads a value (`None` when absent,
/// `Some(Value::Null)` for `null`), as serde's struct derive reads a struct: a repeated named
/// member is refused, so no two readers can disagree over which one counts, and the other
/// members are only checked as `validate` checks. Unlike the derive, a JSON array is refused:
/// it would be read positionally, which no caller wants.
pub fn parse_fields<const N: usize>(json: &[u8], names: [&str; N]) -> Result<[Option<Value>; N]> {
    let mut fields = [const { None }; N];
    read_fields(json, &names, &mut fields)?;
    Ok(fields)
}

/// `parse_fields`, not generic: one copy in the component for every caller.
fn read_fields(json: &[u8], names: &[&str], fields: &mut [Option<Value>]) -> Result<()> {
    let mut r = Reader::new(json);
    if r.skip_ws() != Some(b'{') {
        return Err(JsonError);
    }
    r.pos += 1;
    if r.skip_ws() == Some(b'}') {
        r.pos += 1;
    } else {
        loop {
            let name = r.key()?;
            match names
                .iter()
                .zip(fields.iter_mut())
                .find(|(n, _)| **n == name)
            {
                Some((_, slot)) if slot.is_some() => return Err(JsonError),
                // The object itself is one level.
                Some((_, slot)) => *slot = Some(r.value(DEPTH - 1)?),
                None => r.skip()?,
            }
            if r.after_member(b'}')? {
                break;
            }
        }
    }
    r.end()
}

struct Reader<'a> {
    bytes: &'a [u8],
    /// Never beyond `bytes.len()`: it only advances over bytes already seen.
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Result<()> {
        if self.next() == Some(want) {
            Ok(())
        } else {
            Err(JsonError)
        }
    }

    /// Skips JSON whitespace (not a BOM, not form feeds) and peeks at what follows.
    fn skip_ws(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
        self.peek()
    }

    /// Nothing but whitespace left.
    fn end(&mut self) -> Result<()> {
        match self.skip_ws() {
            None => Ok(()),
            Some(_) => Err(JsonError),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self
            .bytes
            .get(self.pos..)
            .unwrap_or_default()
            .starts_with(word)
        {
            self.pos += word.len();
            Ok(())
        } else {
            Err(JsonError)
        }
    }

    /// After an array item or object member: `true` at `close`, `false` after a comma.
    fn after_member(&mut self, close: u8) -> Result<bool> {
        match self.skip_ws() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(JsonError),
        }
    }

    /// A value, read strictly into a tree; `depth` is how many levels may still be opened.
    fn value(&mut self, depth: u8) -> Result<Value> {
        match self.skip_ws().ok_or(JsonError)? {
            b'n' => self.literal(b"null").map(|()| Value::Null),
            b't' => self.literal(b"true").map(|()| Value::Bool(true)),
            b'f' => self.literal(b"false").map(|()| Value::Bool(false)),
            b'"' => {
                self.pos += 1;
                self.string().map(Value::String)
            }
            b'-' | b'0'..=b'9' => {
                let number = Number(self.number()?.to_owned());
                if number.fits_f64() {
                    Ok(Value::Number(number))
                } else {
                    Err(JsonError)
                }
            }
            b'[' => {
                let depth = nested(depth)?;
                self.pos += 1;
                let mut items = Vec::new();
                if self.skip_ws() == Some(b']') {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth)?);
                    if self.after_member(b']')? {
                        return Ok(Value::Array(items));
                    }
                }
            }
            b'{' => {
                let depth = nested(depth)?;
                self.pos += 1;
                let mut members = Vec::new();
                if self.skip_ws() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Value::Object(Map { members }));
                }
                loop {
                    let name = self.key()?;
                    members.push((name, self.value(depth)?));
                    if self.after_member(b'}')? {
                        return Ok(Value::Object(Map { members }));
                    }
                }
            }
            _ => Err(JsonError),
        }
    }

    /// A member name and its colon, strictly.
    fn key(&mut self) -> Result<String> {
        self.skip_ws();
        self.expect(b'"')?;
        let name = self.string()?;
        self.skip_ws();
        self.expect(b':')?;
        Ok(name)
    }

    /// A member name and its colon, syntax only.
    fn skip_key(&mut self) -> Result<()> {
        self.skip_ws();
        self.expect(b'"')?;
        self.scan_string(None)?;
        self.skip_ws();
        self.expect(b':')
    }

    /// One value, syntax only. Iterative, with the open brackets on the heap: no depth limit,
    /// as serde's `IgnoredAny`, and no stack to exhaust.
    fn skip(&mut self) -> Result<()> {
        // The closing bracket of each open array or object, innermost last.
        let mut open: Vec<u8> = Vec::new();
        loop {
            match self.skip_ws().ok_or(JsonError)? {
                b'n' => self.literal(b"null")?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'"' => {
                    self.pos += 1;
                    self.scan_string(None)?;
                }
                b'-' | b'0'..=b'9' => {
                    self.number()?;
                }
                open_bracket @ (b'[' | b'{') => {
                    self.pos += 1;
                    let close = if open_bracket == b'[' { b']' } else { b'}' };
                    if self.skip_ws() == Some(close) {
                        self.pos += 1;
                    } else {
                        open.push(close);
                        if close == b'}' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                _ => return Err(JsonError),
            }
            // A value is complete: close brackets until a comma starts the next one.
            while let Some(&close) = open.last() {
                if self.after_member(close)? {
                    open.pop();
                } else {
                    if close == b'}' {
                        self.skip_key()?;
                    }
                    break;
                }
            }
            if open.is_empty() {
                return Ok(());
            }
        }
    }

    /// The rest of a string after its opening quote, strictly: valid UTF-8, surrogates paired.
    fn string(&mut self) -> Result<String> {
        let mut out = Vec::new();
        self.scan_string(Some(&mut out))?;
        String::from_utf8(out).map_err(|_| JsonError)
    }

    /// The rest of a string after its opening quote. With `out`, the decoded bytes go there and
    /// `\u` escapes must be valid UTF-16 (the caller checks UTF-8); without, only the escape
    /// syntax and the absence of control characters are checked, as serde_json's skipping does.
    fn scan_string(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<()> {
        loop {
            match self.next().ok_or(JsonError)? {
                b'"' => return Ok(()),
                b'\\' => self.escape(out.as_deref_mut())?,
                0x00..=0x1f => return Err(JsonError),
                b => {
                    if let Some(out) = out.as_deref_mut() {
                        out.push(b);
                    }
                }
            }
        }
    }

    fn escape(&mut self, out: Option<&mut Vec<u8>>) -> Result<()> {
        let c = match self.next().ok_or(JsonError)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                if out.is_none() {
                    return Ok(());
                }
                match unit {
                    // A high surrogate must be followed by an escaped low one.
                    0xD800..=0xDBFF => {
                        self.expect(b'\\')?;
                        self.expect(b'u')?;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(JsonError);
                        }
                        let high = u32::from(unit) - 0xD800;
                        char::from_u32(0x1_0000 + (high << 10 | (u32::from(low) - 0xDC00)))
                            .ok_or(JsonError)?
                    }
                    // A lone low surrogate is no character.
                    _ => char::from_u32(u32::from(unit)).ok_or(JsonError)?,
                }
            }
            _ => return Err(JsonError),
        };
        if let Some(out) = out {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16> {
        let end = self.pos.saturating_add(4);
        let quad = self.bytes.get(self.pos..end).ok_or(JsonError)?;
        let unit = quad.iter().try_fold(0u16, |acc, &h| {
            let digit = char::from(h).to_digit(16)?;
            Some(acc << 4 | digit as u16)
        });
        self.pos = end;
        unit.ok_or(JsonError)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, returned as text.
    fn number(&mut self) -> Result<&'a str> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.next() {
            // No leading zeros: what follows a lone 0 is for the caller to refuse.
            Some(b'0') => {}
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(JsonError),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits1()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits1()?;
        }
        let text = self.bytes.get(start..self.pos).ok_or(JsonError)?;
        std::str::from_utf8(text).map_err(|_| JsonError)
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn digits1(&mut self) -> Result<()> {
        if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
            return Err(JsonError);
        }
        self.digits();
        Ok(())
    }
}

/// One level deeper, if one is left.
fn nested(depth: u8) -> Result<u8> {
    match depth.checked_sub(1) {
        Some(left) if left > 0 => Ok(left),
        _ => Err(JsonError),
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes: `"`, `\` and control
/// characters only, so the bytes are the same as before.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x00..=0x1f => {
                let hex = |n: u8| if n < 10 { b'0' + n } else { b'a' + n - 10 };
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// A compact JSON object, written member by member in call order.
#[derive(Default)]
pub struct ObjectWriter {
    out: Vec<u8>,
}

impl ObjectWriter {
    fn name(&mut self, name: &str) {
        self.out.push(if self.out.is_empty() { b'{' } else { b',' });
        write_str(&mut self.out, name);
        self.out.push(b':');
    }

    pub fn string(&mut self, name: &str, value: &str) {
        self.name(name);
        write_str(&mut self.out, value);
    }

    pub fn strings(&mut self, name: &str, values: &[String]) {
        self.name(name);
        self.out.push(b'[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_str(&mut self.out, value);
        }
        self.out.push(b']');
    }

    pub fn object(&mut self, name: &str, value: ObjectWriter) {
        self.name(name);
        self.out.extend_from_slice(&value.finish());
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.out.is_empty() {
            self.out.push(b'{');
        }
        self.out.push(b'}');
        self.out
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
    use serde::Deserialize;
    use serde::de::IgnoredAny;

    fn number(text: &str) -> Number {
        match parse(text.as_bytes()).unwrap() {
            Value::Number(n) => n,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn string(json: &str) -> Result<String> {
        match parse(json.as_bytes())? {
            Value::String(s) => Ok(s),
            other => panic!("{json}: {other:?}"),
        }
    }

    fn nest(depth: usize) -> Vec<u8> {
        let mut doc = "[".repeat(depth).into_bytes();
        doc.extend("]".repeat(depth).bytes());
        doc
    }

    #[test]
    fn scalars_and_whitespace() {
        assert_eq!(parse(b"null"), Ok(Value::Null));
        assert_eq!(parse(b" \t\r\ntrue \n"), Ok(Value::Bool(true)));
        assert_eq!(parse(b"false"), Ok(Value::Bool(false)));
        for bad in [
            &b""[..],
            b" ",
            b"nul",
            b"nulll",
            b"True",
            b"\x0ctrue",
            b"true\x0c",
            b"\xef\xbb\xbftrue",
            b"\xa0true",
            b"true false",
            b"undefined",
            b"NaN",
            b"Infinity",
            b"'a'",
        ] {
            assert_eq!(parse(bad), Err(JsonError), "{bad:?}");
            assert_eq!(validate(bad), Err(JsonError), "{bad:?}");
        }
    }

    #[test]
    fn numbers() {
        for ok in [
            "0",
            "-0",
            "1",
            "-1",
            "1.5",
            "-0.0",
            "1e5",
            "1E+2",
            "1e-2",
            "0e0",
            "0.0e-0",
            "123456789012345678901234567890",
            "1e-400",
            "-1e-400",
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
        ] {
            assert_eq!(number(ok).as_str(), ok);
            assert_eq!(validate(ok.as_bytes()), Ok(()), "{ok}");
        }
        for bad in [
            "01", "-01", "00", "+1", "-", "1.", ".5", "1.e5", "1e", "1e+", "1e-", "0x10", "1_000",
            "--1", "1.5.5", "1ee5", "- 1",
        ] {
            assert_eq!(parse(bad.as_bytes()), Err(JsonError), "{bad}");
            assert_eq!(validate(bad.as_bytes()), Err(JsonError), "{bad}");
        }
        // serde_json refuses numbers that would be infinite as an f64; skipping does not.
        for huge in [
            "1e309",
            "-1e400",
            "1.8e308",
            "1e99999999999999999999",
            &"9".repeat(400),
        ] {
            assert_eq!(parse(huge.as_bytes()), Err(JsonError), "{huge}");
            assert_eq!(validate(huge.as_bytes()), Ok(()), "{huge}");
        }
    }

    #[test]
    fn integer_accessors() {
        assert_eq!(number("0").as_u64(), Some(0));
        assert_eq!(number("18446744073709551615").as_u64(), Some(u64::MAX));
        assert_eq!(number("18446744073709551616").as_u64(), None);
        assert_eq!(number("-1").as_u64(), None);
        assert_eq!(number("1e2").as_u64(), None);
        assert_eq!(number("1.0").as_u64(), None);
        assert_eq!(number("-9223372036854775808").as_i64(), Some(i64::MIN));
        assert_eq!(number("-9223372036854775809").as_i64(), None);
        assert_eq!(number("9223372036854775807").as_i64(), Some(i64::MAX));
        assert_eq!(number("9223372036854775808").as_i64(), None);
        assert_eq!(number("-42").as_i64(), Some(-42));
        // As in serde_json, -0 is a float, not an integer.
        assert_eq!(number("-0").as_i64(), None);
        assert_eq!(number("-0").as_u64(), None);
        for text in [
            "0",
            "1",
            "-1",
            "-0",
            "1e2",
            "18446744073709551616",
            "-9223372036854775809",
        ] {
            let theirs: serde_json::Number = serde_json::from_str(text).unwrap();
            assert_eq!(number(text).as_u64(), theirs.as_u64(), "{text}");
            assert_eq!(number(text).as_i64(), theirs.as_i64(), "{text}");
        }
    }

    #[test]
    fn floor_and_ceiling() {
        let fc = |text: &str, shift: i64| number(text).floor_ceil(shift);
        assert_eq!(fc("1700000010.9", 0), Some((1_700_000_010, 1_700_000_011)));
        assert_eq!(fc("1700000010", 0), Some((1_700_000_010, 1_700_000_010)));
        assert_eq!(fc("1.7e9", 0), Some((1_700_000_000, 1_700_000_000)));
        assert_eq!(fc("17e8", 0), Some((1_700_000_000, 1_700_000_000)));
        assert_eq!(
            fc("1.70000000005E+9", 0),
            Some((1_700_000_000, 1_700_000_001))
        );
        assert_eq!(fc("0.5", 0), Some((0, 1)));
        assert_eq!(fc("0.000001", 0), Some((0, 1)));
        assert_eq!(fc("1e-400", 0), Some((0, 1)));
        assert_eq!(fc("0", 0), Some((0, 0)));
        assert_eq!(fc("0.000", 0), Some((0, 0)));
        assert_eq!(fc("-0", 0), Some((0, 0)));
        assert_eq!(fc("-0.0e5", 0), Some((0, 0)));
        assert_eq!(fc("-1", 0), None);
        assert_eq!(fc("-0.5", 0), None);
        assert_eq!(fc("-1e-400", 0), None);
        assert_eq!(fc("18446744073709551615", 0), Some((u64::MAX, u64::MAX)));
        assert_eq!(fc("18446744073709551615.5", 0), Some((u64::MAX, u64::MAX)));
        assert_eq!(fc("18446744073709551616", 0), Some((u64::MAX, u64::MAX)));
        assert_eq!(fc("1e300", 0), Some((u64::MAX, u64::MAX)));
        assert_eq!(fc("100.5", 2), Some((10_050, 10_050)));
        // Milliseconds to seconds.
        assert_eq!(fc("1500", -3), Some((1, 2)));
        assert_eq!(fc("1000", -3), Some((1, 1)));
        assert_eq!(fc("1", -3), Some((0, 1)));
        assert_eq!(fc("999.9e3", -3), Some((999, 1000)));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(string(r#""""#), Ok(String::new()));
        assert_eq!(
            string(r#""a\"b\\c\/d\b\f\n\r\t""#),
            Ok("a\"b\\c/d\u{8}\u{c}\n\r\t".into())
        );
        assert_eq!(string(r#""\u00e9\u00E9é""#), Ok("ééé".into()));
        assert_eq!(string(r#""\u0000""#), Ok("\0".into()));
        assert_eq!(string(r#""\ud83d\ude00""#), Ok("😀".into()));
        assert_eq!(string(r#""\uD83D\uDE00x""#), Ok("😀x".into()));
        assert_eq!(string("\"\u{7f}\""), Ok("\u{7f}".into()));
        for bad in [
            r#""abc"#,
            r#""\"#,
            r#""\x""#,
            r#""\U0041""#,
            r#""\u004""#,
            r#""\u004g""#,
            r#""\ud83d""#,
            r#""\ud83dx""#,
            r#""\ud83d\n""#,
            r#""\ud83d\ud83d""#,
            r#""\ude00""#,
            r#""\ude00\ud83d""#,
            "\"\t\"",
            "\"\n\"",
            "\"\u{1f}\"",
        ] {
            assert_eq!(parse(bad.as_bytes()), Err(JsonError), "{bad}");
        }
        // Skipping checks escapes and control characters only, as serde's IgnoredAny does.
        for lenient in [r#""\ud83d""#, r#""\ude00""#, r#""\ud83d\ud83d""#] {
            assert_eq!(validate(lenient.as_bytes()), Ok(()), "{lenient}");
        }
        for invalid_utf8 in [
            &b"\"\xff\""[..],
            b"\"\xc3\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xc0\xaf\"",
        ] {
            assert_eq!(parse(invalid_utf8), Err(JsonError), "{invalid_utf8:?}");
            assert_eq!(validate(invalid_utf8), Ok(()), "{invalid_utf8:?}");
        }
        for bad in [r#""\x""#, r#""\u12""#, "\"\t\"", "\"abc"] {
            assert_eq!(validate(bad.as_bytes()), Err(JsonError), "{bad}");
        }
    }

    #[test]
    fn arrays_and_objects() {
        let v = parse(br#" { "a" : [ 1 , { } , [ ] , "x" ] , "b" : { "c" : null } } "#).unwrap();
        let a = v.get("a").unwrap().as_array().unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a[3].as_str(), Some("x"));
        assert!(v.get("b").unwrap().get("c").unwrap().is_null());
        assert_eq!(v.get("z"), None);
        assert_eq!(a[0].get("a"), None);
        for bad in [
            &b"[1,]"[..],
            b"[,1]",
            b"[1 2]",
            b"[",
            b"]",
            b"[1",
            b"{\"a\":1,}",
            b"{,}",
            b"{\"a\"}",
            b"{\"a\" 1}",
            b"{\"a\":}",
            b"{a:1}",
            b"{'a':1}",
            b"{1:1}",
            b"{\"a\":1 \"b\":2}",
            b"{\"a\":1",
            b"[}",
            b"{]",
            b"[1]]",
            b"{} {}",
        ] {
            assert_eq!(parse(bad), Err(JsonError), "{bad:?}");
            assert_eq!(validate(bad), Err(JsonError), "{bad:?}");
        }
    }

    #[test]
    fn duplicate_names_last_one_wins() {
        let v = parse_object(br#"{"a":1,"b":2,"a":"last"}"#).unwrap();
        assert_eq!(v.get("a").and_then(Value::as_str), Some("last"));
        // Escapes are decoded before names are compared.
        let v = parse_object(br#"{"a":1,"\u0061":2}"#).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Number(Number("2".into()))));
        assert_eq!(parse_object(b"[]"), Err(JsonError));
        assert_eq!(parse_object(b"\"{}\""), Err(JsonError));
    }

    #[test]
    fn depth_is_limited_as_serde_json_limits_it() {
        assert!(parse(&nest(127)).is_ok());
        assert_eq!(parse(&nest(128)), Err(JsonError));
        let objects = |depth: usize| {
            let mut doc = r#"{"a":"#.repeat(depth).into_bytes();
            doc.extend(b"1");
            doc.extend("}".repeat(depth).bytes());
            doc
        };
        assert!(parse(&objects(127)).is_ok());
        assert_eq!(parse(&objects(128)), Err(JsonError));
        // Hostile depth is an error, not a stack overflow.
        assert_eq!(parse(&nest(1_000_000)), Err(JsonError));
        // Skipping has no depth limit and no recursion.
        assert_eq!(validate(&nest(1_000_000)), Ok(()));
        assert_eq!(validate(&objects(100_000)), Ok(()));
        let mut unclosed = nest(100_000);
        unclosed.pop();
        assert_eq!(validate(&unclosed), Err(JsonError));
    }

    #[test]
    fn fields_are_read_as_a_struct_derive_reads_them() {
        let names = ["alg", "kid"];
        let [alg, kid] = parse_fields(br#"{"alg":"ES256","x":1,"alg2":[]}"#, names).unwrap();
        assert_eq!(alg, Some(Value::String("ES256".into())));
        assert_eq!(kid, None);
        let [_, kid] = parse_fields(br#"{"kid":null}"#, names).unwrap();
        assert_eq!(kid, Some(Value::Null));
        assert_eq!(parse_fields(b"{}", names), Ok([None, None]));
        // A repeated named member is refused; a repeated other member is not.
        assert_eq!(
            parse_fields(br#"{"alg":"a","alg":"a"}"#, names),
            Err(JsonError)
        );
        assert_eq!(
            parse_fields(br#"{"alg":"a","\u0061lg":"a"}"#, names),
            Err(JsonError)
        );
        assert!(parse_fields(br#"{"x":1,"x":2,"alg":"a"}"#, names).is_ok());
        // Other members are only skipped: lone surrogates, huge numbers and deep nesting pass.
        let mut deep = br#"{"x":"#.to_vec();
        deep.extend(nest(500));
        deep.extend(br#","y":"\ud800","z":1e999}"#);
        assert!(parse_fields(&deep, names).is_ok());
        // Named members are read strictly, and the object counts as one level.
        assert_eq!(parse_fields(br#"{"alg":"\ud800"}"#, names), Err(JsonError));
        assert_eq!(parse_fields(br#"{"alg":1e999}"#, names), Err(JsonError));
        let mut deep = br#"{"alg":"#.to_vec();
        deep.extend(nest(126));
        deep.push(b'}');
        assert!(parse_fields(&deep, names).is_ok());
        let mut deep = br#"{"alg":"#.to_vec();
        deep.extend(nest(127));
        deep.push(b'}');
        assert_eq!(parse_fields(&deep, names), Err(JsonError));
        // Names are read strictly.
        assert_eq!(parse_fields(br#"{"\ud800":1}"#, names), Err(JsonError));
        for bad in [
            &b"[\"ES256\"]"[..],
            b"\"x\"",
            b"null",
            b"",
            b"{\"alg\":\"a\"} x",
            b"{\"alg\":\"a\",}",
        ] {
            assert_eq!(parse_fields(bad, names), Err(JsonError), "{bad:?}");
        }
    }

    #[test]
    fn writing_matches_serde_json_byte_for_byte() {
        let all: String = (0u8..0x80).map(char::from).collect();
        for s in [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "é 😀 \u{2028}\u{2029} \u{fffd}",
            all.as_str(),
        ] {
            let mut ours = Vec::new();
            write_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
            assert_eq!(
                string(std::str::from_utf8(&ours).unwrap()),
                Ok(s.to_owned())
            );
        }
        let mut inner = ObjectWriter::default();
        inner.string("k", "v\n");
        let mut outer = ObjectWriter::default();
        outer.object("o", inner);
        outer.strings("list", &["a".into(), "\"b\"".into()]);
        outer.strings("none", &[]);
        outer.object("empty", ObjectWriter::default());
        assert_eq!(
            String::from_utf8(outer.finish()).unwrap(),
            r#"{"o":{"k":"v\n"},"list":["a","\"b\""],"none":[],"empty":{}}"#
        );
        assert_eq!(ObjectWriter::default().finish(), b"{}");
    }

    // ---- Differential tests against serde_json ----

    /// Our tree as serde_json's: objects collected in order, so a repeated name keeps its last
    /// value as serde_json's map does.
    fn to_serde(v: &Value) -> serde_json::Value {
        match v {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::from_str(n.as_str()).unwrap(),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(items) => serde_json::Value::Array(items.iter().map(to_serde).collect()),
            Value::Object(map) => serde_json::Value::Object(
                map.members
                    .iter()
                    .map(|(k, v)| (k.clone(), to_serde(v)))
                    .collect(),
            ),
        }
    }

    /// A member as present in the JSON, `null` included: what the JWT header used to be read
    /// with.
    #[derive(Default, Debug, PartialEq)]
    enum Member {
        #[default]
        Absent,
        Present(serde_json::Value),
    }

    impl<'de> Deserialize<'de> for Member {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            serde_json::Value::deserialize(d).map(Member::Present)
        }
    }

    #[derive(Deserialize)]
    struct Fields {
        #[serde(default)]
        alg: Member,
        #[serde(default)]
        kid: Member,
    }

    /// `input` is accepted or refused alike by each reader and its serde_json counterpart, and
    /// read to the same values.
    fn agree(input: &[u8]) {
        let ours = parse(input);
        let theirs = serde_json::from_slice::<serde_json::Value>(input);
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "parse {:?}: {theirs:?}",
            String::from_utf8_lossy(input)
        );
        if let (Ok(ours), Ok(theirs)) = (&ours, &theirs) {
            assert_eq!(
                &to_serde(ours),
                theirs,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            validate(input).is_ok(),
            serde_json::from_slice::<IgnoredAny>(input).is_ok(),
            "validate {:?}",
            String::from_utf8_lossy(input)
        );
        let ours = parse_fields(input, ["alg", "kid"]);
        let theirs = serde_json::from_slice::<Fields>(input);
        let positional = input.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        if positional {
            // The derive also reads an array positionally; `parse_fields` refuses it.
            assert!(ours.is_err());
            return;
        }
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "parse_fields {:?}",
            String::from_utf8_lossy(input)
        );
        if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
            let member = |m: &Option<Value>| match m {
                None => Member::Absent,
                Some(v) => Member::Present(to_serde(v)),
            };
            assert_eq!(
                (member(&ours[0]), member(&ours[1])),
                (theirs.alg, theirs.kid)
            );
        }
    }

    const TRICKY: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "-0",
        "-0.0",
        "1",
        "-1",
        "1.5",
        "1e5",
        "1E5",
        "1e+5",
        "1E-5",
        "1.5e5",
        "0e0",
        "0.0",
        "00",
        "01",
        "-01",
        "1.",
        ".1",
        "+1",
        "1e",
        "1e+",
        "-",
        "--1",
        "0x1",
        "1.0e",
        "2.e3",
        "123456789012345678901234567890",
        "-123456789012345678901234567890",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "1e308",
        "1e309",
        "-1e309",
        "1e400",
        "1e-400",
        "-1e-400",
        "0e999999999999",
        "1e999999999999",
        "1e-999999999999",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.79769313486231580793e308",
        "1.797693134862315808e308",
        "1.7976931348623159e308",
        "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497791",
        "1.8e308",
        "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "\"\"",
        "\"a\"",
        "\"\\\"\"",
        "\"\\\\\"",
        "\"\\/\"",
        "\"\\b\\f\\n\\r\\t\"",
        "\"\\u0041\"",
        "\"\\u00e9\"",
        "\"\\u00E9\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\ud83d\\u0041\"",
        "\"\\ud83dx\"",
        "\"\\ud83d\\\"",
        "\"\\ud83d\\ud83d\\ude00\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"\\x\"",
        "\"\\\"",
        "\"abc",
        "\"\t\"",
        "\"\u{7f}\"",
        "\"é\"",
        "\"😀\"",
        "[]",
        "{}",
        "[1]",
        "[1,]",
        "[,]",
        "[,1]",
        "[1,,2]",
        "[1 2]",
        "[[]]",
        "[[]",
        "[]]",
        "[{}]",
        "{\"a\":1}",
        "{\"a\":1,}",
        "{\"a\" : 1 , \"b\" : 2}",
        "{\"a\"}",
        "{\"a\":}",
        "{:1}",
        "{a:1}",
        "{'a':1}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":1,\"a\":2}",
        "{\"\\u0061\":1,\"a\":2}",
        "{\"alg\":\"x\"}",
        "{\"alg\":\"x\",\"alg\":\"y\"}",
        "{\"alg\":null}",
        "{\"kid\":[1,{\"a\":null}],\"alg\":1}",
        "{\"x\":\"\\ud800\"}",
        "{\"alg\":\"\\ud800\"}",
        "{\"x\":1e999}",
        "{\"alg\":1e999}",
        "{\"\\ud800\":1}",
        "{\"x\":1,\"x\":2}",
        "[\"a\",\"b\"]",
        "[null]",
        " 1 ",
        "\t\n\r 1",
        "1 2",
        "1,",
        "1]",
        "\u{c}1",
        "1\u{c}",
        "\u{feff}1",
        "\u{a0}1",
        "nul",
        "nulll",
        "tru",
        "truex",
        "falsey",
        "NaN",
        "Infinity",
        "-Infinity",
        "undefined",
        "",
        " ",
        "/* */1",
        "1//",
    ];

    #[test]
    fn agrees_with_serde_json_on_tricky_inputs() {
        for input in TRICKY {
            agree(input.as_bytes());
        }
        for invalid_utf8 in [
            &b"\"\xff\""[..],
            b"\"\xc3\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xc0\xaf\"",
            b"\xff",
            b"{\"x\":\"\xff\"}",
        ] {
            agree(invalid_utf8);
        }
        for depth in [1, 126, 127, 128, 129, 10_000] {
            agree(&nest(depth));
            let mut field = br#"{"alg":"#.to_vec();
            field.extend(nest(depth));
            field.push(b'}');
            agree(&field);
            let mut other = br#"{"x":"#.to_vec();
            other.extend(nest(depth));
            other.push(b'}');
            agree(&other);
        }
    }

    /// A small deterministic generator (xorshift64*), so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn agrees_with_serde_json_on_mutated_inputs() {
        let mut accepted = [0usize; 3];
        // Bytes that matter to a JSON reader.
        const ALPHABET: &[u8] =
            b"{}[]:,\"\\/ \t\n\r0123456789-+.eEabfnrtu\x00\x1f\x7f\xc3\xa9\xed\xff";
        let seeds: Vec<&[u8]> = TRICKY
            .iter()
            .map(|s| s.as_bytes())
            .chain([
                &br#"{"alg":"ES256","kid":"k1","typ":"JWT","crit":["b64"],"x":[1,-2.5e-3,true,null,{"y":"\u00e9\ud83d\ude00"}]}"#[..],
                br#"{"request_id":"req_1","allowed":false,"reason":"rate_limited","retry_after":1500,"metadata":{}}"#,
                br#"[{"a":[[],{}],"b":"c\n"},0.5,-0,1E+2,"\\\"\/"]"#,
            ])
            .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..50_000 {
            let mut input = seeds[rng.below(seeds.len())].to_vec();
            for _ in 0..=rng.below(4) {
                let at = rng.below(input.len() + 1);
                let byte = ALPHABET[rng.below(ALPHABET.len())];
                match rng.below(3) {
                    0 => input.insert(at, byte),
                    1 if at < input.len() => input[at] = byte,
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.push(byte),
                }
            }
            agree(&input);
            accepted[0] += parse(&input).is_ok() as usize;
            accepted[1] += validate(&input).is_ok() as usize;
            accepted[2] += parse_fields(&input, ["alg", "kid"]).is_ok() as usize;
        }
        // Enough of the mutants stay valid for acceptance to be tested too, not only refusal.
        assert!(accepted.iter().all(|&n| n > 500), "{accepted:?}");
    }

    #[test]
    fn agrees_with_serde_json_next_to_f64_max() {
        // Numbers from 10^308 to 10^309 in many spellings, most of them within an ulp or two of
        // f64::MAX (1.7976931348623157e308), where serde_json's own rounding decides.
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut finite = [0usize; 2];
        for _ in 0..20_000 {
            let mut digits =
                String::from(["1797693134862315", "179769313486231", "1", "9"][rng.below(4)]);
            for _ in 0..rng.below(30) {
                digits.push(char::from(b'0' + rng.below(10) as u8));
            }
            // Place the point anywhere and compensate with the exponent: the value stays in
            // [10^308, 10^309).
            let int_len = 1 + rng.below(digits.len());
            let exp = 309 - int_len as i64;
            let (int, frac) = digits.split_at(int_len);
            let sign = if rng.below(2) == 0 { "" } else { "-" };
            let text = match (frac.is_empty(), rng.below(2)) {
                (true, _) => format!("{sign}{int}e{exp}"),
                (false, 0) => format!("{sign}{int}.{frac}e{exp}"),
                (false, _) => format!("{sign}{int}.{frac}E+{exp}"),
            };
            agree(text.as_bytes());
            finite[usize::from(parse(text.as_bytes()).is_ok())] += 1;
        }
        assert!(finite.iter().all(|&n| n > 1000), "{finite:?}");
        let max = format!("{}", f64::MAX);
        assert_eq!(max.len(), 309);
        agree(max.as_bytes());
        agree(format!("{max}.9").as_bytes());
    }

    #[test]
    fn agrees_with_serde_json_on_the_wycheproof_documents() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/wycheproof");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("SKIPPED: no test data at {}", dir.display());
            return;
        };
        let mut read = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                agree(&std::fs::read(&path).unwrap());
                read += 1;
            }
        }
        assert!(read > 0, "no JSON documents in {}", dir.display());
    }
}
