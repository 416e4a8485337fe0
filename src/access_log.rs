//! What the filter tells Envoy's access logs about a request it answered: one filter state
//! value, `wasm.proxy_wasm_lambda`, in logfmt (`function=orders:live class=throttled
//! profile=default lambda_request_id=…`), printed with `%FILTER_STATE(wasm.proxy_wasm_lambda:PLAIN)%`
//! (docs/observability.md, Access logs). One host call per request; every part is a single token with no
//! space or quote (labels, classes and profile names are, and Lambda's id is checked).

/// The filter state key (Envoy adds the `wasm.` prefix).
pub(crate) const FILTER_STATE_KEY: &str = "proxy_wasm_lambda";

/// The logfmt value of a request's outcome: `class` is `success` or the error class of its
/// JSON body; the others are present when known.
pub(crate) fn access_log_value(
    function: Option<&str>,
    class: &str,
    profile: Option<&str>,
    lambda_request_id: Option<&str>,
) -> String {
    let mut value = String::with_capacity(128);
    let mut field = |name: &str, text: &str| {
        if !value.is_empty() {
            value.push(' ');
        }
        value.push_str(name);
        value.push('=');
        value.push_str(text);
    };
    if let Some(function) = function {
        field("function", function);
    }
    field("class", class);
    if let Some(profile) = profile {
        field("profile", profile);
    }
    if let Some(id) = lambda_request_id {
        field("lambda_request_id", id);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_of_what_is_known() {
        assert_eq!(
            access_log_value(
                Some("orders:live"),
                "throttled",
                Some("tenant-a"),
                Some("8756057b-1357-4bdf-a39e-80502f3f42b0")
            ),
            "function=orders:live class=throttled profile=tenant-a \
             lambda_request_id=8756057b-1357-4bdf-a39e-80502f3f42b0"
        );
        assert_eq!(
            access_log_value(None, "route_config_invalid", None, None),
            "class=route_config_invalid"
        );
    }
}
