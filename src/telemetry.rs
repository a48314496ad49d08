//! Tracing set-up and the Prometheus metrics registry. Logs go to stderr so that batch commands keep
//! stdout for their JSON lines.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber (`RUST_LOG` filters; default `info`). JSON lines when
/// `AISLE_LOG_JSON=1`. Safe to call more than once: later calls are ignored.
pub fn init_tracing(default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let json = std::env::var("AISLE_LOG_JSON").is_ok_and(|v| v == "1");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// The service's metrics, owned by `AppState` (no global recorder).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<HttpLabels, Histogram>,
    pub search_requests: Counter,
    pub catalog_products: Gauge,
    pub index_rebuilds: Counter,
    /// Queue depth, time to first token and decode speed of the language model.
    pub llm: crate::llm::LlmMetrics,
    /// Chat turns completed, and per turn the time to the `cards` event and to the first text.
    pub chat_turns: Counter,
    pub chat_cards_seconds: Histogram,
    pub chat_first_token_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("aisle");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.5, 12))
        });
        let search_requests = Counter::default();
        let catalog_products = Gauge::default();
        let index_rebuilds = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests served",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_duration.clone(),
        );
        registry.register(
            "search_requests",
            "Search queries answered",
            search_requests.clone(),
        );
        registry.register(
            "catalog_products",
            "Products in the lexical index",
            catalog_products.clone(),
        );
        registry.register(
            "search_index_rebuilds",
            "Lexical index rebuilds",
            index_rebuilds.clone(),
        );
        let llm = crate::llm::LlmMetrics::default();
        llm.register(&mut registry);
        let chat_turns = Counter::default();
        let chat_cards_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let chat_first_token_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register("chat_turns", "Chat turns completed", chat_turns.clone());
        registry.register(
            "chat_cards_seconds",
            "Message received to product cards sent",
            chat_cards_seconds.clone(),
        );
        registry.register(
            "chat_first_token_seconds",
            "Message received to the first reply text sent",
            chat_first_token_seconds.clone(),
        );
        Self {
            chat_turns,
            chat_cards_seconds,
            chat_first_token_seconds,
            registry: Arc::new(registry),
            llm,
            http_requests,
            http_duration,
            search_requests,
            catalog_products,
            index_rebuilds,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// This process's peak resident set size in MiB (0 when the OS does not say).
pub fn peak_rss_mb() -> f64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        // Linux reports ru_maxrss in KiB.
        .map(|u| u.max_rss() as f64 / 1024.0)
        .unwrap_or(0.0)
}
