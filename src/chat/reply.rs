//! What a turn answers: the reply object of CONTRACTS.md, product cards rendered from catalog rows
//! (never from model text), the shopper's language, and the fixed wording of templated replies.

use serde::{Deserialize, Serialize};

use crate::intent::{Intent, Slots};
use crate::ranking::SearchResult;

/// What kind of reply a turn produced (CONTRACTS.md, batch chat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReplyKind {
    #[default]
    Products,
    Answer,
    Policy,
    Clarify,
    Escalation,
    Refusal,
}

impl ReplyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Products => "products",
            Self::Answer => "answer",
            Self::Policy => "policy",
            Self::Clarify => "clarify",
            Self::Escalation => "escalation",
            Self::Refusal => "refusal",
        }
    }
}

/// A product card, built from a catalog row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Card {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_zh: Option<String>,
    /// Always present (null when the catalog has none), as the batch contract shows it.
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub category: String,
    pub price: f64,
    pub currency: String,
    #[serde(default)]
    pub price_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub why: Vec<String>,
    #[serde(default = "yes")]
    pub in_stock: bool,
    /// 1-based place in the reply.
    #[serde(default)]
    pub position: usize,
}

fn yes() -> bool {
    true
}

impl Card {
    pub fn from_result(r: &SearchResult, position: usize, image: Option<String>) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            name_zh: r.name_zh.clone(),
            brand: r.brand.clone(),
            category: r.category.clone().unwrap_or_default(),
            price: r.price,
            currency: r.currency.clone(),
            price_text: money(r.price, &r.currency),
            image,
            url: format!("/products/{}", urlencode(&r.id)),
            why: r.why.clone(),
            in_stock: r.in_stock,
            position,
        }
    }

    /// Cards for the catalog products `ids`, in that order and numbered from 1, and the ids the
    /// catalog does not hold.
    pub async fn for_ids(
        pool: &sqlx::PgPool,
        ids: &[String],
    ) -> Result<(Vec<Self>, Vec<String>), sqlx::Error> {
        let rows = crate::catalog::repo::get_products(pool, ids).await?;
        let mut cards = Vec::new();
        let mut missing = Vec::new();
        for id in ids {
            match rows.iter().find(|p| &p.id == id) {
                Some(p) => cards.push(Self::from_product(p, cards.len() + 1)),
                None => missing.push(id.clone()),
            }
        }
        Ok((cards, missing))
    }

    pub fn from_product(p: &crate::catalog::Product, position: usize) -> Self {
        let price: f64 = p.price.try_into().unwrap_or(0.0);
        Self {
            id: p.id.clone(),
            name: p.title.clone(),
            name_zh: p.title_zh.clone(),
            brand: p.brand.clone(),
            category: p.category.clone().unwrap_or_default(),
            price,
            currency: p.currency.clone(),
            price_text: money(price, &p.currency),
            image: p.image_urls.first().cloned(),
            url: format!("/products/{}", urlencode(&p.id)),
            why: Vec::new(),
            in_stock: p.in_stock(),
            position,
        }
    }

    /// The name in the shopper's language.
    pub fn name_in(&self, lang: Lang) -> &str {
        match (lang, &self.name_zh) {
            (Lang::Zh, Some(zh)) if !zh.trim().is_empty() => zh,
            _ => &self.name,
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The intent and slots a reply was written for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IntentView {
    pub intent: Intent,
    pub slots: Slots,
}

/// One assistant reply (CONTRACTS.md, batch chat), plus what the widget uses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub text: String,
    pub kind: ReplyKind,
    pub cards: Vec<Card>,
    pub escalated: bool,
    pub intent: IntentView,
    /// Suggested next messages (quick-reply chips).
    #[serde(default)]
    pub chips: Vec<String>,
    /// The conversation's state after this turn: bot, waiting_for_agent, agent, closed.
    #[serde(default)]
    pub state: String,
    /// A status line for the widget ("waiting for a person").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// The shopper's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    En,
    Zh,
}

impl Lang {
    /// Chinese when at least a third of the letters are CJK ideographs.
    pub fn detect(text: &str) -> Self {
        let (mut cjk, mut letters) = (0usize, 0usize);
        for c in text.chars() {
            if ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c) {
                cjk += 1;
                letters += 1;
            } else if c.is_alphabetic() {
                letters += 1;
            }
        }
        // Latin letters count less: one Chinese character carries about a word.
        if cjk > 0 && cjk * 3 >= (letters - cjk) / 2 {
            Self::Zh
        } else {
            Self::En
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Self::En),
            "zh" | "zh-cn" | "zh-hans" | "cn" => Some(Self::Zh),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Zh => "zh",
        }
    }

    /// `en` or `zh` text by language.
    pub fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Self::En => en,
            Self::Zh => zh,
        }
    }
}

