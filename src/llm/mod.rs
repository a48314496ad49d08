//! The generative model behind replies and dialogue understanding.
//!
//! [`LlmHandle`] is what the rest of aisle calls. It owns a [`Backend`] (mistral.rs running a GGUF
//! in this process, or a remote OpenAI-compatible server) and puts three things in front of it:
//!
//! - **admission**: at most `max_concurrent` requests generate at once and `max_queue` more wait;
//!   beyond that a request fails at once with [`LlmError::Overloaded`] (the web layer answers 429
//!   with Retry-After) instead of piling up behind a slow model;
//! - **deadlines and cancellation**: every request has a timeout covering queueing and generation;
//!   when it passes, or when the caller drops the stream (a client that went away), the backend's
//!   generation is dropped, which stops the sequence in mistral.rs at its next token;
//! - **metrics**: queue depth, time to first token and decode speed, in the service's registry.
//!
//! The local engine runs its scheduler on its own thread (mistral.rs starts one per model), so a
//! long generation never occupies the web server's async workers.

pub mod gguf;
mod local;
mod remote;
pub mod transcode;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};

pub use local::{LocalBackend, set_cpu_threads};
pub use remote::RemoteBackend;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A limit on what the model may write.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Constraint {
    #[default]
    None,
    /// Output is one JSON value valid against this schema.
    JsonSchema(serde_json::Value),
    /// Output matches this Lark grammar (llguidance dialect).
    Lark(String),
    /// Output matches this regular expression.
    Regex(String),
}

/// One generation.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub messages: Vec<ChatMessage>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    pub constraint: Constraint,
    /// `None` is greedy decoding (reproducible); otherwise sampling at this temperature.
    pub temperature: Option<f64>,
    /// Overrides the handle's default timeout.
    pub timeout: Option<Duration>,
    /// Penalises tokens by how often they already appear (OpenAI's frequency penalty); keeps a
    /// small model from looping.
    pub frequency_penalty: Option<f32>,
}

impl GenerateRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            max_tokens: 256,
            constraint: Constraint::None,
            temperature: None,
            timeout: None,
            frequency_penalty: None,
        }
    }

    pub fn frequency_penalty(mut self, p: f32) -> Self {
        self.frequency_penalty = Some(p);
        self
    }

    pub fn max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n;
        self
    }

    pub fn constraint(mut self, c: Constraint) -> Self {
        self.constraint = c;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

/// A finished generation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// From submission (queueing included) to the first token.
    pub ttft: Duration,
    /// From submission to the end.
    pub elapsed: Duration,
    /// Why generation stopped, as the backend says it ("stop", "length", ...).
    pub finish_reason: String,
}

impl Completion {
    /// Decode speed after the first token, tokens per second.
    pub fn decode_tok_s(&self) -> f64 {
        let decode = self.elapsed.saturating_sub(self.ttft).as_secs_f64();
        if self.completion_tokens < 2 || decode <= 0.0 {
            return 0.0;
        }
        (self.completion_tokens - 1) as f64 / decode
    }
}

/// What a streaming request yields.
#[derive(Debug, Clone)]
pub enum LlmEvent {
    /// The next piece of text, in order.
    Token(String),
    Done(Completion),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    #[error("the language model is busy ({waiting} requests waiting); try again shortly")]
    Overloaded {
        waiting: usize,
        retry_after: Duration,
    },
    #[error("the language model did not finish within {0:?}")]
    Timeout(Duration),
    #[error("the request was cancelled")]
    Cancelled,
    #[error("could not load the language model: {0}")]
    Load(String),
    #[error("the language model failed: {0}")]
    Backend(String),
    #[error("invalid request to the language model: {0}")]
    Invalid(String),
}

/// A place generations run: mistral.rs in this process or a server over HTTP.
pub trait Backend: Send + Sync + 'static {
    /// A short description for logs and metrics ("local:/path/model.gguf").
    fn describe(&self) -> String;

    /// Runs one generation, sending each new piece of text to `tokens` as it is produced. Dropping
    /// the returned future abandons the generation.
    fn generate(
        &self,
        request: GenerateRequest,
        tokens: mpsc::Sender<String>,
    ) -> BoxFuture<'_, Result<Completion, LlmError>>;
}

