//! What an agent reads before claiming a conversation: the structured facts of the conversation
//! (intents asked, products shown, order ids) and a one- or two-sentence summary.
//!
//! The summary is written by the LLM under a regular expression built from the transcript: it may
//! use only the transcript's own words (the shopper's, the bot's replies, the names of the products
//! shown), tokens with digits only as the shopper wrote them (an order id), and a short list of
//! sentence glue. So it cannot introduce a product, a price or a claim the conversation does not
//! hold. Without a model, for Chinese conversations, and when the model fails or times out, the
//! summary quotes the shopper's first and latest messages instead.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::chat::compose::{vocabulary_pattern, words_of};
use crate::chat::repo::StoredMessage;
use crate::llm::{ChatMessage, Constraint, GenerateRequest, LlmHandle, Role};

/// The structured facts of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    /// The shopper's intents in order, repeats collapsed.
    pub intents: Vec<String>,
    /// Names of the products the shopper was shown, first shown first (at most 8).
    pub products: Vec<String>,
    /// Order ids the shopper mentioned or proved.
    pub order_ids: Vec<String>,
    pub messages: usize,
}

/// The facts of `messages`; `verified` are the orders the shopper proved are theirs.
pub fn facts(messages: &[StoredMessage], verified: &[String]) -> Facts {
    let mut f = Facts {
        messages: messages.len(),
        ..Facts::default()
    };
    for m in messages {
        if m.role == "user" {
            if let Some(i) = m.meta.get("intent").and_then(Value::as_str)
                && f.intents.last().map(String::as_str) != Some(i)
            {
                f.intents.push(i.to_owned());
            }
            if let Some(o) = m.meta.pointer("/slots/order_id").and_then(Value::as_str)
                && !f.order_ids.iter().any(|x| x == o)
            {
                f.order_ids.push(o.to_owned());
            }
        }
        for c in &m.cards {
            if f.products.len() < 8 && !f.products.contains(&c.name) {
                f.products.push(c.name.clone());
            }
        }
    }
    for o in verified {
        if !f.order_ids.contains(o) {
            f.order_ids.push(o.clone());
        }
    }
    f
}

/// Words a summary may use besides the transcript's: function words and the words for who said
/// what. No words of warmth or judgement ("love", "great"): a summary reports, it does not colour.
const GLUE_SUMMARY: &[&str] = &[
    "a",
    "about",
    "after",
    "agent",
    "also",
    "an",
    "and",
    "any",
    "are",
    "as",
    "asked",
    "asks",
    "assistant",
    "at",
    "be",
    "bot",
    "but",
    "by",
    "did",
    "does",
    "for",
    "from",
    "had",
    "has",
    "have",
    "human",
    "in",
    "is",
    "it",
    "its",
    "looking",
    "needs",
    "no",
    "not",
    "of",
    "on",
    "one",
    "or",
    "person",
    "said",
    "says",
    "shopper",
    "shown",
    "some",
    "still",
    "that",
    "the",
    "their",
    "them",
    "then",
    "they",
    "this",
    "those",
    "to",
    "wanted",
    "wants",
    "was",
    "were",
    "which",
    "with",
    "yet",
];

fn clip(text: &str, max: usize) -> String {
    let t: String = text.chars().take(max).collect();
    if t.chars().count() < text.chars().count() {
        format!("{t}…")
    } else {
        t
    }
}

/// The summary without a model: the shopper's first and latest messages, quoted.
pub fn extractive(messages: &[StoredMessage], zh: bool) -> String {
    let said: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == "user")
        .map(|m| m.text.as_str())
        .collect();
    match (said.first(), said.last(), zh) {
        (None, _, false) => "The shopper has not written anything yet.".into(),
        (None, _, true) => "顾客还没有发言。".into(),
        (Some(a), Some(b), false) if said.len() > 1 => format!(
            "First asked \u{201c}{}\u{201d}; latest: \u{201c}{}\u{201d} ({} messages from the shopper).",
            clip(a, 120),
            clip(b, 120),
            said.len()
        ),
        (Some(a), _, false) => format!("Asked \u{201c}{}\u{201d}.", clip(a, 160)),
        (Some(a), Some(b), true) if said.len() > 1 => format!(
            "最初问：\u{201c}{}\u{201d}；最近说：\u{201c}{}\u{201d}（顾客共发了{}条消息）。",
            clip(a, 80),
            clip(b, 80),
            said.len()
        ),
        (Some(a), _, true) => format!("顾客问：\u{201c}{}\u{201d}。", clip(a, 120)),
    }
}

/// What the model reads: the shopper's last 12 messages (clipped) and the products they were
/// shown, in order. The bot's own sentences are left out: a small model retells them instead of
/// the shopper's request.
fn transcript(messages: &[StoredMessage]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for m in messages {
        if m.role == "user" {
            lines.push(format!("Shopper: {}", clip(&m.text, 300)));
        } else if !m.cards.is_empty() {
            let names: Vec<&str> = m.cards.iter().take(3).map(|c| c.name.as_str()).collect();
            lines.push(format!("Shown: {}", names.join("; ")));
        }
    }
    let start = lines.len().saturating_sub(12);
    lines[start..].join("\n")
}

