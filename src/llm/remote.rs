//! A remote OpenAI-compatible server (mistralrs-server, vLLM, llama.cpp's server) for scale-out:
//! `POST {url}/v1/chat/completions` with `stream: true`, read as server-sent events.
//!
//! Constraints travel in the fields those servers read: `response_format` with a JSON schema, and
//! for grammars both mistral.rs's `grammar` object and vLLM's `guided_regex` / `guided_grammar`.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Backend, Completion, Constraint, GenerateRequest, LlmError, LlmSettings};

pub struct RemoteBackend {
    client: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: String,
}

impl RemoteBackend {
    pub fn new(settings: &LlmSettings) -> Result<Self, LlmError> {
        let base = settings.url.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LlmError::Load(format!(
                "llm.url must be an http(s) URL for the remote backend, not {:?}",
                settings.url
            )));
        }
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| LlmError::Load(e.to_string()))?;
        Ok(Self {
            client,
            endpoint: format!("{base}/v1/chat/completions"),
            model: if settings.remote_model.is_empty() {
                "default".into()
            } else {
                settings.remote_model.clone()
            },
            api_key: settings.api_key.clone(),
        })
    }

    fn body(&self, request: &GenerateRequest) -> Value {
        let messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature.unwrap_or(0.0),
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if let Some(p) = request.frequency_penalty {
            body["frequency_penalty"] = json!(p);
        }
        match &request.constraint {
            Constraint::None => {}
            Constraint::JsonSchema(schema) => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": schema, "strict": true},
                });
            }
            Constraint::Lark(g) => {
                body["grammar"] = json!({"type": "lark", "value": g});
                body["guided_grammar"] = json!(g);
            }
            Constraint::Regex(r) => {
                body["grammar"] = json!({"type": "regex", "value": r});
                body["guided_regex"] = json!(r);
            }
        }
        body
    }
}

impl Backend for RemoteBackend {
    fn describe(&self) -> String {
        format!("remote:{}", self.endpoint)
    }

    fn generate(
        &self,
        request: GenerateRequest,
        tokens: mpsc::Sender<String>,
    ) -> BoxFuture<'_, Result<Completion, LlmError>> {
        Box::pin(async move {
            let mut call = self.client.post(&self.endpoint).json(&self.body(&request));
            if !self.api_key.is_empty() {
                call = call.bearer_auth(&self.api_key);
            }
            let response = call
                .send()
                .await
                .map_err(|e| LlmError::Backend(format!("{}: {e}", self.endpoint)))?;
            let status = response.status();
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                let text: String = text.chars().take(300).collect();
                return Err(match status.as_u16() {
                    429 | 503 => LlmError::Overloaded {
                        waiting: 0,
                        retry_after: Duration::from_secs(2),
                    },
                    400 | 422 => LlmError::Invalid(text),
                    _ => LlmError::Backend(format!("{} answered {status}: {text}", self.endpoint)),
                });
            }
            let mut events = response.bytes_stream().eventsource();
            let mut out = Completion::default();
            while let Some(event) = events.next().await {
                let event = event.map_err(|e| LlmError::Backend(format!("stream: {e}")))?;
                if event.data.trim() == "[DONE]" {
                    break;
                }
                let chunk: Value = serde_json::from_str(&event.data).map_err(|e| {
                    LlmError::Backend(format!("the server sent an event that is not JSON: {e}"))
                })?;
                if let Some(err) = chunk.get("error") {
                    return Err(LlmError::Backend(err.to_string()));
                }
                for choice in chunk["choices"].as_array().into_iter().flatten() {
                    if let Some(piece) = choice["delta"]["content"].as_str()
                        && !piece.is_empty()
                    {
                        out.text.push_str(piece);
                        if tokens.send(piece.to_owned()).await.is_err() {
                            return Err(LlmError::Cancelled);
                        }
                    }
                    if let Some(reason) = choice["finish_reason"].as_str() {
                        out.finish_reason = reason.to_owned();
                    }
                }
                if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
                    out.prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0) as usize;
                    out.completion_tokens =
                        usage["completion_tokens"].as_u64().unwrap_or(0) as usize;
                }
            }
            Ok(out)
        })
    }
}
