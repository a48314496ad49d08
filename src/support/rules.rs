//! When a conversation goes to a person, and why.
//!
//! Checked on every shopper message before the bot answers. Each rule that fires gives a
//! [`Reason`]; the first one wins and is recorded with the escalation.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::intent::Intent;

/// The `[support]` escalation settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EscalationSettings {
    /// Bot replies in a row that failed (no results, a clarifying question, a thumbs down) before
    /// the next failure goes to a person.
    pub failures_in_a_row: usize,
    /// Damaged or missing deliveries of an order worth more than this (in the order's currency)
    /// go to a person.
    pub damage_value_threshold: f64,
    /// A service question (order, return, shipping) understood with less confidence than this goes
    /// to a person.
    pub min_service_confidence: f32,
    /// Frustration alone (without a request for a person) escalates.
    pub escalate_on_frustration: bool,
}

impl Default for EscalationSettings {
    fn default() -> Self {
        Self {
            failures_in_a_row: 2,
            damage_value_threshold: 2000.0,
            min_service_confidence: 0.35,
            escalate_on_frustration: true,
        }
    }
}

/// Why a conversation was escalated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Reason {
    /// The shopper asked for a person.
    Asked,
    /// Strong frustration ("this bot is useless").
    Frustration { cue: String },
    /// The bot failed several times in a row.
    RepeatedFailure { failures: usize },
    /// A payment dispute, or a damaged/missing delivery of a valuable order.
    Sensitive { topic: String },
    /// A service question the bot did not understand confidently.
    LowConfidence { intent: Intent, confidence: f32 },
}

impl Reason {
    /// A short line for the queue.
    pub fn describe(&self) -> String {
        match self {
            Self::Asked => "asked for a person".into(),
            Self::Frustration { cue } => format!("frustrated (\u{201c}{cue}\u{201d})"),
            Self::RepeatedFailure { failures } => format!("{failures} failed bot replies in a row"),
            Self::Sensitive { topic } => format!("sensitive: {topic}"),
            Self::LowConfidence { intent, confidence } => {
                format!("unsure {intent} question (confidence {confidence:.2})")
            }
        }
    }
}

/// What the rules look at for one message, before the bot answers it.
pub struct Signals<'a> {
    pub text: &'a str,
    pub intent: Intent,
    pub confidence: f32,
    /// The value of the order the conversation is about, when known.
    pub order_value: Option<f64>,
}

fn re(p: &str) -> Regex {
    Regex::new(p).unwrap_or_else(|e| panic!("bad pattern {p}: {e}"))
}

/// A person asked for, indirectly ("can I speak to someone", "转人工", "real human").
static ASKS_PERSON: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:real|actual|live)\s+(?:person|human|agent)\b|\b(?:speak|talk|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|some)?(?:one|body|person|human|agent|representative|manager)\b|\bcustomer\s+(?:care|service|support)\b|转人工|人工客服|真人|找客服",
    )
});
static FRUSTRATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:useless|stupid|idiot(?:ic)?|pathetic|ridiculous|waste\s+of\s+(?:my\s+)?time|not\s+helping|doesn'?t\s+help|fed\s+up|sick\s+of|worst|terrible|horrible|angry|furious|scam|cheat(?:ed|ing)?|fraud)\b|垃圾|没用|废物|气死|太差|骗子|投诉|不靠谱|烦死",
    )
});
static PAYMENT_DISPUTE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:charged\s+twice|double[\s-]?charged|charged\s+(?:me\s+)?(?:again|extra)|chargeback|unauthori[sz]ed\s+(?:charge|transaction|payment)|money\s+(?:was\s+)?deducted|refund\s+(?:not|never)\s+(?:received|credited|came)|haven'?t\s+(?:got|received)\s+(?:my\s+)?refund|payment\s+dispute)\b|扣了两次|重复扣款|多扣|盗刷|退款没到|没收到退款",
    )
});
static DAMAGE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:damaged|broken|defective|missing|never\s+arrived|not\s+delivered|wrong\s+item|empty\s+box|stolen)\b|破损|坏了|少发|漏发|没收到|发错|空盒",
    )
});

/// Whether the message speaks of a damaged, missing or wrong delivery (the caller then looks up
/// the order's value for [`Signals::order_value`]).
pub fn mentions_damage(text: &str) -> bool {
    DAMAGE.is_match(text)
}

/// The first rule that fires for this message before the bot answers, if any.
pub fn check(s: &Signals<'_>, settings: &EscalationSettings) -> Option<Reason> {
    if s.intent == Intent::HumanAgent || ASKS_PERSON.is_match(s.text) {
        return Some(Reason::Asked);
    }
    if let Some(m) = PAYMENT_DISPUTE.find(s.text) {
        return Some(Reason::Sensitive {
            topic: format!("payment dispute (\u{201c}{}\u{201d})", m.as_str()),
        });
    }
    if let (Some(m), Some(v)) = (DAMAGE.find(s.text), s.order_value)
        && v > settings.damage_value_threshold
    {
        return Some(Reason::Sensitive {
            topic: format!("{} delivery of an order worth {v:.0}", m.as_str()),
        });
    }
    if settings.escalate_on_frustration
        && let Some(cue) = frustration(s.text)
    {
        return Some(Reason::Frustration { cue });
    }
    if s.intent.is_service() && s.confidence < settings.min_service_confidence {
        return Some(Reason::LowConfidence {
            intent: s.intent,
            confidence: s.confidence,
        });
    }
    None
}