/// The `[llm]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlmSettings {
    /// `local` (mistral.rs in this process) or `remote` (OpenAI-compatible server at `url`).
    pub backend: String,
    /// The GGUF file the local backend loads.
    pub model: std::path::PathBuf,
    /// Threads for CPU inference; 0 uses every core.
    pub threads: usize,
    /// Requests generating at once (the engine batches them).
    pub max_concurrent: usize,
    /// Requests allowed to wait for a slot; more are refused as overloaded.
    pub max_queue: usize,
    /// Deadline for one request, queueing included.
    pub timeout_ms: u64,
    /// Prompts whose key-value cache is kept for reuse (the fixed system prompt hits it).
    pub prefix_cache: usize,
    /// Remote backend: base URL ("http://host:1234", without /v1), model name and key.
    pub url: String,
    pub remote_model: String,
    pub api_key: String,
    /// CUDA builds: paged attention, and the share of free GPU memory its KV cache may take.
    pub paged_attention: bool,
    pub kv_memory_fraction: f32,
    /// CUDA builds: run on the CPU when no GPU is found instead of failing.
    pub cpu_fallback: bool,
    /// On the CPU: `auto` rewrites weights whose block type has no SIMD kernel as Q8_0
    /// ([`transcode`]); `as-is` loads the file unchanged.
    pub cpu_weights: transcode::CpuWeights,
    /// On the CPU: the activations' dtype. `f32` (default) keeps attention, norms and the KV cache
    /// in f32; `auto` lets mistral.rs choose (a 16-bit type, which the CPU converts element by
    /// element).
    pub cpu_activations: CpuActivations,
}

/// `llm.cpu_activations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuActivations {
    F32,
    Auto,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            model: "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
            threads: 0,
            max_concurrent: 4,
            max_queue: 16,
            timeout_ms: 60_000,
            prefix_cache: 16,
            url: String::new(),
            remote_model: String::new(),
            api_key: String::new(),
            paged_attention: true,
            kv_memory_fraction: 0.5,
            cpu_fallback: false,
            cpu_weights: transcode::CpuWeights::Auto,
            cpu_activations: CpuActivations::F32,
        }
    }
}

/// LLM metrics, registered in the service's registry by [`LlmMetrics::register`].
#[derive(Clone)]
pub struct LlmMetrics {
    pub queue_depth: Gauge,
    pub in_flight: Gauge,
    pub requests: Counter,
    pub rejected: Counter,
    pub timeouts: Counter,
    pub ttft_seconds: Histogram,
    pub decode_tokens_per_second: Histogram,
}

impl Default for LlmMetrics {
    fn default() -> Self {
        Self {
            queue_depth: Gauge::default(),
            in_flight: Gauge::default(),
            requests: Counter::default(),
            rejected: Counter::default(),
            timeouts: Counter::default(),
            ttft_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            decode_tokens_per_second: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        }
    }
}

impl LlmMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "llm_queue_depth",
            "LLM requests waiting for a slot",
            self.queue_depth.clone(),
        );
        registry.register(
            "llm_in_flight",
            "LLM requests generating",
            self.in_flight.clone(),
        );
        registry.register(
            "llm_requests",
            "LLM requests admitted",
            self.requests.clone(),
        );
        registry.register(
            "llm_rejected",
            "LLM requests refused as overloaded",
            self.rejected.clone(),
        );
        registry.register(
            "llm_timeouts",
            "LLM requests past their deadline",
            self.timeouts.clone(),
        );
        registry.register(
            "llm_time_to_first_token_seconds",
            "Submission to first token, queueing included",
            self.ttft_seconds.clone(),
        );
        registry.register(
            "llm_decode_tokens_per_second",
            "Generation speed after the first token",
            self.decode_tokens_per_second.clone(),
        );
    }
}

/// The LLM as the service sees it. Cheap to clone.
#[derive(Clone)]
pub struct LlmHandle {
    backend: Arc<dyn Backend>,
    admit: Arc<Semaphore>,
    slots: Arc<Semaphore>,
    max_queue: usize,
    timeout: Duration,
    metrics: LlmMetrics,
}

/// A streaming generation: [`LlmEvent`]s in order, ending with `Done` or an error. Dropping it
/// cancels the generation.
pub struct LlmStream {
    rx: mpsc::Receiver<Result<LlmEvent, LlmError>>,
}

impl LlmStream {
    pub async fn next(&mut self) -> Option<Result<LlmEvent, LlmError>> {
        self.rx.recv().await
    }

    /// Waits for the end, discarding the tokens.
    pub async fn finish(mut self) -> Result<Completion, LlmError> {
        while let Some(event) = self.rx.recv().await {
            if let LlmEvent::Done(c) = event? {
                return Ok(c);
            }
        }
        Err(LlmError::Cancelled)
    }
}

