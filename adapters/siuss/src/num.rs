//! Decimal formatting of integers without allocating, for the hot paths of the mapping (code
//! lookups) and of the writer (numeric attributes). Output is the same as `to_string()` and
//! `format!("{v:0width$}")` for the values written here.

/// The decimal digits of an integer, kept on the stack.
struct Cifre {
    buf: [u8; 20],
    start: usize,
}

impl Cifre {
    fn new(mut v: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(self.digits()).unwrap_or_default()
    }

    fn digits(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Appends the digits, after `zeros` zeros.
    fn push_to(&self, out: &mut String, zeros: usize) {
        let d = self.digits();
        out.reserve(zeros + d.len());
        for _ in 0..zeros {
            out.push('0');
        }
        for &b in d {
            out.push(char::from(b));
        }
    }
}

/// Appends `v` in decimal.
pub(crate) fn push_u64(out: &mut String, v: u64) {
    Cifre::new(v).push_to(out, 0);
}

/// The last decimal digit of `v`.
fn cifra(v: u64) -> char {
    // `v % 10` is below 10, so the cast keeps it whole.
    char::from(b'0' + (v % 10) as u8)
}

/// Appends `v` in decimal, zero-padded on the left to at least `width` digits (`{v:0width$}`).
pub(crate) fn push_pad(out: &mut String, v: u64, width: usize) {
    // Months, days, cents and years: the common widths, written directly.
    match (width, v) {
        (2, 0..100) => {
            out.push(cifra(v / 10));
            out.push(cifra(v));
            return;
        }
        (4, 0..10_000) => {
            out.push(cifra(v / 1000));
            out.push(cifra(v / 100));
            out.push(cifra(v / 10));
            out.push(cifra(v));
            return;
        }
        _ => {}
    }
    let c = Cifre::new(v);
    let zeros = width.saturating_sub(c.digits().len());
    c.push_to(out, zeros);
}

/// `0` to `99` written out, for the codes of the code lists.
const PICCOLI: &str = "0123456789\
    10111213141516171819202122232425262728293031323334353637383940414243444546474849\
    50515253545556575859606162636465666768697071727374757677787980818283848586878889\
    90919293949596979899";

/// Calls `f` with `v` written as `v.to_string()` would write it.
pub(crate) fn with_i32<T>(v: i32, f: impl FnOnce(&str) -> T) -> T {
    match usize::try_from(v) {
        Ok(n @ 0..10) => return f(&PICCOLI[n..=n]),
        Ok(n @ 10..100) => {
            let i = 10 + 2 * (n - 10);
            return f(&PICCOLI[i..i + 2]);
        }
        _ => {}
    }
    let c = Cifre::new(u64::from(v.unsigned_abs()));
    if v < 0 {
        let mut buf = [0u8; 21];
        let s = c.digits();
        buf[0] = b'-';
        buf[1..=s.len()].copy_from_slice(s);
        f(std::str::from_utf8(&buf[..=s.len()]).unwrap_or_default())
    } else {
        f(c.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_as_std_formatting() {
        for v in (0..1100).chain([2025, 9999, 10_000, 65_535, 1_700_000, u64::MAX]) {
            let mut s = String::new();
            push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
            for w in [0, 1, 2, 3, 4, 6] {
                let mut s = String::new();
                push_pad(&mut s, v, w);
                assert_eq!(s, format!("{v:0w$}"));
            }
        }
        for v in (-150..150).chain([123_456, -123_456, i32::MAX, i32::MIN]) {
            assert_eq!(with_i32(v, str::to_string), v.to_string());
        }
    }
}
