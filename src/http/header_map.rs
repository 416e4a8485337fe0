//! The proxy-wasm header map encoding (ABI 0.2.1), for the host calls in `filter::host`.

use super::HeaderList;

/// The proxy-wasm map encoding: pair count, then each name and value length (u32 LE),
/// then each name and value followed by a NUL. The pairs are walked twice (size, then
/// bytes), so that no list of them has to be collected first.
pub fn serialize<'a, I>(pairs: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
    I::IntoIter: Clone,
{
    let pairs = pairs.into_iter();
    let (count, text) = pairs.clone().fold((0, 0), |(count, text), (name, value)| {
        (count + 1, text + name.len() + value.len() + 2)
    });
    let size = 4 + 8 * count + text;
    // Zeroed (the NULs) and written in place: `extend_from_slice` per piece stays a chain
    // of calls in the size-optimised build.
    let mut bytes = vec![0u8; size];
    let mut lengths = 4;
    let mut strings = 4 + 8 * count;
    put(&mut bytes, 0, &(count as u32).to_le_bytes());
    for (name, value) in pairs {
        put(&mut bytes, lengths, &(name.len() as u32).to_le_bytes());
        put(&mut bytes, lengths + 4, &(value.len() as u32).to_le_bytes());
        lengths += 8;
        put(&mut bytes, strings, name.as_bytes());
        strings += name.len() + 1;
        put(&mut bytes, strings, value.as_bytes());
        strings += value.len() + 1;
    }
    bytes
}

/// Copies `piece` into `bytes` at `at` (always in bounds: the map's size is computed first).
#[inline(always)]
fn put(bytes: &mut [u8], at: usize, piece: &[u8]) {
    if let Some(target) = bytes.get_mut(at..at + piece.len()) {
        target.copy_from_slice(piece);
    }
}

/// The proxy-wasm map encoding (see [`serialize`]); stops at the first pair that does
/// not fit in `bytes`. Bytes that are not UTF-8 (obs-text, 0x80-0xFF, is valid in a header
/// value) are taken as U+FFFD.
pub fn deserialize(bytes: &[u8]) -> HeaderList {
    let u32_at = |at: usize| {
        bytes
            .get(at..at.checked_add(4)?)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(|b| u32::from_le_bytes(b) as usize)
    };
    let Some(count) = u32_at(0) else {
        return HeaderList::default();
    };
    let mut pairs = HeaderList::with_capacity(count.min(bytes.len() / 8), bytes.len());
    let mut strings = 4usize.saturating_add(count.saturating_mul(8));
    for index in 0..count {
        // Checked: on wasm32 a corrupt count or length must not wrap around.
        let Some(lengths_at) = index.checked_mul(8).and_then(|at| at.checked_add(4)) else {
            break;
        };
        let (Some(name_len), Some(value_len)) = (
            u32_at(lengths_at),
            lengths_at.checked_add(4).and_then(u32_at),
        ) else {
            break;
        };
        let name_at = strings;
        let value_at = name_at.saturating_add(name_len).saturating_add(1);
        strings = value_at.saturating_add(value_len).saturating_add(1);
        let (Some(name), Some(value)) = (
            bytes.get(name_at..name_at.saturating_add(name_len)),
            bytes.get(value_at..value_at.saturating_add(value_len)),
        ) else {
            break;
        };
        match (std::str::from_utf8(name), std::str::from_utf8(value)) {
            (Ok(name), Ok(value)) => pairs.push(name, value),
            _ => pairs.push(
                &String::from_utf8_lossy(name),
                &String::from_utf8_lossy(value),
            ),
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_deserialization() {
        let pairs = [(":status", "200"), ("x-empty", ""), ("content-type", "a/b")];
        let bytes = serialize(pairs);
        assert_eq!(deserialize(&bytes), HeaderList::from(pairs.to_vec()));
        assert!(deserialize(&[]).is_empty());
        // Truncated: the pairs that fit.
        assert_eq!(
            deserialize(&bytes[..bytes.len() - 5]),
            HeaderList::from(pairs[..2].to_vec())
        );
        assert!(deserialize(&[9, 0, 0, 0, 1]).is_empty());
        // Counts and lengths near u32::MAX end the map instead of wrapping.
        assert!(
            deserialize(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0]).is_empty()
        );
        assert!(deserialize(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, b'a']).is_empty());
        // Not UTF-8 (obs-text): replaced, no panic.
        let mut latin1 = serialize([("x-name", "caf?")]);
        let at = latin1.len() - 2;
        latin1[at] = 0xe9;
        assert_eq!(
            deserialize(&latin1),
            HeaderList::from(vec![("x-name", "caf\u{fffd}")])
        );
    }

    #[test]
    fn map_serialization() {
        assert_eq!(serialize([]), vec![0, 0, 0, 0]);
        let bytes = serialize([(":path", "/x"), ("a", "")]);
        let mut expected = vec![2, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b":path\0/x\0a\0\0");
        assert_eq!(bytes, expected);
    }
}