impl futures::Stream for LlmStream {
    type Item = Result<LlmEvent, LlmError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl LlmHandle {
    pub fn new(backend: Arc<dyn Backend>, settings: &LlmSettings, metrics: LlmMetrics) -> Self {
        let concurrent = settings.max_concurrent.max(1);
        Self {
            backend,
            admit: Arc::new(Semaphore::new(concurrent + settings.max_queue)),
            slots: Arc::new(Semaphore::new(concurrent)),
            max_queue: settings.max_queue,
            timeout: Duration::from_millis(settings.timeout_ms.max(1)),
            metrics,
        }
    }

    /// Loads the configured backend: the local GGUF (checked before mistral.rs sees it) or the
    /// remote server.
    pub async fn from_settings(
        settings: &LlmSettings,
        metrics: LlmMetrics,
    ) -> Result<Self, LlmError> {
        let backend: Arc<dyn Backend> = match settings.backend.as_str() {
            "local" => Arc::new(LocalBackend::load(settings).await?),
            "remote" => Arc::new(RemoteBackend::new(settings)?),
            other => {
                return Err(LlmError::Load(format!(
                    "llm.backend must be \"local\" or \"remote\", not {other:?}"
                )));
            }
        };
        Ok(Self::new(backend, settings, metrics))
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    pub fn metrics(&self) -> &LlmMetrics {
        &self.metrics
    }

    /// Starts a generation and streams it. Fails at once with [`LlmError::Overloaded`] when the
    /// queue is full. Must be called inside a Tokio runtime.
    pub fn stream(&self, request: GenerateRequest) -> Result<LlmStream, LlmError> {
        if request.messages.is_empty() {
            return Err(LlmError::Invalid("no messages".into()));
        }
        if request.max_tokens == 0 {
            return Err(LlmError::Invalid("max_tokens must be positive".into()));
        }
        let Ok(admitted) = Arc::clone(&self.admit).try_acquire_owned() else {
            self.metrics.rejected.inc();
            return Err(LlmError::Overloaded {
                waiting: self.max_queue,
                retry_after: Duration::from_secs(2),
            });
        };
        self.metrics.requests.inc();
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        let timeout = request.timeout.unwrap_or(self.timeout);
        tokio::spawn(async move {
            let _admitted = admitted;
            let started = Instant::now();
            let metrics = this.metrics.clone();
            let timeouts = this.metrics.timeouts.clone();
            let out = tx.clone();
            let work = async move {
                let waiting = GaugeGuard::new(&metrics.queue_depth);
                let slot = Arc::clone(&this.slots).acquire_owned().await;
                drop(waiting);
                let Ok(_slot) = slot else {
                    return Err(LlmError::Cancelled);
                };
                // Guards, so a request dropped mid-way (deadline, client gone) still counts down.
                let _running = GaugeGuard::new(&metrics.in_flight);
                this.run(request, &out, started).await
            };
            let result = tokio::select! {
                r = tokio::time::timeout(timeout, work) => match r {
                    Ok(r) => r,
                    Err(_) => {
                        timeouts.inc();
                        Err(LlmError::Timeout(timeout))
                    }
                },
                // The caller dropped the stream: dropping `work` abandons the generation.
                () = tx.closed() => return,
            };
            let _ = tx.send(result.map(LlmEvent::Done)).await;
        });
        Ok(LlmStream { rx })
    }

    /// Runs a generation to the end and returns it.
    pub async fn generate(&self, request: GenerateRequest) -> Result<Completion, LlmError> {
        self.stream(request)?.finish().await
    }

    async fn run(
        &self,
        request: GenerateRequest,
        out: &mpsc::Sender<Result<LlmEvent, LlmError>>,
        started: Instant,
    ) -> Result<Completion, LlmError> {
        let (tok_tx, mut tok_rx) = mpsc::channel::<String>(64);
        let generation = self.backend.generate(request, tok_tx);
        tokio::pin!(generation);
        let mut first: Option<Duration> = None;
        let mut result = None;
        // Forward tokens while the backend runs, then drain what is left.
        loop {
            tokio::select! {
                biased;
                piece = tok_rx.recv() => match piece {
                    Some(piece) => {
                        if first.is_none() {
                            first = Some(started.elapsed());
                        }
                        if out.send(Ok(LlmEvent::Token(piece))).await.is_err() {
                            return Err(LlmError::Cancelled);
                        }
                    }
                    None => {
                        if let Some(r) = result.take() {
                            break finish(r, first, started, &self.metrics);
                        }
                        // The sender is gone; only the result is left to wait for.
                        let r = (&mut generation).await;
                        break finish(r, first, started, &self.metrics);
                    }
                },
                r = &mut generation, if result.is_none() => {
                    result = Some(r);
                }
            }
        }
    }
}

/// Holds a gauge one higher for as long as it lives.
struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn finish(
    result: Result<Completion, LlmError>,
    first: Option<Duration>,
    started: Instant,
    metrics: &LlmMetrics,
) -> Result<Completion, LlmError> {
    let mut c = result?;
    c.elapsed = started.elapsed();
    c.ttft = first.unwrap_or(c.elapsed);
    metrics.ttft_seconds.observe(c.ttft.as_secs_f64());
    let speed = c.decode_tok_s();
    if speed > 0.0 {
        metrics.decode_tokens_per_second.observe(speed);
    }
    Ok(c)
}