/// A price as shoppers read it: "₹1,349", "$12.99".
pub fn money(amount: f64, currency: &str) -> String {
    crate::catalog::price::format_money(amount, currency)
}

/// How a search was understood, in words: "red flats for women under ₹800".
pub fn describe_search(slots: &Slots, lang: Lang, currency: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for v in [&slots.color, &slots.material, &slots.occasion, &slots.brand]
        .into_iter()
        .flatten()
    {
        words.push(v.clone());
    }
    words.push(
        slots
            .category
            .clone()
            .unwrap_or_else(|| lang.pick("products", "商品").to_owned()),
    );
    let mut out = words.join(" ");
    if let Some(g) = &slots.gender {
        out.push_str(&match lang {
            Lang::En => format!(" for {g}"),
            Lang::Zh => format!("（{}）", gender_zh(g)),
        });
    }
    let budget = |v: f64| money(v, currency);
    match (slots.min_price, slots.max_price, lang) {
        (Some(lo), Some(hi), Lang::En) => {
            out.push_str(&format!(" between {} and {}", budget(lo), budget(hi)))
        }
        (Some(lo), Some(hi), Lang::Zh) => {
            out.push_str(&format!("，{}到{}之间", budget(lo), budget(hi)))
        }
        (None, Some(hi), Lang::En) => out.push_str(&format!(" under {}", budget(hi))),
        (None, Some(hi), Lang::Zh) => out.push_str(&format!("，{}以内", budget(hi))),
        (Some(lo), None, Lang::En) => out.push_str(&format!(" over {}", budget(lo))),
        (Some(lo), None, Lang::Zh) => out.push_str(&format!("，{}以上", budget(lo))),
        _ => {}
    }
    out
}

fn gender_zh(g: &str) -> &str {
    match g {
        "men" => "男士",
        "women" => "女士",
        "kids" => "儿童",
        _ => "男女通用",
    }
}

/// Price-band chips under a list of cards: the cheaper half, and a band around the middle.
pub fn price_chips(cards: &[Card], lang: Lang) -> Vec<String> {
    let mut prices: Vec<f64> = cards.iter().map(|c| c.price).filter(|p| *p > 0.0).collect();
    if prices.len() < 2 {
        return Vec::new();
    }
    prices.sort_by(f64::total_cmp);
    let currency = cards.first().map_or("INR", |c| c.currency.as_str());
    let median = prices[prices.len() / 2];
    // A round number below the median: 1,349 → 1,000; 480 → 400.
    let magnitude = 10f64.powi(median.log10().floor() as i32);
    let band = (median / magnitude).floor() * magnitude;
    if band <= prices[0] {
        return Vec::new();
    }
    vec![match lang {
        Lang::En => format!("Under {}", money(band, currency)),
        Lang::Zh => format!("{}以内", money(band, currency)),
    }]
}

/// The chip that asks for a person, in the shopper's language.
pub fn human_chip(lang: Lang) -> String {
    lang.pick("Talk to a human", "转人工").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands_and_keeps_cents() {
        assert_eq!(money(1349.0, "INR"), "₹1,349");
        assert_eq!(money(134999.5, "INR"), "₹134,999.50");
        assert_eq!(money(12.99, "USD"), "$12.99");
        assert_eq!(money(800.0, "XYZ"), "800 XYZ");
    }

    #[test]
    fn language_follows_the_script() {
        assert_eq!(Lang::detect("red flats under 800"), Lang::En);
        assert_eq!(Lang::detect("我想买一双红色的平底鞋"), Lang::Zh);
        assert_eq!(Lang::detect("Nike跑鞋有吗"), Lang::Zh);
        assert_eq!(
            Lang::detect("is the Titan watch waterproof? 谢谢"),
            Lang::En
        );
    }

    #[test]
    fn a_search_reads_back_in_words() {
        let s = Slots {
            category: Some("flats".into()),
            color: Some("red".into()),
            gender: Some("women".into()),
            max_price: Some(800.0),
            ..Slots::default()
        };
        assert_eq!(
            describe_search(&s, Lang::En, "INR"),
            "red flats for women under ₹800"
        );
        assert_eq!(
            describe_search(&s, Lang::Zh, "INR"),
            "red flats（女士），₹800以内"
        );
    }

    #[test]
    fn price_chips_offer_a_round_band_below_the_median() {
        let cards: Vec<Card> = [499.0, 1349.0, 1999.0]
            .iter()
            .map(|&p| Card {
                price: p,
                currency: "INR".into(),
                ..Card::default()
            })
            .collect();
        assert_eq!(
            price_chips(&cards, Lang::En),
            vec!["Under ₹1,000".to_owned()]
        );
    }
}