/// After the bot has drafted its answer: `failed_run` of its replies in a row ending with the
/// last one failed (a clarifying question, no results, a thumbs down, or a reply the shopper is
/// now rephrasing their way around). Escalates when this answer would fail once more and reach
/// `failures_in_a_row`, or when the shopper rephrases again after that many failures.
pub fn repeated_failure(
    failed_run: usize,
    this_fails: bool,
    rephrased: bool,
    settings: &EscalationSettings,
) -> Option<Reason> {
    let limit = settings.failures_in_a_row;
    if limit == 0 {
        return None;
    }
    if (this_fails && failed_run + 1 >= limit) || (rephrased && failed_run >= limit) {
        return Some(Reason::RepeatedFailure {
            failures: failed_run + 1,
        });
    }
    None
}

/// A frustration cue: a frustrated word, or shouting (three or more words in capitals).
fn frustration(text: &str) -> Option<String> {
    if let Some(m) = FRUSTRATION.find(text) {
        return Some(m.as_str().to_owned());
    }
    let shouted: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 3)
        .filter(|w| {
            w.chars()
                .filter(|c| c.is_alphabetic())
                .all(char::is_uppercase)
        })
        .collect();
    (shouted.len() >= 3).then(|| shouted.join(" "))
}

/// Whether `now` says what `before` said in other words: most of its content words are the
/// earlier message's (and it is not a refinement that adds several new words).
pub fn rephrases(before: &str, now: &str) -> bool {
    let words = |t: &str| -> std::collections::HashSet<String> {
        t.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 3)
            .map(str::to_owned)
            .collect()
    };
    let (a, b) = (words(before), words(now));
    if a.is_empty() || b.is_empty() {
        return !before.trim().is_empty() && before.trim().eq_ignore_ascii_case(now.trim());
    }
    let shared = a.intersection(&b).count();
    shared * 3 >= b.len() * 2 && shared * 2 >= a.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(text: &str) -> Signals<'_> {
        Signals {
            text,
            intent: Intent::ProductSearch,
            confidence: 0.9,
            order_value: None,
        }
    }

    #[test]
    fn direct_and_indirect_requests_for_a_person() {
        let s = EscalationSettings::default();
        let direct = Signals {
            intent: Intent::HumanAgent,
            ..signals("agent")
        };
        assert_eq!(check(&direct, &s), Some(Reason::Asked));
        assert_eq!(
            check(&signals("can I talk to someone please"), &s),
            Some(Reason::Asked)
        );
        assert_eq!(check(&signals("转人工"), &s), Some(Reason::Asked));
        assert!(matches!(
            check(&signals("this bot is useless"), &s),
            Some(Reason::Frustration { .. })
        ));
        assert!(matches!(
            check(&signals("WHY IS THIS SO HARD"), &s),
            Some(Reason::Frustration { .. })
        ));
        assert_eq!(check(&signals("red flats under 800"), &s), None);
    }

    #[test]
    fn repeated_failures_sensitive_topics_and_low_confidence() {
        let s = EscalationSettings::default();
        assert_eq!(
            repeated_failure(1, true, false, &s),
            Some(Reason::RepeatedFailure { failures: 2 })
        );
        // One failure is not yet a pattern; a good answer after failures is not one either.
        assert_eq!(repeated_failure(0, true, false, &s), None);
        assert_eq!(repeated_failure(3, false, false, &s), None);
        assert!(repeated_failure(2, false, true, &s).is_some());
        assert_eq!(check(&signals("Love them!!!"), &s), None);
        assert!(matches!(
            check(&signals("I was charged twice for one order"), &s),
            Some(Reason::Sensitive { .. })
        ));
        let cheap = Signals {
            order_value: Some(500.0),
            ..signals("the parcel arrived damaged")
        };
        assert_eq!(check(&cheap, &s), None);
        let dear = Signals {
            order_value: Some(13_999.0),
            ..signals("the parcel arrived damaged")
        };
        assert!(matches!(check(&dear, &s), Some(Reason::Sensitive { .. })));
        let unsure = Signals {
            intent: Intent::OrderStatus,
            confidence: 0.2,
            ..signals("hmm my thing")
        };
        assert!(matches!(
            check(&unsure, &s),
            Some(Reason::LowConfidence { .. })
        ));
    }

    #[test]
    fn a_rephrasing_shares_most_words_and_a_refinement_does_not() {
        assert!(rephrases("running shoes for men", "men's running shoes"));
        assert!(!rephrases("running shoes for men", "under 2000 in black"));
        assert!(!rephrases("hello", "red flats"));
    }
}
