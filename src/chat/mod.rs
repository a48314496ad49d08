//! Conversations: the turn pipeline (ARCHITECTURE.md), the grounding check, reply composition.
//!
//! [`ChatService::turn`] takes one shopper message through the whole flow and reports what happens
//! as [`TurnEvent`]s (the web layer turns them into SSE, the CLI into JSON lines):
//!
//! 1. the message is stored before anything else;
//! 2. it is understood in the context of the conversation (intent + slots);
//! 3. the intent is routed: search and compare to ranking, product questions to the graph's facts,
//!    order status to the shopper's own orders, returns and shipping to the graph's policies, a
//!    request for a person to the escalation hook, and everything else to a polite refusal;
//! 4. cards go out as soon as ranking is done; text follows, written by the LLM under a regular
//!    expression that admits no digits and no currency, or templated when the LLM is slow, busy or
//!    failing;
//! 5. every sentence passes the grounding check before it is sent;
//! 6. the reply, its cards and the parsed intent are stored.

pub mod compose;
pub mod customer;
pub mod grounding;
pub mod refs;
pub mod reply;
pub mod repo;
mod turn;

use serde::{Deserialize, Serialize};

pub use reply::{Card, Reply, ReplyKind};
pub use turn::{ChatService, TurnEvent, TurnOutcome, TurnTicket};

/// The `[chat]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatSettings {
    pub max_message_chars: usize,
    pub history_turns: usize,
    pub cards: usize,
    pub llm_replies: bool,
    pub llm_languages: Vec<String>,
    pub reply_timeout_ms: u64,
    pub reply_max_tokens: usize,
    pub per_session_per_minute: u32,
    pub per_ip_per_minute: u32,
    pub max_verify_failures: i32,
    #[serde(skip_serializing)]
    pub customer_token_secret: secrecy::SecretString,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            max_message_chars: 1000,
            history_turns: 12,
            cards: 6,
            llm_replies: true,
            llm_languages: vec!["en".into()],
            reply_timeout_ms: 10_000,
            reply_max_tokens: 72,
            per_session_per_minute: 20,
            per_ip_per_minute: 60,
            max_verify_failures: 5,
            customer_token_secret: secrecy::SecretString::from(""),
        }
    }
}

/// What can go wrong with a turn before a reply can be written.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the message is empty")]
    Empty,
    #[error("the message is {0} characters long (limit {1})")]
    TooLong(usize, usize),
    #[error("session {0} not found")]
    UnknownSession(uuid::Uuid),
    #[error("a reply to this session's previous message is still being written")]
    Busy,
    #[error("this conversation is closed; start a new one")]
    Closed,
    #[error("the database failed: {0}")]
    Db(#[from] sqlx::Error),
    #[error("understanding the message failed: {0}")]
    Intent(#[from] crate::intent::parser::IntentError),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("invalid customer token: {0}")]
    Token(#[from] customer::TokenError),
}
