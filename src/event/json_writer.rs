//! JSON written straight into the payload buffer.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Writes JSON straight into the payload buffer (no intermediate tree, no per-struct
/// serializer code); strings are escaped by serde_json.
pub(super) struct JsonWriter {
    pub(super) out: Vec<u8>,
    /// No member or element written yet in the innermost object or array.
    pub(super) first: bool,
}

impl JsonWriter {
    pub(super) fn with_capacity(capacity: usize) -> Self {
        JsonWriter {
            out: Vec::with_capacity(capacity),
            first: true,
        }
    }

    pub(super) fn separator(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// A JSON string. Bodies make this the hot loop of event building (a 256 KiB body is
    /// 256 Ki iterations), so runs of plain bytes are copied whole and only the characters
    /// JSON requires escaping (RFC 8259: `"`, `\\`, controls) are escaped — the same output
    /// as serde_json (a unit test compares them), at a fraction of the instructions per byte
    /// in a size-optimised build.
    pub(super) fn string(&mut self, value: &str) {
        self.out.reserve(value.len() + 2);
        self.out.push(b'"');
        let mut rest = value.as_bytes();
        while let Some(at) = rest.iter().position(|b| needs_escape(*b)) {
            let (plain, special) = rest.split_at(at);
            self.out.extend_from_slice(plain);
            if let Some((&byte, tail)) = special.split_first() {
                push_escaped(&mut self.out, byte);
                rest = tail;
            } else {
                rest = &[];
            }
        }
        self.out.extend_from_slice(rest);
        self.out.push(b'"');
    }

    /// The request body: its text as a JSON string, or its bytes in base64 written straight
    /// into the payload (the base64 alphabet needs no escaping: no scan, no copy, no
    /// intermediate string of a body's size).
    pub(super) fn body(&mut self, key: &str, body: &super::EventBody) {
        let bytes = match body {
            super::EventBody::Text(text) => return self.str(key, text),
            super::EventBody::Base64(bytes) => bytes,
        };
        self.key(key);
        self.out.push(b'"');
        let start = self.out.len();
        let length = base64::encoded_len(bytes.len(), true).unwrap_or(0);
        self.out.resize(start + length, 0);
        let written = self
            .out
            .get_mut(start..)
            .and_then(|space| STANDARD.encode_slice(bytes, space).ok())
            .unwrap_or(0);
        self.out.truncate(start + written);
        self.out.push(b'"');
    }

    pub(super) fn key(&mut self, key: &str) {
        self.separator();
        self.string(key);
        self.out.push(b':');
    }

    pub(super) fn begin_object(&mut self) {
        self.out.push(b'{');
        self.first = true;
    }

    pub(super) fn end_object(&mut self) {
        self.out.push(b'}');
        self.first = false;
    }

    pub(super) fn object(&mut self, key: &str) {
        self.key(key);
        self.begin_object();
    }

    pub(super) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.string(value);
    }

    /// `null` when absent.
    pub(super) fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => self.str(key, value),
            None => self.null(key),
        }
    }

    pub(super) fn null(&mut self, key: &str) {
        self.key(key);
        self.out.extend_from_slice(b"null");
    }

    pub(super) fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    pub(super) fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out.extend_from_slice(value.to_string().as_bytes());
    }

    pub(super) fn str_array<'v>(&mut self, key: &str, values: impl IntoIterator<Item = &'v str>) {
        self.key(key);
        self.out.push(b'[');
        self.first = true;
        for value in values {
            self.separator();
            self.string(value);
        }
        self.out.push(b']');
        self.first = false;
    }

    /// `{name: value}` from (name, value) pairs.
    pub(super) fn str_map<'v>(
        &mut self,
        key: &str,
        members: impl IntoIterator<Item = (&'v str, &'v str)>,
    ) {
        self.object(key);
        for (name, value) in members {
            self.str(name, value);
        }
        self.end_object();
    }

    /// `{name: [values]}` from (name, values) pairs.
    pub(super) fn str_array_map<'v, V: AsRef<str> + 'v>(
        &mut self,
        key: &str,
        members: impl IntoIterator<Item = (&'v str, &'v [V])>,
    ) {
        self.object(key);
        for (name, values) in members {
            self.str_array(name, values.iter().map(AsRef::as_ref));
        }
        self.end_object();
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Bytes JSON strings must escape: controls, `"` and `\\` (a table: one load per byte).
pub(super) static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

pub(super) fn needs_escape(byte: u8) -> bool {
    NEEDS_ESCAPE[usize::from(byte)]
}

/// The JSON escape of an ASCII byte that [`needs_escape`], in serde_json's spelling.
pub(super) fn push_escaped(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        0x08 => Some(b'b'),
        0x0c => Some(b'f'),
        _ => None,
    };
    out.push(b'\\');
    match short {
        Some(letter) => out.push(letter),
        None => out.extend_from_slice(&[
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
    }
}
