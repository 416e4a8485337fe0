//! Trace continuation into Lambda: the Invoke carries `X-Amzn-Trace-Id`, which Lambda (and
//! X-Ray) read when the function traces. A valid one from the client is kept as it is;
//! otherwise a W3C `traceparent` (the client's, or the one Envoy's tracer set) is mapped:
//! `Root=1-<first 8 hex>-<last 24 hex>;Parent=<span id>;Sampled=<flag>`. The header is not
//! signed, as the AWS SDKs leave it.

/// The longest `X-Amzn-Trace-Id` kept from a client (X-Ray's own are under 100 bytes).
const MAX_AMZN_TRACE_ID: usize = 256;

/// The `X-Amzn-Trace-Id` of the Invoke, if the request carries a trace.
pub fn invoke_trace_id(amzn: Option<&str>, traceparent: Option<&str>) -> Option<String> {
    match amzn.filter(|value| is_amzn_trace_id(value)) {
        Some(kept) => Some(kept.to_string()),
        None => traceparent.and_then(from_traceparent),
    }
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `Root=1-<8 hex>-<24 hex>` among `;`-separated `key=value` fields of printable ASCII.
fn is_amzn_trace_id(value: &str) -> bool {
    value.len() <= MAX_AMZN_TRACE_ID
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && value.split(';').any(|field| {
            field
                .trim()
                .strip_prefix("Root=1-")
                .and_then(|root| root.split_once('-'))
                .is_some_and(|(time, id)| is_hex(time, 8) && is_hex(id, 24))
        })
}

/// W3C Trace Context: `<version>-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, version
/// `00` exactly, or a later one (not `ff`) with possibly more fields after; all-zero ids are
/// invalid.
fn from_traceparent(value: &str) -> Option<String> {
    let value = value.trim();
    let mut fields = value.split('-');
    let (version, trace_id, parent_id, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let valid_version =
        is_hex(version, 2) && version != "ff" && (version != "00" || fields.next().is_none());
    let zero = |id: &str| id.bytes().all(|b| b == b'0');
    if !valid_version
        || !is_hex(trace_id, 32)
        || !is_hex(parent_id, 16)
        || !is_hex(flags, 2)
        || zero(trace_id)
        || zero(parent_id)
    {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1;
    Some(format!(
        "Root=1-{}-{};Parent={parent_id};Sampled={sampled}",
        &trace_id[..8],
        &trace_id[8..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_maps_to_root_parent_and_sampled() {
        assert_eq!(
            invoke_trace_id(None, Some(PARENT)).as_deref(),
            Some("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1")
        );
        assert_eq!(
            invoke_trace_id(
                None,
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
            )
            .as_deref(),
            Some("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=0")
        );
        // A later version may carry more fields; its first four are read.
        assert!(invoke_trace_id(
            None,
            Some("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra")
        )
        .is_some_and(|t| t.ends_with("Sampled=1")));
    }

    #[test]
    fn invalid_traceparents_give_nothing() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx: y",
        ] {
            assert_eq!(invoke_trace_id(None, Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn a_valid_client_amzn_trace_id_is_kept_as_it_is() {
        let client = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1";
        assert_eq!(
            invoke_trace_id(Some(client), Some(PARENT)).as_deref(),
            Some(client)
        );
        let self_field =
            "Self=1-67891233-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793";
        assert_eq!(
            invoke_trace_id(Some(self_field), None).as_deref(),
            Some(self_field)
        );
        // Invalid ones fall back to the traceparent, or to nothing.
        for bad in [
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793\r\nx: y",
        ] {
            assert!(invoke_trace_id(Some(bad), Some(PARENT))
                .is_some_and(|t| t.starts_with("Root=1-4bf92f35-")));
            assert_eq!(invoke_trace_id(Some(bad), None), None, "{bad}");
        }
        let long = format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;{}",
            "x".repeat(MAX_AMZN_TRACE_ID)
        );
        assert_eq!(invoke_trace_id(Some(&long), None), None);
    }
}
