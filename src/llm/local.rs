//! mistral.rs running a GGUF in this process.
//!
//! The GGUF's own tokenizer and chat template are used; nothing is fetched from a model hub. The
//! header is checked first ([`super::gguf::inspect`]), and loading runs in a task of its own so a
//! panic inside the loader becomes an error instead of taking the process down.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::future::BoxFuture;
use mistralrs::{
    Constraint as MrConstraint, GgufModelBuilder, Model, NormalRequest, Request, RequestBuilder,
    RequestMessage, Response, SamplingParams, StopTokens, TextMessageRole, TokenSource,
};
use tokio::sync::mpsc;

use super::gguf::{GgufInfo, inspect};
use super::transcode;
use super::{
    Backend, Completion, Constraint, CpuActivations, GenerateRequest, LlmError, LlmSettings, Role,
};

/// A GGUF model loaded by mistral.rs.
pub struct LocalBackend {
    model: Model,
    path: PathBuf,
    info: GgufInfo,
    /// Tensors loaded as Q8_0 instead of their stored type (see [`transcode`]).
    rewritten: usize,
}

/// Sets the size of the rayon pool candle computes on (once per process; later calls are no-ops).
pub fn set_cpu_threads(threads: usize) {
    if threads > 0 {
        // Fails only when the global pool already exists, which is fine.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}

impl LocalBackend {
    /// Checks and loads the configured GGUF.
    pub async fn load(settings: &LlmSettings) -> Result<Self, LlmError> {
        let path = settings.model.clone();
        if !path.is_file() {
            return Err(LlmError::Load(format!(
                "{} does not exist; run scripts/models.sh or set llm.model",
                path.display()
            )));
        }
        let info = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || inspect(&path))
                .await
                .map_err(|e| LlmError::Load(format!("header check failed: {e}")))??
        };
        set_cpu_threads(settings.threads);
        let cpu = runs_on_cpu(settings)?;
        let prepared = if cpu {
            let (src, mode) = (path.clone(), settings.cpu_weights);
            tokio::task::spawn_blocking(move || transcode::prepare(&src, mode))
                .await
                .map_err(|e| LlmError::Load(format!("weight rewrite failed: {e}")))??
        } else {
            transcode::Prepared {
                path: path.clone(),
                rewritten: 0,
                written: false,
            }
        };
        let load_path = &prepared.path;
        let dir = load_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_string_lossy()
            .into_owned();
        let file = load_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The loader can panic on inputs the header check does not catch; a task turns that into
        // a JoinError.
        let loading = if cpu && settings.cpu_activations == CpuActivations::F32 {
            tokio::spawn(build_cpu_f32(dir, file, settings.clone()))
        } else {
            let builder = GgufModelBuilder::new(dir, vec![file])
                .with_token_source(TokenSource::None)
                .with_max_num_seqs(settings.max_concurrent.max(1))
                .with_prefix_cache_n(Some(settings.prefix_cache));
            let builder = configure_device(builder, cpu, settings)?;
            tokio::spawn(builder.build())
        };
        let model = loading
            .await
            .map_err(|e| LlmError::Load(format!("{}: the loader crashed: {e}", path.display())))?
            .map_err(|e| LlmError::Load(format!("{}: {e:#}", path.display())))?;
        tracing::info!(
            model = %path.display(),
            architecture = %info.architecture,
            vocab = info.vocab_size,
            cpu,
            rewritten_to_q8_0 = prepared.rewritten,
            "language model loaded"
        );
        Ok(Self {
            model,
            path,
            info,
            rewritten: prepared.rewritten,
        })
    }

    pub fn info(&self) -> &GgufInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensors loaded as Q8_0 instead of their stored block type (see [`transcode`]).
    pub fn rewritten_tensors(&self) -> usize {
        self.rewritten
    }

    /// Tokenizes `text` with the model's tokenizer, without special tokens.
    pub async fn tokenize(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        self.model
            .tokenize(
                either::Either::Right(text.to_owned()),
                None,
                false,
                false,
                None,
            )
            .await
            .map_err(|e| LlmError::Backend(e.to_string()))
    }

    /// Raw completion from token ids, greedy, exactly `gen_tokens` tokens (end-of-text is
    /// suppressed): what `aisle bench llm` measures. Returns the completion with the engine's own
    /// prompt and decode timings.
    pub async fn complete_tokens(
        &self,
        prompt: Vec<u32>,
        gen_tokens: usize,
    ) -> Result<TokenTiming, LlmError> {
        let (tx, mut rx) = mpsc::channel(64);
        let mut sampling = SamplingParams::deterministic();
        sampling.max_len = Some(gen_tokens);
        sampling.logits_bias = Some(self.info.end_tokens.iter().map(|&t| (t, -1e9)).collect());
        let request = Request::Normal(Box::new(NormalRequest {
            messages: RequestMessage::CompletionTokens(prompt),
            sampling_params: sampling,
            response: tx,
            return_logprobs: false,
            is_streaming: true,
            id: 0,
            constraint: MrConstraint::None,
            suffix: None,
            tools: None,
            tool_choice: None,
            logits_processors: None,
            return_raw_logits: false,
            web_search_options: None,
            model_id: None,
            truncate_sequence: false,
        }));
        let started = Instant::now();
        self.model
            .inner()
            .get_sender(None)
            .map_err(|e| LlmError::Backend(e.to_string()))?
            .send(request)
            .await
            .map_err(|e| LlmError::Backend(e.to_string()))?;
        let mut timing = TokenTiming::default();
        while let Some(response) = rx.recv().await {
            match response {
                Response::CompletionChunk(chunk) => {
                    if timing.first_token.is_none() {
                        timing.first_token = Some(started.elapsed());
                    }
                    timing.chunks += 1;
                    if chunk.choices.iter().any(|c| c.finish_reason.is_some()) {
                        timing.last_token = started.elapsed();
                        break;
                    }
                }
                Response::CompletionDone(done) => {
                    timing.last_token = started.elapsed();
                    timing.completion_tokens = done.usage.completion_tokens;
                    break;
                }
                Response::InternalError(e) | Response::ValidationError(e) => {
                    return Err(LlmError::Backend(e.to_string()));
                }
                Response::CompletionModelError(e, _) | Response::ModelError(e, _) => {
                    return Err(LlmError::Backend(e));
                }
                _ => {}
            }
        }
        if timing.last_token.is_zero() {
            timing.last_token = started.elapsed();
        }
        Ok(timing)
    }
}

