//! [`IntentParser`]: one message in the context of its history → intent and slots.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::classifier::IntentClassifier;
use super::cues::{self, Context};
use super::dialogue::DialogueState;
use super::slots::{Stated, extract};
use super::{Intent, Slots, Turn};
use crate::embed::Embedder;
use crate::graph::KnowledgeGraph;
use crate::llm::{LlmHandle, Role};

/// When the LLM path runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LlmMode {
    /// Fast path only.
    Never,
    /// When the fast path's confidence is below `intent.threshold`.
    Auto,
    /// On every message (a GPU or a remote model).
    Always,
}

/// The `[intent]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntentSettings {
    /// Where `aisle train intents` writes intent-v<N>.safetensors; the newest is used, else the
    /// built-in model.
    pub model_dir: PathBuf,
    pub llm: LlmMode,
    /// Below this classifier confidence the fast path counts as unsure.
    pub threshold: f32,
    /// Deadline for the LLM path; past it the fast path's answer stands.
    pub llm_timeout_ms: u64,
}

impl Default for IntentSettings {
    fn default() -> Self {
        Self {
            model_dir: "models/intent".into(),
            llm: LlmMode::Auto,
            threshold: 0.5,
            llm_timeout_ms: 20_000,
        }
    }
}

/// Which path produced a parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParsePath {
    Fast,
    Llm,
}

/// The understanding of one message.
#[derive(Debug, Clone, Serialize)]
pub struct Parse {
    pub intent: Intent,
    pub slots: Slots,
    /// The fast path's probability for `intent` (1 for a decisive rule).
    pub confidence: f32,
    pub path: ParsePath,
    #[serde(skip)]
    pub elapsed: Duration,
    /// Why the LLM path's answer was not used, when it ran and was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error("the message is empty")]
    Empty,
    #[error("intent classifier: {0}")]
    Classifier(#[from] super::classifier::ClassifierError),
    #[error("embedding: {0}")]
    Embed(String),
}

/// What the fast path knows about a message, kept for the LLM path.
pub struct FastResult {
    pub parse: Parse,
    pub probabilities: [f32; 9],
    pub stated: Stated,
    pub state: DialogueState,
}

/// Dialogue understanding. Cheap to clone.
#[derive(Clone)]
pub struct IntentParser {
    embedder: Option<Arc<Embedder>>,
    classifier: Option<Arc<IntentClassifier>>,
    llm: Option<LlmHandle>,
    settings: IntentSettings,
}

impl IntentParser {
    pub fn new(
        embedder: Option<Arc<Embedder>>,
        classifier: Option<Arc<IntentClassifier>>,
        llm: Option<LlmHandle>,
        settings: IntentSettings,
    ) -> Self {
        if classifier.is_some() && embedder.is_none() {
            tracing::warn!("intent classifier present but no embedding model: using cue rules");
        }
        Self {
            embedder,
            classifier,
            llm,
            settings,
        }
    }

    /// Loads the newest intent model from the settings' folder (or the built-in one).
    pub fn from_settings(
        settings: &IntentSettings,
        embedder: Option<Arc<Embedder>>,
        llm: Option<LlmHandle>,
    ) -> Result<Self, IntentError> {
        let classifier = IntentClassifier::load_newest(&settings.model_dir)?.map(Arc::new);
        if classifier.is_none() {
            tracing::warn!("no intent model found; intents come from cue rules");
        }
        Ok(Self::new(embedder, classifier, llm, settings.clone()))
    }

    pub fn settings(&self) -> &IntentSettings {
        &self.settings
    }

    pub fn classifier(&self) -> Option<&IntentClassifier> {
        self.classifier.as_deref()
    }

    pub fn has_llm(&self) -> bool {
        self.llm.is_some()
    }

    /// The classifier's input for a message: its embedding, then its cues.
    pub fn input(
        &self,
        text: &str,
        stated: &Stated,
        ctx: Context,
    ) -> Result<Vec<f32>, IntentError> {
        let embedder = self
            .embedder
            .as_ref()
            .ok_or_else(|| IntentError::Embed("no embedding model".into()))?;
        let mut v = embedder
            .embed(&[text])
            .map_err(|e| IntentError::Embed(e.to_string()))?
            .pop()
            .unwrap_or_default();
        v.extend(cues::vector(text, stated, ctx));
        Ok(v)
    }

    /// The intent probabilities of one message in context.
    fn classify(&self, text: &str, stated: &Stated, ctx: Context) -> Result<[f32; 9], IntentError> {
        if cues::is_injection(text) {
            let mut p = [0.0; 9];
            p[Intent::OutOfScope.index()] = 1.0;
            return Ok(p);
        }
        match (&self.classifier, &self.embedder) {
            (Some(c), Some(_)) => Ok(c.predict(&self.input(text, stated, ctx)?)?),
            _ => Ok(rule_probabilities(&cues::vector(text, stated, ctx))),
        }
    }