/// The constraint for an English summary of `messages`: one sentence opening "The shopper", made
/// of the shopper's words, the shown products' names and [`GLUE_SUMMARY`].
pub fn pattern(messages: &[StoredMessage]) -> String {
    let mut vocab: Vec<String> = GLUE_SUMMARY.iter().map(|w| (*w).to_owned()).collect();
    let mut verbatim = Vec::new();
    for m in messages {
        // The shopper's words and the names of what they were shown; not the bot's or the
        // agent's sentences (a summary retelling "you're number 1 in the queue" says nothing).
        if m.role == "user" {
            vocab.extend(words_of(&m.text));
        }
        for c in &m.cards {
            vocab.extend(words_of(&c.name));
        }
        if m.role == "user" {
            // Tokens with digits (order ids, a budget) only exactly as the shopper wrote them.
            verbatim.extend(
                m.text
                    .split(|c: char| !(c.is_alphanumeric() || c == '-'))
                    .filter(|w| w.chars().any(|c| c.is_ascii_digit()) && w.len() <= 24)
                    .map(regex::escape),
            );
        }
    }
    verbatim.sort();
    verbatim.dedup();
    vocabulary_pattern("The shopper", vocab, verbatim, 3, 16)
}

/// Where a summary came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Llm,
    Extractive,
}

/// Writes the summary: the LLM's for English when a model is given, else (and on failure) the
/// extractive one.
pub async fn write(
    llm: Option<&LlmHandle>,
    messages: &[StoredMessage],
    zh: bool,
    timeout: Duration,
) -> (String, Source) {
    let has_user = messages.iter().any(|m| m.role == "user");
    if let (Some(llm), false, true) = (llm, zh, has_user) {
        let request = GenerateRequest::new(vec![
            ChatMessage::new(
                Role::System,
                "You summarise a shop's chat for the support agent who takes it over. In one \
                 short sentence, say what the shopper asked for. Use only what the transcript \
                 says.",
            ),
            ChatMessage::new(Role::User, transcript(messages)),
        ])
        .max_tokens(60)
        .constraint(Constraint::Regex(pattern(messages)))
        .frequency_penalty(1.0)
        .timeout(timeout);
        match llm.generate(request).await {
            Ok(c) if c.finish_reason != "length" && !c.text.trim().is_empty() => {
                // One sentence: a small model's second one mostly repeats or wanders.
                let text = c.text.trim();
                let end = text.find(['.', '!']).map_or(text.len(), |i| i + 1);
                return (text[..end].to_owned(), Source::Llm);
            }
            Ok(c) => tracing::debug!(finish = %c.finish_reason, "summary cut off; quoting instead"),
            Err(e) => tracing::warn!(error = %e, "the LLM summary failed; quoting the shopper"),
        }
    }
    (extractive(messages, zh), Source::Extractive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Card;
    use serde_json::json;

    fn msg(id: i64, role: &str, text: &str, meta: Value, cards: Vec<Card>) -> StoredMessage {
        StoredMessage {
            id,
            role: role.into(),
            text: text.into(),
            kind: None,
            cards,
            created_at: chrono::Utc::now(),
            agent_name: None,
            meta,
        }
    }

    fn conversation() -> Vec<StoredMessage> {
        let card = Card {
            name: "Bata Red Flats".into(),
            ..Card::default()
        };
        vec![
            msg(
                1,
                "user",
                "red flats under 800",
                json!({"intent": "product_search"}),
                vec![],
            ),
            msg(2, "assistant", "Here are red flats.", json!({}), vec![card]),
            msg(
                3,
                "user",
                "where is order OD-4417",
                json!({"intent": "order_status", "slots": {"order_id": "OD-4417"}}),
                vec![],
            ),
            msg(
                4,
                "user",
                "still waiting",
                json!({"intent": "order_status"}),
                vec![],
            ),
        ]
    }

    #[test]
    fn facts_collect_intents_products_and_orders() {
        let f = facts(&conversation(), &["OD-9".into()]);
        assert_eq!(f.intents, vec!["product_search", "order_status"]);
        assert_eq!(f.products, vec!["Bata Red Flats"]);
        assert_eq!(f.order_ids, vec!["OD-4417", "OD-9"]);
        assert_eq!(f.messages, 4);
    }

    #[test]
    fn the_summary_pattern_admits_only_the_transcripts_words() {
        let re = regex::Regex::new(&format!("^(?:{})$", pattern(&conversation()))).unwrap();
        assert!(re.is_match("The shopper wants red flats and asked where order OD-4417 is."));
        assert!(re.is_match("The shopper was shown Bata Red Flats, still waiting on an order."));
        // The bot's own sentences are not material for the summary.
        assert!(!re.is_match("The shopper asked, here are red flats."));
        // No price, product or claim the transcript does not hold.
        assert!(!re.is_match("The shopper wants red flats for 799."));
        assert!(!re.is_match("The shopper wants a refund for Nike shoes."));
        assert!(!re.is_match("The shopper asked where order OD-4418 is."));
    }

    #[test]
    fn the_extractive_summary_quotes_the_shopper() {
        let s = extractive(&conversation(), false);
        assert!(
            s.contains("red flats under 800") && s.contains("still waiting"),
            "{s}"
        );
        assert!(extractive(&conversation(), true).contains("still waiting"));
        assert!(extractive(&[], false).contains("not written"));
    }
}
