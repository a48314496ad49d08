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
const OPENERS_EN: &str = "These|This|Here|You|Your|Try";

/// Words any English reply may use besides the shopper's and the products' own: the glue of a
/// sentence and a few words of warmth that claim nothing about a product.
const GLUE_EN: &[&str] = &[
    "a", "all", "also", "an", "and", "any", "are", "as", "at", "be", "both", "but", "by", "can",
    "check", "choice", "choices", "choose", "could", "each", "either", "enjoy", "every", "find",
    "for", "from", "good", "great", "have", "help", "here", "hope", "if", "in", "is", "it", "its",
    "just", "let", "like", "look", "looking", "love", "lovely", "match", "matches", "may", "me",
    "more", "my", "nice", "of", "on", "one", "ones", "option", "options", "or", "our", "out",
    "pick", "picks", "please", "right", "see", "so", "some", "suit", "suits", "take", "that",
    "the", "them", "these", "they", "this", "those", "to", "try", "us", "want", "we", "well",
    "what", "which", "will", "with", "would", "you", "your",
];

/// The words of `text` a reply may repeat: letters only (no digits), at most 24 characters.
pub(crate) fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphabetic() || c == '\'' || c == '-'))
        .map(|w| w.trim_matches(|c| c == '\'' || c == '-').to_lowercase())
        .filter(|w| !w.is_empty() && w.chars().count() <= 24 && w.chars().all(char::is_alphabetic))
}

/// The output constraint.
///
/// English: one or two sentences in the assistant's voice, made only of the shopper's words, the
/// candidates' words (names, brands, categories), and sentence glue ([`GLUE_EN`]); a candidate's
/// name with digits only verbatim. So the model can neither write a price nor claim something no
/// fact supports ("a luxury brand", "waterproof"). Chinese: one or two sentences without digits,
/// currency or markup (Chinese has no spaces to build a vocabulary on). The grammar ends after the
/// second sentence, so a small model cannot ramble or repeat itself.
pub fn reply_pattern(cards: &[Card], lang: Lang, shopper: &str) -> String {
    let mut names: Vec<String> = cards
        .iter()
        .filter(|c| c.name.chars().any(|ch| ch.is_ascii_digit()))
        .map(|c| regex::escape(c.name.trim()))
        .collect();
    names.sort();
    names.dedup();
    match lang {
        Lang::En => {
            let mut vocab: Vec<String> = GLUE_EN.iter().map(|w| (*w).to_owned()).collect();
            vocab.extend(words_of(shopper));
            for c in cards {
                vocab.extend(words_of(&c.name));
                vocab.extend(words_of(c.brand.as_deref().unwrap_or("")));
                vocab.extend(words_of(&c.category));
            }
            vocabulary_pattern(OPENERS_EN, vocab, names, 4, 18)
        }
        Lang::Zh => {
            let unit = if names.is_empty() {
                FREE.to_owned()
            } else {
                format!("(?:{FREE}|{})", names.join("|"))
            };
            let sentence = format!("{unit}{{4,120}}[。！？]");
            format!("{sentence}(?:{sentence})?")
        }
    }
}

/// One or two English sentences that open with one of `openers` (an alternation) and go on with
/// `min..=max` words, each from `vocab` (lower-case or capitalised, nothing else: "woUld" is how a
/// penalised model dodges its own repetition) or one of `verbatim` (already escaped).
pub(crate) fn vocabulary_pattern(
    openers: &str,
    mut vocab: Vec<String>,
    verbatim: Vec<String>,
    min: usize,
    max: usize,
) -> String {
    vocab.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    vocab.dedup();
    let mut alternatives: Vec<String> = vocab
        .iter()
        .flat_map(|w| {
            let mut chars = w.chars();
            let capital: String = chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
            [regex::escape(w), regex::escape(&capital)]
        })
        .collect();
    alternatives.dedup();
    alternatives.extend(verbatim);
    let word = format!("(?:{})", alternatives.join("|"));
    let rest = format!("(?:,? {word}){{{min},{max}}}[.!]");
    format!("(?:{openers}){rest}(?: {word}{rest})?")
}

/// The prompt for the sentences around a list of products.
pub fn product_prompt(shopper: &str, cards: &[Card], lang: Lang) -> Vec<ChatMessage> {
    let system = match lang {
        Lang::En => {
            "You are the shopping assistant of an online store, writing to a shopper. In one or two \
             short, friendly sentences, tell the shopper why the products listed below suit what \
             they asked for. Speak to the shopper as \"you\". Mention a product only by its exact \
             name from the list. Never write prices, numbers, or products that are not in the \
             list."
        }
        Lang::Zh => {
            "你是一家网店的购物助手。请用一到两句简短友好的话，向顾客介绍下面列出的商品。只能使用列表中的商品名称，\
             不要写价格或数字，也不要提到列表之外的商品。"
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
        .frequency_penalty(1.0)
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
                brand: Some("Fastrack".into()),
                category: "Watches > Men's Watches > Analog".into(),
                ..Card::default()
            },
            Card {
                name: "Bata Red Flats".into(),
                category: "Footwear > Women's Footwear > Flats".into(),
                ..Card::default()
            },
        ];
        let pattern = reply_pattern(&cards, Lang::En, "red flats for a party");
        let en = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
        assert!(en.is_match("Try the Fastrack 3089SL01 Analog Watch, a great pick."));
        assert!(en.is_match("These Bata red flats suit a party. You will love them all!"));
        assert!(!en.is_match("Try the Fastrack 3090SL01 watch."));
        assert!(!en.is_match("These flats cost ₹499 today."));
        assert!(!en.is_match("These flats cost Rs 499 today."));
        assert!(!en.is_match("These are <b>bold</b> flats."));
        // Claims no fact supports are not writable; nor role labels, a third sentence, or the
        // shopper's voice.
        assert!(!en.is_match("These flats are a luxury brand."));
        assert!(!en.is_match("These flats are waterproof."));
        assert!(!en.is_match("Shopper: I want flats."));
        assert!(!en.is_match("These are red flats. They suit a party. They are red flats."));
        assert!(!en.is_match("I am so glad you found me flats."));
        assert!(!en.is_match("These flats woUld suit a party."));
        let zh = regex::Regex::new(&format!(
            "^(?:{})$",
            reply_pattern(&cards, Lang::Zh, "红色平底鞋")
        ))
        .unwrap();
        assert!(zh.is_match("这双鞋很适合聚会。"));
        assert!(!zh.is_match("这双鞋只要499元。"));
    }
}