/// Timings of one raw completion.
#[derive(Debug, Clone, Default)]
pub struct TokenTiming {
    pub first_token: Option<std::time::Duration>,
    pub last_token: std::time::Duration,
    pub chunks: usize,
    pub completion_tokens: usize,
}

/// Whether the model runs on the CPU (always, in a build without CUDA).
#[cfg(not(feature = "cuda"))]
fn runs_on_cpu(_settings: &LlmSettings) -> Result<bool, LlmError> {
    Ok(true)
}

#[cfg(feature = "cuda")]
fn runs_on_cpu(settings: &LlmSettings) -> Result<bool, LlmError> {
    let gpu = candle_core::utils::cuda_is_available() && candle_core::Device::new_cuda(0).is_ok();
    if gpu {
        return Ok(false);
    }
    if settings.cpu_fallback {
        // mistral.rs picks the GGUF's activation dtype by asking nvidia-smi for the compute
        // capability in every CUDA build, even for the CPU, and panics without it.
        let smi = std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join("nvidia-smi").is_file())
        });
        if !smi {
            return Err(LlmError::Load(
                "no CUDA device found, and the CPU fallback of a CUDA build needs nvidia-smi on \
                 PATH (mistral.rs reads the compute capability with it); on a machine without \
                 the NVIDIA driver use the CPU build"
                    .into(),
            ));
        }
        tracing::warn!("no CUDA device found; running the language model on the CPU");
        return Ok(true);
    }
    Err(LlmError::Load(
        "this build uses CUDA but no GPU was found; set llm.cpu_fallback = true to run on the CPU"
            .into(),
    ))
}

/// The CPU pipeline with f32 activations. `GgufModelBuilder` always asks mistral.rs for
/// `ModelDType::Auto`, which on the CPU picks a 16-bit type; this builds the same pipeline and
/// engine (no KV-cache or prefix-cache changes, no tools) with `ModelDType::F32`.
async fn build_cpu_f32(dir: String, file: String, settings: LlmSettings) -> anyhow::Result<Model> {
    use mistralrs::core::{
        AddModelConfig, AutoDeviceMapParams, DefaultSchedulerMethod, DeviceMapSetting,
        EngineConfig, GGUFLoaderBuilder, GGUFSpecificConfig, ModelDType, SchedulerConfig,
    };
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        dir,
        vec![file],
        GGUFSpecificConfig { topology: None },
        false,
        None,
    )
    .build();
    let pipeline = loader.load_model_from_hf(
        None,
        TokenSource::None,
        &ModelDType::F32,
        &candle_core::Device::Cpu,
        true,
        DeviceMapSetting::Auto(AutoDeviceMapParams::default_text()),
        None,
        None,
    )?;
    let scheduler = SchedulerConfig::DefaultScheduler {
        method: DefaultSchedulerMethod::Fixed(settings.max_concurrent.max(1).try_into()?),
    };
    let engine = EngineConfig {
        no_kv_cache: false,
        no_prefix_cache: false,
        prefix_cache_n: settings.prefix_cache,
        ..EngineConfig::default()
    };
    let add = AddModelConfig {
        engine_config: engine,
        mcp_client_config: None,
        loader_config: None,
    };
    Ok(mistralrs::model_builder_trait::build_model_from_pipeline(pipeline, scheduler, add).await)
}

