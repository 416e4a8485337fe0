//! check-config: checks proxy-wasm-lambda's configuration in Envoy bootstraps and Kubernetes
//! manifests with the filter's own code, before Envoy loads it (docs/check-config.md).
//!
//!     check-config [--host-env] FILE...
//!
//! Exit status: 0 when every plugin configuration and route passes, 1 when any fails, 2 when
//! a file (or a configuration embedded in it) cannot be read.

mod check;
mod find;
mod load;
mod proto;

use std::io::Read;
use std::process::ExitCode;

use check::HostEnv;

const USAGE: &str = "usage: check-config [--host-env] FILE...

Checks every proxy-wasm-lambda plugin configuration and every route's
metadata.filter_metadata.proxy_wasm_lambda in Envoy bootstraps (YAML or JSON) and Kubernetes
manifests (Istio EnvoyFilter and WasmPlugin, Envoy Gateway EnvoyExtensionPolicy and EnvoyProxy,
ConfigMaps holding an envoy.yaml) with the filter's own code. FILE - reads standard input.

  --host-env   read the host_env_keys variables from this environment (as Envoy reads its
               own) instead of taking each as set to a placeholder value

Exit status: 0 all pass, 1 an error, 2 a file cannot be read.";

fn read(file: &str) -> Result<String, String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        return Ok(text);
    }
    std::fs::read_to_string(file).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let mut host_env = HostEnv::Placeholders;
    let mut files = Vec::new();
    let mut options_done = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            _ if options_done => files.push(arg),
            "--" => options_done = true,
            "--host-env" => host_env = HostEnv::Process,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if arg.starts_with('-') && arg != "-" => {
                eprintln!("check-config: unknown option {arg}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let mut unreadable = false;
    let mut failed = false;
    for file in &files {
        let name = if file == "-" {
            "<stdin>"
        } else {
            file.as_str()
        };
        let documents = match read(file).and_then(|text| {
            let json = file.ends_with(".json");
            load::documents(&text, json)
        }) {
            Ok(documents) => documents,
            Err(why) => {
                println!("{name}: cannot read: {why}");
                unreadable = true;
                continue;
            }
        };
        let found = find::find(&documents);
        for (location, why) in &found.unreadable {
            println!("{name}: {location}: cannot read: {why}");
            unreadable = true;
        }
        let outcome = check::check(name, &found, host_env);
        failed |= outcome.errors > 0;
        println!("{name}: {}", summary(&outcome, &found));
    }
    if unreadable {
        ExitCode::from(2)
    } else if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summary(outcome: &check::Outcome, found: &find::Found) -> String {
    if outcome.instances == 0 && outcome.routes == 0 {
        let mut text = format!("no {} filter and no route metadata for it", find::PLUGIN);
        if found.other_wasm > 0 {
            text.push_str(&format!(
                " ({} not taken as this filter: see docs/check-config.md)",
                plural(found.other_wasm, "Wasm filter", "Wasm filters")
            ));
        }
        return text;
    }
    let checked = format!(
        "{} and {} checked",
        plural(
            outcome.instances,
            "plugin configuration",
            "plugin configurations"
        ),
        plural(outcome.routes, "route", "routes")
    );
    if outcome.errors == 0 {
        format!("ok, {checked}")
    } else {
        format!("{} ({checked})", plural(outcome.errors, "error", "errors"))
    }
}
