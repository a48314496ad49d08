//! The LLM's part of a reply: a sentence or two around the product cards.
//!
//! Grounded by construction, then checked:
//! - the cards are built from catalog rows; the model only writes the words around them;
//! - generation runs under a regular expression (llguidance) that admits no digit, no currency
//!   sign and no markup, so the model cannot write a price; a product name that contains a digit
//!   can only be written as one of the candidate names, verbatim;
//! - the text streams sentence by sentence: each sentence passes [`grounding::check`] before it is
//!   sent, so a sentence naming a product or figure outside the facts never reaches the shopper.
//!
//! When the model is slow (past `chat.reply_timeout_ms`), overloaded or failing, the caller sends
//! its templated text with the same cards instead.

use std::time::Duration;

use super::grounding::{self, CatalogNames, Checked, Dropped, Facts, ProductFact};
use super::reply::{Card, Lang};
use tokio::sync::mpsc;

use crate::llm::{ChatMessage, Constraint, GenerateRequest, LlmError, LlmEvent, LlmHandle, Role};

/// Facts for a reply that shows `cards` (and may also state `numbers`).
pub fn facts_of(cards: &[Card], numbers: Vec<f64>) -> Facts {
    Facts {
        products: cards
            .iter()
            .map(|c| ProductFact {
                name: c.name.clone(),
                name_zh: c.name_zh.clone(),
                brand: c.brand.clone(),
                price: c.price,
            })
            .collect(),
        numbers,
    }
}

/// Characters the model may write inside a sentence, outside a product name: anything but digits
/// (ASCII, full-width), currency signs, markup, line breaks, colons (no "Shopper:" role labels)
/// and sentence ends.
const FREE: &str = r"[^0-9０-９₹$¥€£#<>*_`\[\]{}|\\\n\r\t:：.!?。！？]";

/// How an English reply may open: in the assistant's voice, speaking to the shopper.
const OPENERS_EN: &str = "These|This|The|They|Here|You|Your|Our|Take|Try|Check|Each|Both|All|For";

/// The output constraint: one or two sentences of free text (or candidate names written
/// exactly), in the assistant's voice for English. The grammar ends after the second sentence, so a
/// small model cannot ramble or repeat itself.
pub fn reply_pattern(cards: &[Card], lang: Lang) -> String {
    let mut names: Vec<String> = cards
        .iter()
        .filter(|c| c.name.chars().any(|ch| ch.is_ascii_digit()))
        .map(|c| regex::escape(c.name.trim()))
        .collect();
    names.sort();
    names.dedup();
    let unit = if names.is_empty() {
        FREE.to_owned()
    } else {
        format!("(?:{FREE}|{})", names.join("|"))
    };
    match lang {
        Lang::En => {
            let sentence = format!("{unit}{{8,200}}[.!?]");
            format!("(?:{OPENERS_EN}){sentence}(?: [A-Z]{sentence})?")
        }
        Lang::Zh => {
            let sentence = format!("{unit}{{4,120}}[。！？]");
            format!("{sentence}(?:{sentence})?")
        }
    }
}

/// The prompt for the sentences around a list of products.
pub fn product_prompt(shopper: &str, cards: &[Card], lang: Lang) -> Vec<ChatMessage> {
    let system = match lang {
        Lang::En => {
            "You are the shopping assistant of an online store, writing to a shopper. In one or two \
             short, friendly sentences, tell the shopper why the products listed below suit what \
             they asked for. Speak to the shopper as \"you\". Mention a product only by its exact \
             name from the list. Never write prices, numbers, or products that are not in the \
             list. The product cards with prices are shown under your text."
        }
        Lang::Zh => {
            "你是一家网店的购物助手。请用一到两句简短友好的话，向顾客介绍下面列出的商品。只能使用列表中的商品名称，\
             不要写价格或数字，也不要提到列表之外的商品。带价格的商品卡片会显示在你的文字下方。"
        }
    };
    let mut list = String::new();
    for c in cards {
        list.push_str("- ");
        list.push_str(c.name_in(lang));
        if let Some(b) = &c.brand {
            list.push_str(" (");
            list.push_str(b);
            list.push(')');
        }
        list.push('\n');
    }
    let user = match lang {
        Lang::En => format!("Shopper: {shopper}\nProducts:\n{list}"),
        Lang::Zh => format!("顾客：{shopper}\n商品：\n{list}"),
    };
    vec![
        ChatMessage::new(Role::System, system),
        ChatMessage::new(Role::User, user),
    ]
}