#[cfg(not(feature = "cuda"))]
fn configure_device(
    builder: GgufModelBuilder,
    _cpu: bool,
    _settings: &LlmSettings,
) -> Result<GgufModelBuilder, LlmError> {
    Ok(builder.with_force_cpu())
}

#[cfg(feature = "cuda")]
fn configure_device(
    builder: GgufModelBuilder,
    cpu: bool,
    settings: &LlmSettings,
) -> Result<GgufModelBuilder, LlmError> {
    use mistralrs::{MemoryGpuConfig, PagedAttentionMetaBuilder};
    if cpu {
        return Ok(builder.with_force_cpu());
    }
    if !settings.paged_attention {
        return Ok(builder);
    }
    let paged = PagedAttentionMetaBuilder::default()
        .with_gpu_memory(MemoryGpuConfig::Utilization(settings.kv_memory_fraction))
        .build()
        .map_err(|e| LlmError::Load(format!("paged attention: {e}")))?;
    Ok(builder.with_paged_attn(paged))
}

/// Asks llguidance for compact JSON unless the schema says otherwise: by default its JSON grammar
/// allows any run of whitespace between tokens, and a small model can spend its whole token budget
/// on newlines inside an object that then never closes.
fn compact_json(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = schema.as_object_mut() {
        obj.entry("x-guidance").or_insert_with(|| {
            serde_json::json!({"whitespace_flexible": false, "item_separator": ",", "key_separator": ":"})
        });
    }
    schema
}

fn role(r: Role) -> TextMessageRole {
    match r {
        Role::System => TextMessageRole::System,
        Role::User => TextMessageRole::User,
        Role::Assistant => TextMessageRole::Assistant,
    }
}

impl Backend for LocalBackend {
    fn describe(&self) -> String {
        format!("local:{}", self.path.display())
    }

    fn generate(
        &self,
        request: GenerateRequest,
        tokens: mpsc::Sender<String>,
    ) -> BoxFuture<'_, Result<Completion, LlmError>> {
        Box::pin(async move {
            // The deterministic preset resets stop tokens and length, so it goes first.
            let mut builder = match request.temperature {
                None => RequestBuilder::new().set_deterministic_sampler(),
                Some(t) => RequestBuilder::new().set_sampler_temperature(t),
            };
            if let Some(p) = request.frequency_penalty {
                builder = builder.set_sampler_frequency_penalty(p);
            }
            for m in &request.messages {
                builder = builder.add_message(role(m.role), &m.content);
            }
            // A grammar that has closed forces the end-of-text token, which is not always the
            // template's stop token: every end token stops.
            builder = builder
                .set_sampler_max_len(request.max_tokens)
                .set_sampler_stop_toks(StopTokens::Ids(self.info.end_tokens.clone()))
                .set_constraint(match request.constraint {
                    Constraint::None => MrConstraint::None,
                    Constraint::JsonSchema(v) => MrConstraint::JsonSchema(compact_json(v)),
                    Constraint::Lark(g) => MrConstraint::Lark(g),
                    Constraint::Regex(r) => MrConstraint::Regex(r),
                });
            let mut stream = self
                .model
                .stream_chat_request(builder)
                .await
                .map_err(|e| LlmError::Backend(e.to_string()))?;
            let mut out = Completion::default();
            while let Some(response) = stream.next().await {
                match response {
                    Response::Chunk(chunk) => {
                        for choice in &chunk.choices {
                            if let Some(piece) = &choice.delta.content
                                && !piece.is_empty()
                            {
                                out.text.push_str(piece);
                                if tokens.send(piece.clone()).await.is_err() {
                                    return Err(LlmError::Cancelled);
                                }
                            }
                            if let Some(reason) = &choice.finish_reason {
                                out.finish_reason = reason.clone();
                            }
                        }
                        if let Some(usage) = &chunk.usage {
                            out.prompt_tokens = usage.prompt_tokens;
                            out.completion_tokens = usage.completion_tokens;
                        }
                        if !out.finish_reason.is_empty() {
                            break;
                        }
                    }
                    Response::Done(done) => {
                        out.prompt_tokens = done.usage.prompt_tokens;
                        out.completion_tokens = done.usage.completion_tokens;
                        break;
                    }
                    Response::InternalError(e) | Response::ValidationError(e) => {
                        return Err(LlmError::Backend(e.to_string()));
                    }
                    Response::ModelError(e, _) | Response::CompletionModelError(e, _) => {
                        return Err(LlmError::Backend(e));
                    }
                    _ => {}
                }
            }
            Ok(out)
        })
    }
}
