//! Human support: when a conversation goes to a person (`rules.rs`), the queue and who has which
//! conversation (`service.rs`), the agents' view of a conversation with its summary
//! (`summary.rs`), and live updates across replicas (`relay.rs`).
//!
//! A conversation is in exactly one state: `bot` → `waiting_for_agent` (escalated, in the queue)
//! → `agent` (claimed by a named agent) → `bot` (handed back) or `closed` (with a resolution).
//! While a person has or is about to take the chat, the bot writes nothing of its own
//! (`chat::turn`). Every agent action is written to the audit log.

pub mod relay;
mod repo;
pub mod rules;
mod service;
pub mod summary;

use serde::{Deserialize, Serialize};

pub use relay::{Notice, NoticeKind, Relay, Wake};
pub use rules::{EscalationSettings, Reason};
pub use service::{AgentRef, CannedReply, ConversationView, Note, QueueItem, SupportService};

/// What can go wrong with an agent's request.
#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    #[error("conversation {0} not found")]
    NotFound(uuid::Uuid),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// The `[support]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SupportSettings {
    /// When a conversation goes to a person.
    pub escalation: EscalationSettings,
    /// The tags an agent closes a conversation with.
    pub resolutions: Vec<String>,
    /// Longest agent reply or note, in characters.
    pub max_message_chars: usize,
    /// The LLM writes the queue summary (English conversations); otherwise, and when it fails,
    /// the summary quotes the shopper.
    pub llm_summary: bool,
    /// Deadline for the LLM summary.
    pub summary_timeout_ms: u64,
}

impl Default for SupportSettings {
    fn default() -> Self {
        Self {
            escalation: EscalationSettings::default(),
            resolutions: [
                "resolved",
                "refund_issued",
                "replacement_sent",
                "order_info_given",
                "no_response",
                "not_resolved",
                "spam",
            ]
            .map(str::to_owned)
            .to_vec(),
            max_message_chars: 4000,
            llm_summary: true,
            summary_timeout_ms: 20_000,
        }
    }
}
