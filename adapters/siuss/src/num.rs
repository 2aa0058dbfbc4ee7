//! Decimal formatting of integers without allocating, for the code lookups of the mapping.
//! Output is the same as `to_string()`.

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
            // `v % 10` is below 10, so the cast keeps it whole.
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
    fn same_as_to_string() {
        for v in (-150..150).chain([123_456, -123_456, i32::MAX, i32::MIN]) {
            assert_eq!(with_i32(v, str::to_string), v.to_string());
        }
    }
}
