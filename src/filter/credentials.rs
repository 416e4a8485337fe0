//! The host side of credentials: proxy-wasm shared data as the [`SharedStore`] every worker
//! VM's credential cache uses (`crate::credentials::cache` makes every decision), and the
//! one-per-process log of where credentials come from.

use log::Level;
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

use crate::credentials::cache::{DispatchRefusal, SharedStore, StoreError};

/// Where this process logged its credential origins, so that only the first VM logs them.
const ORIGIN_KEY: &str = "proxy-wasm-lambda/credentials-origin/v2";

/// Proxy-wasm shared data: one store per `vm_id`, shared by every VM of the process.
pub(super) struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), StoreError> {
        hostcalls::get_shared_data(key).map_err(store_error)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(store_error)
    }
}

fn store_error(status: Status) -> StoreError {
    match status {
        Status::CasMismatch => StoreError::CasMismatch,
        other => StoreError::Failed(format!("{other:?}")),
    }
}

/// Why the host refused to dispatch a credentials call.
pub(super) fn refusal(status: Status) -> DispatchRefusal {
    match status {
        // What Envoy answers for a cluster it does not have.
        Status::BadArgument => DispatchRefusal::UnknownCluster,
        other => DispatchRefusal::Other(format!("{other:?}")),
    }
}

/// Logs a line the credential cache asked for.
pub(super) fn log_line(level: Level, message: &str) {
    log::log!(level, "{message}");
}

/// Logs where the credentials come from and the configuration's warnings, once per Envoy
/// process for the same lines (every VM configures).
pub(super) fn log_once(lines: &[(Level, String)]) {
    let text: String = lines
        .iter()
        .map(|(_, line)| line.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let key = format!("{ORIGIN_KEY}/{:016x}", fingerprint(&text));
    if let Ok((Some(_), _)) = hostcalls::get_shared_data(&key) {
        return;
    }
    for (level, line) in lines {
        log_line(*level, line);
    }
    let _ = hostcalls::set_shared_data(&key, Some(b"1"), None);
}

/// A stable (not per-process random) hash of the lines, so every VM finds the same key.
fn fingerprint(text: &str) -> u64 {
    // FNV-1a: the key only tells whether these lines were logged.
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}
