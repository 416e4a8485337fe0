//! The canonical request: validated and normalised as `aws-sigv4` (through `http`) would,
//! kept as a template whose per-request values (payload hash, date, token) are slots.

use std::borrow::Cow;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use sha2::{Digest, Sha256};

use super::key::*;
use super::request::*;

/// `aws-smithy-http`'s query encode set (every byte but the unreserved ones).
pub(super) const QUERY_ENCODE_SET: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b':')
    .add(b',')
    .add(b'?')
    .add(b'#')
    .add(b'[')
    .add(b']')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'@')
    .add(b'!')
    .add(b'$')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b';')
    .add(b'=')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'"')
    .add(b'^')
    .add(b'`')
    .add(b'\\');

/// The path ("greedy label") encode set: as the query's, but `/` stays
/// ([`push_path_encoded`] writes it).
#[cfg(test)]
pub(super) const PATH_ENCODE_SET: &AsciiSet = &QUERY_ENCODE_SET.remove(b'/');

/// A value that changes from one signature to the next, cut out of a [`CanonicalTemplate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    PayloadHash,
    DateTime,
    Token,
}

/// The canonical request of the last request signed, with its per-request values (payload
/// hash, date, token) cut out, and what it was made from. Requests to the same function
/// (same method, host, path, query and signed headers) only fill in the slots: nothing is
/// validated, normalized, encoded or sorted again. Also keeps the SHA-256 state after the
/// whole blocks before the first slot, so those are hashed once, not on every signature.
/// Never holds a value of a slot (the token in particular).
pub(super) struct CanonicalTemplate {
    pub(super) method: String,
    pub(super) host: String,
    pub(super) path_and_query: String,
    pub(super) headers: Vec<(String, String)>,
    content_sha256_header: bool,
    pub(super) with_token: bool,
    /// The canonical request without the slots' values.
    pub(super) pieces: Vec<u8>,
    /// Where each value goes in `pieces`, in order.
    pub(super) slots: Vec<(usize, Slot)>,
    /// `content-type;host;…`, as signed.
    pub(super) signed_headers: String,
    /// Length of the whole blocks of `pieces` before the first slot, and the hash state
    /// after them.
    pub(super) blocks_len: usize,
    pub(super) state: Sha256,
}

/// The request as it goes into the canonical request, validated as `aws-sigv4` (through
/// `http`) would.
pub(super) struct CanonicalParts<'a> {
    pub(super) method: &'a str,
    pub(super) path: Cow<'a, str>,
    pub(super) query: &'a str,
    /// The signed headers, in request order.
    pub(super) headers: Vec<SignedHeader<'a>>,
}

/// A signed header's name and its value, or the slot of a per-request value.
pub(super) type SignedHeader<'a> = (Cow<'a, str>, Result<Cow<'a, str>, Slot>);

impl<'a> CanonicalParts<'a> {
    pub(super) fn new(
        request: &'a RequestToSign<'a>,
        token: Option<&str>,
    ) -> Result<Self, SigningError> {
        check_host(request.host)?;
        // `aws-sigv4` parses `https://{host}{path_and_query}` as a URI.
        if "https://".len() + request.host.len() + request.path_and_query.len() > MAX_URI_LEN {
            return Err(SigningError::new("URI too long"));
        }
        let (path, query) = split_path_and_query(request.path_and_query)?;
        if let Some(token) = token {
            check_header_value(token)?;
        }

        let mut headers = Vec::with_capacity(request.headers.len() + 4);
        headers.push((
            Cow::Borrowed("host"),
            Ok(normalize_header_value(request.host)?),
        ));
        for (name, value) in request.headers {
            let name = header_name(name)?;
            let value = normalize_header_value(value)?;
            // Those `aws-sigv4` replaces with its own values, or never signs.
            let replaced = name == X_AMZ_DATE
                || (name == X_AMZ_SECURITY_TOKEN && token.is_some())
                || (name == X_AMZ_CONTENT_SHA256 && request.content_sha256_header);
            if replaced || EXCLUDED_HEADERS.contains(&name.as_ref()) {
                continue;
            }
            headers.push((name, Ok(value)));
        }
        headers.push((Cow::Borrowed(X_AMZ_DATE), Err(Slot::DateTime)));
        if token.is_some() {
            headers.push((Cow::Borrowed(X_AMZ_SECURITY_TOKEN), Err(Slot::Token)));
        }
        if request.content_sha256_header {
            headers.push((Cow::Borrowed(X_AMZ_CONTENT_SHA256), Err(Slot::PayloadHash)));
        }

        Ok(CanonicalParts {
            method: request.method,
            path: normalize_uri_path(path),
            query,
            headers,
        })
    }

