//! Labelled messages: our own files (`eval/intents/*.jsonl`, the format of
//! ../shared/eval-samples/intents.sample.jsonl) and public sets mapped onto our taxonomy.
//!
//! Label mapping (documented in eval/intents/README.md):
//! - Bitext customer support: track_order → order_status; get_refund, track_refund,
//!   check_refund_policy, cancel_order → return_refund; delivery_options, delivery_period →
//!   shipping_info; contact_human_agent, contact_customer_service → human_agent. Account,
//!   invoice, payment, newsletter and review intents have no counterpart and are left out.
//! - CLINC150: oos → out_of_scope; greeting, goodbye, thank_you → greeting; order_status →
//!   order_status; every other intent (banking, travel, cooking, small talk ...) is off-topic for
//!   a store → out_of_scope, except the few that overlap shopping (order, shopping_list, ...),
//!   which are left out.
//!
//! Public rows are split by a hash of their text: one in five is held out for evaluation and
//! never trained on.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{Intent, Slots, Turn};

/// One labelled message.
#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    pub id: String,
    #[serde(default)]
    pub lang: String,
    #[serde(default)]
    pub history: Vec<Turn>,
    pub text: String,
    pub expected: Expected,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Expected {
    pub intent: String,
    /// `None` when the source labels intents only.
    #[serde(default)]
    pub slots: Option<Slots>,
}

/// Which part of a public set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Heldout,
    All,
}

fn heldout(text: &str) -> bool {
    super::classifier::split(text, 5)
}

fn keep(split: Split, text: &str) -> bool {
    match split {
        Split::All => true,
        Split::Train => !heldout(text),
        Split::Heldout => heldout(text),
    }
}

/// Reads a JSON Lines file of labelled messages; a bad line is an error naming it.
pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Labelled>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Labelled = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), n + 1))?;
        if Intent::parse(&row.expected.intent).is_none() {
            anyhow::bail!(
                "{} line {}: unknown intent {:?}",
                path.display(),
                n + 1,
                row.expected.intent
            );
        }
        out.push(row);
    }
    Ok(out)
}

const BITEXT_MAP: &[(&str, Intent)] = &[
    ("track_order", Intent::OrderStatus),
    ("get_refund", Intent::ReturnRefund),
    ("track_refund", Intent::ReturnRefund),
    ("check_refund_policy", Intent::ReturnRefund),
    ("cancel_order", Intent::ReturnRefund),
    ("delivery_options", Intent::ShippingInfo),
    ("delivery_period", Intent::ShippingInfo),
    ("contact_human_agent", Intent::HumanAgent),
    ("contact_customer_service", Intent::HumanAgent),
];

#[derive(Deserialize)]
struct BitextRow {
    instruction: String,
    intent: String,
}

/// The Bitext customer-support CSV, mapped; at most `per_intent` rows of each of our intents.
pub fn read_bitext(path: &Path, split: Split, per_intent: usize) -> anyhow::Result<Vec<Labelled>> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut taken: HashMap<Intent, usize> = HashMap::new();
    for (n, row) in reader.deserialize::<BitextRow>().enumerate() {
        let row = row.map_err(|e| anyhow::anyhow!("{} row {}: {e}", path.display(), n + 1))?;
        let Some(&(_, intent)) = BITEXT_MAP.iter().find(|(name, _)| *name == row.intent) else {
            continue;
        };
        if !keep(split, &row.instruction) {
            continue;
        }
        let count = taken.entry(intent).or_default();
        if *count >= per_intent {
            continue;
        }
        *count += 1;
        out.push(Labelled {
            id: format!("bitext-{}", n + 1),
            lang: "en".into(),
            history: Vec::new(),
            // Bitext writes placeholders like {{Order Number}}; a shopper writes a number.
            text: row
                .instruction
                .replace("{{Order Number}}", "OD4412873")
                .replace("{{", "")
                .replace("}}", ""),
            expected: Expected {
                intent: intent.as_str().into(),
                slots: None,
            },
        });
    }
    Ok(out)
}

/// CLINC150 intents that overlap shopping and so are neither off-topic nor ours.
const CLINC_SKIP: &[&str] = &[
    "order",
    "shopping_list",
    "shopping_list_update",
    "order_checks",
    "damaged_card",
    "replacement_card_duration",
    "card_declined",
    "report_lost_card",
    "cancel",
    "make_call",
];

/// CLINC150 (`data_full.json`) mapped: out-of-scope rows and off-topic intents become
/// out_of_scope, small-talk greetings become greeting. At most `per_intent` rows per CLINC intent.
pub fn read_clinc(path: &Path, split: Split, per_intent: usize) -> anyhow::Result<Vec<Labelled>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let data: HashMap<String, Vec<(String, String)>> =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let parts: &[&str] = match split {
        Split::Train => &["train", "oos_train"],
        Split::Heldout => &["test", "oos_test"],
        Split::All => &["train", "oos_train", "val", "oos_val", "test", "oos_test"],
    };
    let mut out = Vec::new();
    for part in parts {
        let mut taken: HashMap<&str, usize> = HashMap::new();
        for (n, (utterance, label)) in data.get(*part).into_iter().flatten().enumerate() {
            if CLINC_SKIP.contains(&label.as_str()) {
                continue;
            }
            let intent = match label.as_str() {
                "greeting" | "goodbye" | "thank_you" => Intent::Greeting,
                "order_status" => Intent::OrderStatus,
                _ => Intent::OutOfScope,
            };
            // Out-of-scope rows are the point of the set: take more of them.
            let cap = if label == "oos" {
                per_intent * 20
            } else {
                per_intent
            };
            let count = taken.entry(label.as_str()).or_default();
            if *count >= cap {
                continue;
            }
            *count += 1;
            out.push(Labelled {
                id: format!("clinc-{part}-{n}"),
                lang: "en".into(),
                history: Vec::new(),
                text: utterance.clone(),
                expected: Expected {
                    intent: intent.as_str().into(),
                    slots: None,
                },
            });
        }
    }
    Ok(out)
}
