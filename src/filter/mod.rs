//! The proxy-wasm shell: the only code that talks to the host. It turns host callbacks into
//! calls on the plain-Rust modules and carries out what they decide.

mod credentials;
mod driver;
mod host;
mod http;
mod io;
mod logger;
mod request;
mod root;
mod stats;
mod timing;

use proxy_wasm::traits::RootContext;

proxy_wasm::main! {{
    logger::install();
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(root::LambdaRoot::new(context_id))
    });
}}