    /// The canonical request with slots for the per-request values.
    pub(super) fn template(mut self, request: &RequestToSign<'_>) -> CanonicalTemplate {
        // Stable: values of a repeated header keep their order.
        insertion_sort_by(&mut self.headers, |a, b| a.0 > b.0);

        let headers_len: usize = self
            .headers
            .iter()
            .map(|(name, value)| 2 * name.len() + value.as_ref().map_or(0, |v| v.len()) + 2)
            .sum();
        let mut pieces = Vec::with_capacity(
            self.method.len() + 3 * self.path.len() + 2 * self.query.len() + headers_len + 8,
        );
        let mut slots = Vec::with_capacity(4);
        pieces.extend_from_slice(self.method.as_bytes());
        pieces.push(b'\n');
        // Already encoded on the wire: encoded again (`%` becomes `%25`), as `aws-sigv4`
        // does for every service but S3.
        push_path_encoded(&mut pieces, &self.path);
        pieces.push(b'\n');
        pieces.extend_from_slice(canonical_query(self.query).as_bytes());
        pieces.push(b'\n');

        let mut signed_headers = String::with_capacity(headers_len / 2);
        let mut previous: Option<&str> = None;
        for (name, value) in &self.headers {
            if previous == Some(name.as_ref()) {
                pieces.push(b',');
            } else {
                if previous.is_some() {
                    pieces.push(b'\n');
                    signed_headers.push(';');
                }
                signed_headers.push_str(name);
                pieces.extend_from_slice(name.as_bytes());
                pieces.push(b':');
            }
            match value {
                Ok(value) => pieces.extend_from_slice(value.as_bytes()),
                Err(slot) => slots.push((pieces.len(), *slot)),
            }
            previous = Some(name);
        }
        pieces.extend_from_slice(b"\n\n");
        pieces.extend_from_slice(signed_headers.as_bytes());
        pieces.push(b'\n');
        slots.push((pieces.len(), Slot::PayloadHash));

        let first_slot = slots.first().map_or(pieces.len(), |(at, _)| *at);
        let blocks_len = first_slot - first_slot % 64;
        let state = Sha256::new_with_prefix(pieces.get(..blocks_len).unwrap_or_default());
        CanonicalTemplate {
            method: request.method.to_string(),
            host: request.host.to_string(),
            path_and_query: request.path_and_query.to_string(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            content_sha256_header: request.content_sha256_header,
            with_token: self.headers.iter().any(|(_, v)| *v == Err(Slot::Token)),
            pieces,
            slots,
            signed_headers,
            blocks_len,
            state,
        }
    }
}

impl CanonicalTemplate {
    /// Whether `request` (with a session token or not) has this canonical request.
    pub(super) fn made_from(&self, request: &RequestToSign<'_>, with_token: bool) -> bool {
        self.with_token == with_token
            && self.content_sha256_header == request.content_sha256_header
            && self.method == request.method
            && self.host == request.host
            && self.path_and_query == request.path_and_query
            && self.headers.len() == request.headers.len()
            && self
                .headers
                .iter()
                .zip(request.headers)
                .all(|((n, v), (name, value))| n == name && v == value)
    }

