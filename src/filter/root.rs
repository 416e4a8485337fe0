//! Root context: validates the plugin configuration once and creates request contexts.

use std::cell::RefCell;
use std::rc::Rc;

use log::{error, info};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::http::LambdaHttp;
use super::logger;
use crate::config::FilterConfig;
use crate::route::RouteCache;

#[derive(Default)]
pub struct LambdaRoot {
    config: Option<Rc<FilterConfig>>,
    routes: Rc<RefCell<RouteCache>>,
}

impl Context for LambdaRoot {}

impl RootContext for LambdaRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        logger::follow_host_level();
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let env = |name: &str| std::env::var(name).ok();
        match FilterConfig::load(&bytes, &env) {
            Ok(config) => {
                info!(
                    "proxy_wasm_lambda: configured: function {} region {} endpoint {} invocation_type {}",
                    config.target.function.identifier,
                    config.target.region,
                    config.target.endpoint,
                    config.target.invocation_type.header_value()
                );
                self.config = Some(Rc::new(config));
                self.routes = Rc::new(RefCell::new(RouteCache::default()));
                true
            }
            Err(e) => {
                error!("proxy_wasm_lambda: invalid configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(LambdaHttp::new(
            context_id,
            self.config.clone(),
            Rc::clone(&self.routes),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