    /// Replays the history's user turns through the fast path to rebuild the dialogue state.
    pub fn state_of(
        &self,
        graph: &KnowledgeGraph,
        history: &[Turn],
    ) -> Result<DialogueState, IntentError> {
        let mut state = DialogueState::default();
        for turn in history {
            match turn.role {
                Role::User => {
                    let stated = extract(graph, &turn.text);
                    let p = self.classify(&turn.text, &stated, context(&state))?;
                    state.user(argmax(&p), &stated.slots);
                }
                _ => state.assistant(&turn.text),
            }
        }
        Ok(state)
    }

    /// The fast path: gazetteer, patterns and the classifier.
    pub fn fast(
        &self,
        graph: &KnowledgeGraph,
        history: &[Turn],
        text: &str,
    ) -> Result<FastResult, IntentError> {
        let started = Instant::now();
        let text = text.trim();
        if text.is_empty() {
            return Err(IntentError::Empty);
        }
        let state = self.state_of(graph, history)?;
        let stated = extract(graph, text);
        let probabilities = self.classify(text, &stated, context(&state))?;
        let intent = argmax(&probabilities);
        let slots = state.resolve(intent, &stated.slots);
        Ok(FastResult {
            parse: Parse {
                intent,
                slots,
                confidence: probabilities[intent.index()],
                path: ParsePath::Fast,
                elapsed: started.elapsed(),
                llm_note: None,
            },
            probabilities,
            stated,
            state,
        })
    }

    /// Fast path, then the LLM path when the settings call for it (always, or when unsure).
    pub async fn parse(
        &self,
        graph: &KnowledgeGraph,
        history: &[Turn],
        text: &str,
        mode: Option<LlmMode>,
    ) -> Result<Parse, IntentError> {
        let started = Instant::now();
        let fast = self.fast(graph, history, text)?;
        let mode = mode.unwrap_or(self.settings.llm);
        let unsure = fast.parse.confidence < self.settings.threshold;
        let wanted = match mode {
            LlmMode::Never => false,
            LlmMode::Auto => unsure,
            LlmMode::Always => true,
        };
        // A decisive rule (an injection) is never second-guessed.
        let decisive = fast.parse.confidence >= 1.0 && cues::is_injection(text);
        let Some(llm) = self.llm.as_ref().filter(|_| wanted && !decisive) else {
            return Ok(fast.parse);
        };
        let timeout = Duration::from_millis(self.settings.llm_timeout_ms);
        let mut parse = match super::llm::extract(llm, history, text.trim(), timeout).await {
            Ok(answer) => super::llm::combine(&fast, answer, text, history, mode),
            Err(e) => {
                let mut p = fast.parse.clone();
                p.llm_note = Some(e.to_string());
                p
            }
        };
        parse.elapsed = started.elapsed();
        Ok(parse)
    }
}

/// The cue context a dialogue state gives.
pub fn context(state: &DialogueState) -> Context {
    Context {
        products_shown: state.products_shown,
        earlier_search: state.earlier_search,
        earlier_service: state.earlier_service,
        turns: state.turns,
    }
}

pub(super) fn argmax(p: &[f32; 9]) -> Intent {
    let best = p
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    Intent::ALL[best]
}

/// Without a trained model (or an embedding model): a fixed reading of the cues, so the service
/// still answers. Cue order is [`cues::names`].
fn rule_probabilities(v: &[f32]) -> [f32; 9] {
    let names = cues::names();
    let cue = |n: &str| names.iter().position(|x| x == n).map_or(0.0, |i| v[i]);
    let mut score = [0.0f32; 9];
    let mut set = |i: Intent, s: f32| score[i.index()] += s;
    set(
        Intent::OutOfScope,
        3.0 * cue("injection")
            + 2.0 * cue("cue_authority")
            + 2.0 * cue("cue_others_data")
            + 1.5 * cue("cue_offtopic"),
    );
    set(
        Intent::Greeting,
        2.0 * cue("cue_greeting") + cue("short") - cue("names_product"),
    );
    set(Intent::HumanAgent, 2.5 * cue("cue_human"));
    set(Intent::ReturnRefund, 2.2 * cue("cue_return"));
    set(
        Intent::OrderStatus,
        1.8 * cue("cue_order") + cue("has_order_id"),
    );
    set(Intent::ShippingInfo, 1.9 * cue("cue_shipping"));
    set(
        Intent::Compare,
        2.0 * cue("cue_compare") * (cue("has_product_ref") + cue("products_shown")).min(1.0)
            + cue("cue_compare"),
    );
    set(
        Intent::ProductQuestion,
        1.5 * cue("cue_question") + cue("has_product_ref"),
    );
    set(
        Intent::ProductSearch,
        0.5 + cue("cue_search")
            + cue("has_category")
            + 0.5 * cue("has_price")
            + 0.5 * cue("has_facet")
            + 0.5 * cue("cue_refinement") * cue("earlier_search"),
    );
    let max = score.iter().copied().fold(f32::MIN, f32::max);
    let exp: Vec<f32> = score.iter().map(|s| (s - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut p = [0.0; 9];
    for (o, e) in p.iter_mut().zip(&exp) {
        *o = e / sum;
    }
    p
}