    pub(super) fn sign(
        &self,
        key: &CachedKey,
        payload_hash: &str,
        date_time: &str,
        token: Option<&str>,
    ) -> Vec<(&'static str, String)> {
        // The canonical request after the hashed blocks: the rest of the pieces, slots
        // filled in.
        let value = |slot: Slot| match slot {
            Slot::PayloadHash => payload_hash,
            Slot::DateTime => date_time,
            Slot::Token => token.unwrap_or_default(),
        };
        let values_len: usize = self.slots.iter().map(|(_, slot)| value(*slot).len()).sum();
        let mut rest = Vec::with_capacity(self.pieces.len() - self.blocks_len + values_len);
        let mut at = self.blocks_len;
        for &(slot_at, slot) in &self.slots {
            rest.extend_from_slice(self.pieces.get(at..slot_at).unwrap_or_default());
            rest.extend_from_slice(value(slot).as_bytes());
            at = slot_at;
        }
        rest.extend_from_slice(self.pieces.get(at..).unwrap_or_default());
        let mut hasher = self.state.clone();
        hasher.update(&rest);
        let creq_hash = hex_digest(&hasher.finalize());

        // The string to sign, fed to the HMAC in pieces.
        let signature = key.signature(&[
            ALGORITHM.as_bytes(),
            b"\n",
            date_time.as_bytes(),
            b"\n",
            key.scope.as_bytes(),
            b"\n",
            &creq_hash,
        ]);
        let mut authorization = String::with_capacity(
            ALGORITHM.len()
                + key.access_key_id.len()
                + key.scope.len()
                + self.signed_headers.len()
                + 64
                + 45,
        );
        for part in [
            ALGORITHM,
            " Credential=",
            key.access_key_id.as_str(),
            "/",
            key.scope.as_str(),
            ", SignedHeaders=",
            self.signed_headers.as_str(),
            ", Signature=",
            ascii_str(&signature),
        ] {
            authorization.push_str(part);
        }

        let mut out = Vec::with_capacity(4);
        out.push((X_AMZ_DATE, date_time.to_string()));
        out.push(("authorization", authorization));
        if self.content_sha256_header {
            out.push((X_AMZ_CONTENT_SHA256, payload_hash.to_string()));
        }
        if let Some(token) = token {
            out.push((X_AMZ_SECURITY_TOKEN, token.to_string()));
        }
        out
    }
}

/// `http`'s URI length limit.
pub(super) const MAX_URI_LEN: usize = u16::MAX as usize - 1;

/// Host names, IPv4 and bracketed IPv6 literals, with an optional port: a subset of what
/// `http` accepts as an authority (anything else is refused rather than signed differently).
pub(super) fn check_host(host: &str) -> Result<(), SigningError> {
    let bad = || Err(SigningError::new("invalid host"));
    let bytes = host.as_bytes();
    let (name_end, port) = if bytes.first() == Some(&b'[') {
        let Some(close) = host.find(']') else {
            return bad();
        };
        let literal = &bytes[1..close];
        if literal.is_empty()
            || literal.iter().filter(|b| **b == b':').count() > 7
            || !literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
        {
            return bad();
        }
        (close + 1, &host[close + 1..])
    } else {
        let end = host.find(':').unwrap_or(host.len());
        let name = &bytes[..end];
        if name.is_empty()
            || !name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return bad();
        }
        (end, &host[end..])
    };
    let port_ok = port.is_empty()
        || (port.starts_with(':') && port.bytes().skip(1).all(|b| b.is_ascii_digit()));
    if name_end == 0 || !port_ok {
        return bad();
    }
    Ok(())
}

/// The path (fragment dropped) and the query of `path_and_query`, with the characters `http`
/// accepts in each.
pub(super) fn split_path_and_query(path_and_query: &str) -> Result<(&str, &str), SigningError> {
    let bytes = path_and_query.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(SigningError::new("path does not start with /"));
    }
    let mut query_start = None;
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate() {
        let ok = match query_start {
            None => match b {
                b'?' => {
                    query_start = Some(i);
                    continue;
                }
                b'#' => {
                    end = i;
                    break;
                }
                0x21 | 0x24..=0x3B | 0x3D | 0x40..=0x5F | 0x61..=0x7A | 0x7C | 0x7E => true,
                b'"' | b'{' | b'}' | 0x80..=0xFF => true,
                _ => false,
            },
            Some(_) => match b {
                b'#' => {
                    end = i;
                    break;
                }
                0x21 | 0x24..=0x3B | 0x3D | 0x3F..=0x7E | 0x80..=0xFF => true,
                _ => false,
            },
        };
        if !ok {
            return Err(SigningError::new("invalid character in path"));
        }
    }
    Ok(match query_start {
        Some(q) => (&path_and_query[..q], &path_and_query[q + 1..end]),
        None => (&path_and_query[..end], ""),
    })
}

