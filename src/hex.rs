//! Lower-case hex of bytes, appended to a string (cache keys, attempt keys). The signer keeps
//! its own stack-only digest hex (`aws::sigv4`), tuned for its hot path.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(2 * bytes.len());
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lower_case_two_digits_per_byte() {
        let mut out = String::from("k/");
        super::push_hex(&mut out, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(out, "k/000fa5ff");
    }
}