/// What the model's text came to.
#[derive(Debug, Default)]
pub struct Composed {
    /// The checked text, as sent.
    pub text: String,
    pub dropped: Vec<Dropped>,
    pub completion_tokens: usize,
    /// The model's own time to first token.
    pub ttft: Duration,
    /// When the first checked sentence was sent.
    pub first_sentence_at: Option<std::time::Instant>,
    /// Why generation ended early (timeout, overload, backend failure); what was sent stays sent.
    pub error: Option<LlmError>,
}

impl Composed {
    /// Checks one sentence; returns it (trimmed) when it passes.
    fn admit(&mut self, sentence: &str, facts: &Facts, catalog: &CatalogNames) -> Option<String> {
        let Checked { text, dropped } = grounding::check(sentence, facts, catalog);
        self.dropped.extend(dropped);
        let text = text.trim();
        // A small model repeats itself; a sentence said once is enough.
        if text.is_empty() || self.text.contains(text) {
            return None;
        }
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(text);
        self.first_sentence_at
            .get_or_insert_with(std::time::Instant::now);
        Some(text.to_owned())
    }
}

/// Generates text for `messages` under `pattern` and sends each sentence that passes the check
/// (trimmed, wrapped by `wrap`) to `out`, in order. On timeout, overload or a backend error the
/// result carries the error and the text sent so far; the caller's template covers the rest.
#[allow(clippy::too_many_arguments)]
pub async fn stream_checked<T: Send>(
    llm: &LlmHandle,
    messages: Vec<ChatMessage>,
    pattern: String,
    max_tokens: usize,
    timeout: Duration,
    facts: &Facts,
    catalog: &CatalogNames,
    out: &mpsc::Sender<T>,
    wrap: impl Fn(String) -> T,
) -> Composed {
    let request = GenerateRequest::new(messages)
        .max_tokens(max_tokens)
        .constraint(Constraint::Regex(pattern))
        .timeout(timeout);
    let mut composed = Composed::default();
    let mut stream = match llm.stream(request) {
        Ok(s) => s,
        Err(e) => {
            composed.error = Some(e);
            return composed;
        }
    };
    let mut pending = String::new();
    while let Some(event) = stream.next().await {
        match event {
            Err(e) => {
                composed.error = Some(e);
                return composed;
            }
            Ok(LlmEvent::Token(t)) => {
                pending.push_str(&t);
                // Every sentence but the last is complete.
                let done: Vec<String> = {
                    let parts = grounding::sentences(&pending);
                    parts[..parts.len().saturating_sub(1)]
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect()
                };
                let complete: usize = done.iter().map(String::len).sum();
                pending.drain(..complete);
                for s in done {
                    if let Some(piece) = composed.admit(&s, facts, catalog) {
                        let _ = out.send(wrap(piece)).await;
                    }
                }
            }
            Ok(LlmEvent::Done(c)) => {
                composed.completion_tokens = c.completion_tokens;
                composed.ttft = c.ttft;
                // A sentence cut off by the token limit is left out.
                let rest = pending.trim().to_owned();
                let finished = rest.ends_with(['.', '!', '?', '。', '！', '？']);
                if !rest.is_empty()
                    && (finished || c.finish_reason != "length")
                    && let Some(piece) = composed.admit(&rest, facts, catalog)
                {
                    let _ = out.send(wrap(piece)).await;
                }
                return composed;
            }
        }
    }
    composed.error = Some(LlmError::Cancelled);
    composed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_admits_candidate_names_and_no_other_digits() {
        let cards = vec![
            Card {
                name: "Fastrack 3089SL01 Analog Watch".into(),
                ..Card::default()
            },
            Card {
                name: "Bata Red Flats".into(),
                ..Card::default()
            },
        ];
        let en = regex::Regex::new(&format!("^(?:{})$", reply_pattern(&cards, Lang::En))).unwrap();
        assert!(en.is_match("Try the Fastrack 3089SL01 Analog Watch, a classic."));
        assert!(en.is_match("The Bata Red Flats suit a party. You will love them!"));
        assert!(!en.is_match("The Fastrack 3090SL01 is great."));
        assert!(!en.is_match("These cost ₹499 today."));
        assert!(!en.is_match("These cost Rs 499 today."));
        assert!(!en.is_match("These are <b>bold</b>."));
        // Role labels, a third sentence, and openings in the shopper's voice are not writable.
        assert!(!en.is_match("Shopper: I want flats."));
        assert!(!en.is_match("These are nice. They are red. They are cheap."));
        assert!(!en.is_match("I'm so glad you found me flats."));
        let zh = regex::Regex::new(&format!("^(?:{})$", reply_pattern(&cards, Lang::Zh))).unwrap();
        assert!(zh.is_match("这双鞋很适合聚会。"));
        assert!(!zh.is_match("这双鞋只要499元。"));
    }
}