/// RFC 3986 dot-segment removal and `//` collapsing, as `aws-sigv4` normalizes paths.
pub(super) fn normalize_uri_path(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        return Cow::Borrowed("/");
    }
    let path: Cow<'_, str> = if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    };
    if !(path.contains('.') || path.contains("//")) {
        return path;
    }
    let mut segments: Vec<&str> = Vec::with_capacity(path.matches('/').count() + 1);
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = segments.join("/");
    if !normalized.starts_with('/') {
        normalized.insert(0, '/');
    }
    if ["/", "/.", "/./", "/..", "/../"]
        .iter()
        .any(|end| path.ends_with(end))
        && !normalized.ends_with('/')
    {
        normalized.push('/');
    }
    Cow::Owned(normalized)
}

/// Stable sort of a handful of items (headers, query pairs); `out_of_order(a, b)` is true
/// when `a` belongs after `b`. Much smaller in the .wasm than the standard library's sort.
pub(super) fn insertion_sort_by<T>(items: &mut [T], out_of_order: impl Fn(&T, &T) -> bool) {
    for sorted in 1..items.len() {
        let mut i = sorted;
        while i > 0 && out_of_order(&items[i - 1], &items[i]) {
            items.swap(i - 1, i);
            i -= 1;
        }
    }
}

/// Appends `path` percent-encoded with [`PATH_ENCODE_SET`] (what `utf8_percent_encode`
/// writes: every byte but the unreserved ones and `/`, upper-case hex), copying the runs that
/// need no encoding whole: the percent-encoding iterator costs calls per byte in the
/// size-optimised build.
pub(super) fn push_path_encoded(out: &mut Vec<u8>, path: &str) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = path.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')) {
            out.extend_from_slice(&bytes[run_start..i]);
            out.extend_from_slice(&[
                b'%',
                DIGITS[usize::from(b >> 4)],
                DIGITS[usize::from(b & 0x0f)],
            ]);
            run_start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
}

/// Decoded as a form, each name and value encoded again, sorted on the encoded pairs.
pub(super) fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| {
            (
                utf8_percent_encode(&name, QUERY_ENCODE_SET).to_string(),
                utf8_percent_encode(&value, QUERY_ENCODE_SET).to_string(),
            )
        })
        .collect();
    insertion_sort_by(&mut pairs, |a, b| a > b);
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Lower-case name, which must be an HTTP token.
pub(super) fn header_name(name: &str) -> Result<Cow<'_, str>, SigningError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(SigningError::new("invalid header name"));
    }
    Ok(if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    })
}

/// Visible characters, spaces and tabs (and any non-ASCII), as `http` takes a value.
pub(super) fn check_header_value(value: &str) -> Result<(), SigningError> {
    let valid = |b: u8| (b >= 0x20 && b != 0x7f) || b == b'\t';
    // Eight bytes at a time first (the session token is long): no byte below 0x20 and none
    // 0x7f (both tests exact for the word). Anything else, tabs included, byte by byte.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut words = value.as_bytes().chunks_exact(8);
    let mut suspect = false;
    for word in &mut words {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(word).unwrap_or([0; 8]));
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        let del = w ^ (ONES * 0x7f);
        let has_del = del.wrapping_sub(ONES) & !del & HIGHS;
        suspect |= (below_space | has_del) != 0;
    }
    let ok = if suspect {
        value.bytes().all(valid)
    } else {
        words.remainder().iter().all(|b| valid(*b))
    };
    if ok {
        Ok(())
    } else {
        Err(SigningError::new("invalid header value"))
    }
}

/// Spaces (only) trimmed at both ends and runs of spaces collapsed to one.
pub(super) fn normalize_header_value(value: &str) -> Result<Cow<'_, str>, SigningError> {
    let trimmed = value.trim_matches(' ');
    let normalized = if trimmed.contains("  ") {
        let mut out = String::with_capacity(trimmed.len());
        let mut previous_space = false;
        for c in trimmed.chars() {
            if !(c == ' ' && previous_space) {
                out.push(c);
            }
            previous_space = c == ' ';
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(trimmed)
    };
    check_header_value(&normalized)?;
    Ok(normalized)
}
