//! Dialogue understanding: what the shopper wants (intent) and what they said about it (slots),
//! in the context of the conversation. Taxonomy and slot rules are those of CONTRACTS.md.
//!
//! Two paths:
//! - the **fast path**, on every turn (a few milliseconds): slots from the knowledge graph's
//!   gazetteer and from patterns (prices, currencies, order ids, product references), and the
//!   intent from a small classifier over the sentence embedding and lexical cues
//!   ([`classifier`]), with rules only where a pattern is decisive (an injection);
//! - the **LLM path** ([`llm`]): JSON-schema constrained extraction with the dialogue history,
//!   used when the fast path is unsure, or always when configured (a GPU or a remote model).
//!   What it says is checked against the text before it is used.
//!
//! [`dialogue`] carries slots across turns: a refinement keeps earlier search filters, a
//! question about shown products keeps only what it states, an order id carries into later
//! service turns.

pub mod classifier;
pub mod cues;
pub mod data;
pub mod dialogue;
pub mod llm;
pub mod parser;
pub mod slots;

use serde::{Deserialize, Serialize};

pub use parser::{IntentParser, IntentSettings, LlmMode, Parse, ParsePath};

/// What a turn asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    ProductSearch,
    ProductQuestion,
    Compare,
    OrderStatus,
    ReturnRefund,
    ShippingInfo,
    HumanAgent,
    Greeting,
    OutOfScope,
}

impl Intent {
    pub const ALL: [Intent; 9] = [
        Intent::ProductSearch,
        Intent::ProductQuestion,
        Intent::Compare,
        Intent::OrderStatus,
        Intent::ReturnRefund,
        Intent::ShippingInfo,
        Intent::HumanAgent,
        Intent::Greeting,
        Intent::OutOfScope,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Intent::ProductSearch => "product_search",
            Intent::ProductQuestion => "product_question",
            Intent::Compare => "compare",
            Intent::OrderStatus => "order_status",
            Intent::ReturnRefund => "return_refund",
            Intent::ShippingInfo => "shipping_info",
            Intent::HumanAgent => "human_agent",
            Intent::Greeting => "greeting",
            Intent::OutOfScope => "out_of_scope",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Order, return and shipping questions: an order id given earlier carries into them.
    pub fn is_service(self) -> bool {
        matches!(
            self,
            Intent::OrderStatus | Intent::ReturnRefund | Intent::ShippingInfo
        )
    }
}

impl std::fmt::Display for Intent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Prices are written without a fractional part when they have none (`2000`, not `2000.0`).
fn write_price<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => s.serialize_i64(*x as i64),
        Some(x) => s.serialize_f64(*x),
        None => s.serialize_none(),
    }
}

/// The slots of CONTRACTS.md. Only what the message states or the history establishes is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slots {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "write_price"
    )]
    pub max_price: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "write_price"
    )]
    pub min_price: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occasion: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_ref: Option<String>,
}

impl Slots {
    /// Slot names, in the contract's order.
    pub const NAMES: [&'static str; 11] = [
        "category",
        "brand",
        "max_price",
        "min_price",
        "currency",
        "color",
        "material",
        "occasion",
        "gender",
        "order_id",
        "product_ref",
    ];

    pub fn is_empty(&self) -> bool {
        *self == Slots::default()
    }

    /// The set slots as (name, normalised value) pairs, for scoring.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let price = |v: f64| {
            if v.fract() == 0.0 {
                format!("{}", v as i64)
            } else {
                format!("{v}")
            }
        };
        let norm = |s: &str| s.trim().to_lowercase();
        let mut out = Vec::new();
        let strings = [
            ("category", &self.category),
            ("brand", &self.brand),
            ("currency", &self.currency),
            ("color", &self.color),
            ("material", &self.material),
            ("occasion", &self.occasion),
            ("gender", &self.gender),
            ("order_id", &self.order_id),
            ("product_ref", &self.product_ref),
        ];
        for (name, v) in strings {
            if let Some(v) = v {
                out.push((name, norm(v)));
            }
        }
        if let Some(v) = self.max_price {
            out.push(("max_price", price(v)));
        }
        if let Some(v) = self.min_price {
            out.push(("min_price", price(v)));
        }
        out.sort();
        out
    }

    /// The search filters: what a refinement carries forward.
    pub fn filters(&self) -> Slots {
        Slots {
            order_id: None,
            product_ref: None,
            ..self.clone()
        }
    }

    /// Sets every slot of `newer` that is set over this one.
    pub fn overlay(&mut self, newer: &Slots) {
        macro_rules! take {
            ($($f:ident),*) => { $( if newer.$f.is_some() { self.$f = newer.$f.clone(); } )* };
        }
        take!(
            category,
            brand,
            max_price,
            min_price,
            currency,
            color,
            material,
            occasion,
            gender,
            order_id,
            product_ref
        );
    }
}

/// One turn of the conversation before the message being parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub role: crate::llm::Role,
    pub text: String,
}
