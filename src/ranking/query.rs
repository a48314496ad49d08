//! Query constraints stated in the shopper's words: budgets ("under 800", "below ₹500", "between
//! 500 and 1000", "800以内", "不超过1000卢比", "500元以上"). They become hard filters, and their words
//! are removed from the text that retrieval matches (so "under 350" does not match a "350 ml").

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

/// A parsed query: the text left for matching and the hard filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QuerySpec {
    /// The query with the constraint phrases removed.
    pub text: String,
    pub max_price: Option<f64>,
    pub min_price: Option<f64>,
    /// The shopper asked for what is in stock ("in stock", "available now", "有货", "现货").
    pub in_stock: bool,
}

const NUM: &str = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?";
const CUR: &str = r"(?:rs\.?|inr|rupees?|₹|\$|usd|dollars?|元|块钱|块|卢比|印度卢比|yuan|rmb)";

fn re(pattern: &str) -> Regex {
    // The patterns are constants; a typo is caught by the unit tests.
    Regex::new(&pattern.replace("{NUM}", NUM).replace("{CUR}", CUR))
        .unwrap_or_else(|e| panic!("bad pattern {pattern}: {e}"))
}

static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:between\s+|from\s+|价格\s*)?{CUR}?\s*({NUM})\s*{CUR}?\s*(?:-|–|to|and|~|到|至)\s*{CUR}?\s*({NUM})\s*{CUR}?(?:\s*(?:之间|以内))?",
    )
});
static MAX_EN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:under|below|less\s+than|cheaper\s+than|up\s*to|upto|within|max(?:imum)?|at\s+most|not\s+more\s+than|no\s+more\s+than|budget(?:\s+of)?|<=?)\s*{CUR}?\s*({NUM})\s*{CUR}?",
    )
});
static MIN_EN: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:over|above|more\s+than|at\s+least|min(?:imum)?|costlier\s+than|>=?)\s*{CUR}?\s*({NUM})\s*{CUR}?",
    )
});
static MAX_ZH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:(?:不超过|低于|少于|不到|不高于|小于)\s*{CUR}?\s*({NUM})\s*{CUR}?)|(?:{CUR}?\s*({NUM})\s*{CUR}?\s*(?:以内|以下|之内|内))",
    )
});
static MIN_ZH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:(?:高于|超过|大于|不低于)\s*{CUR}?\s*({NUM})\s*{CUR}?)|(?:{CUR}?\s*({NUM})\s*{CUR}?\s*以上)",
    )
});

fn number(s: &str) -> Option<f64> {
    s.replace(',', "").parse().ok()
}

/// The first capture group that matched, as a number.
fn captured(c: &regex::Captures<'_>) -> Option<f64> {
    c.iter().skip(1).flatten().find_map(|m| number(m.as_str()))
}

static IN_STOCK: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:(?:only\s+)?in[\s-]stock(?:\s+only)?|available\s+now|ready\s+to\s+ship)\b|有货|现货|有库存",
    )
});

static CURRENCY: LazyLock<Regex> = LazyLock::new(|| re(r"(?i){CUR}"));
/// Units that make a number an age, size or capacity rather than a price.
static UNIT_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:years?|yrs?|months?|days?|ml|l\b|litres?|liters?|kg|g\b|grams?|cm|mm|m\b|inch|inches|gb|tb|mah|w\b|watts?|pcs|pieces|岁|个月|毫升|升|公斤|克|厘米|寸)")
        .unwrap_or_else(|e| panic!("bad unit pattern: {e}"))
});

/// Whether a matched number is a price: a currency was written, or it is at least 20 and no unit
/// follows ("under 5 years", "4-6 years" and "500 ml" are not budgets).
fn is_price(text: &str, m: &regex::Captures<'_>, value: f64) -> bool {
    let Some(whole) = m.get(0) else { return false };
    if CURRENCY.is_match(whole.as_str()) {
        return true;
    }
    value >= 20.0 && !UNIT_AFTER.is_match(&text[whole.end()..])
}

impl QuerySpec {
    /// Parses budget phrases out of `query`.
    pub fn parse(query: &str) -> Self {
        let mut text = query.to_owned();
        let mut spec = QuerySpec::default();
        if let Some(m) = IN_STOCK.find(&text) {
            spec.in_stock = true;
            text.replace_range(m.range(), " ");
        }
        if let Some(c) = RANGE.captures(&text) {
            let nums: Vec<f64> = c
                .iter()
                .skip(1)
                .flatten()
                .filter_map(|m| number(m.as_str()))
                .collect();
            if let [a, b, ..] = nums[..]
                && is_price(&text, &c, a.max(b))
            {
                spec.min_price = Some(a.min(b));
                spec.max_price = Some(a.max(b));
                let range = c.get(0).map(|m| m.range()).unwrap_or_default();
                text.replace_range(range, " ");
            }
        }
        for (re, is_max) in [
            (&*MAX_EN, true),
            (&*MAX_ZH, true),
            (&*MIN_EN, false),
            (&*MIN_ZH, false),
        ] {
            let slot = if is_max {
                &mut spec.max_price
            } else {
                &mut spec.min_price
            };
            if slot.is_some() {
                continue;
            }
            let found = re.captures(&text).and_then(|c| {
                let v = captured(&c)?;
                is_price(&text, &c, v).then(|| (v, c.get(0).map(|m| m.range()).unwrap_or_default()))
            });
            if let Some((v, range)) = found {
                *slot = Some(v);
                text.replace_range(range, " ");
            }
        }
        spec.text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        spec
    }

    /// Whether a price satisfies the budget.
    pub fn admits(&self, price: f64) -> bool {
        self.max_price.is_none_or(|m| price <= m) && self.min_price.is_none_or(|m| price >= m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> (String, Option<f64>, Option<f64>) {
        let s = QuerySpec::parse(q);
        (s.text, s.min_price, s.max_price)
    }

    #[test]
    fn english_budgets() {
        assert_eq!(
            p("red flats under 800 rupees"),
            ("red flats".into(), None, Some(800.0))
        );
        assert_eq!(
            p("watch below ₹1,500 for men"),
            ("watch for men".into(), None, Some(1500.0))
        );
        assert_eq!(
            p("sunglasses upto rs. 499"),
            ("sunglasses".into(), None, Some(499.0))
        );
        assert_eq!(
            p("kurta between 500 and 1000"),
            ("kurta".into(), Some(500.0), Some(1000.0))
        );
        assert_eq!(
            p("phone case 200-400"),
            ("phone case".into(), Some(200.0), Some(400.0))
        );
        assert_eq!(
            p("perfume above 1000"),
            ("perfume".into(), Some(1000.0), None)
        );
    }

    #[test]
    fn chinese_budgets() {
        assert_eq!(
            p("男士手表1000卢比以内"),
            ("男士手表".into(), None, Some(1000.0))
        );
        assert_eq!(
            p("不超过500元的保温杯"),
            ("的保温杯".into(), None, Some(500.0))
        );
        assert_eq!(
            p("连衣裙 300到600"),
            ("连衣裙".into(), Some(300.0), Some(600.0))
        );
        assert_eq!(p("2000以上的手表"), ("的手表".into(), Some(2000.0), None));
    }

    #[test]
    fn in_stock_requests() {
        let s = QuerySpec::parse("red flats in stock under 800");
        assert!(s.in_stock);
        assert_eq!((s.text.as_str(), s.max_price), ("red flats", Some(800.0)));
        let s = QuerySpec::parse("有货的保温杯");
        assert!(s.in_stock && s.text == "的保温杯");
        assert!(!QuerySpec::parse("stockings").in_stock);
    }

    #[test]
    fn ages_sizes_and_model_numbers_are_not_budgets() {
        assert_eq!(
            p("toys for kids under 5 years"),
            ("toys for kids under 5 years".into(), None, None)
        );
        assert_eq!(
            p("t-shirt for 4-6 years"),
            ("t-shirt for 4-6 years".into(), None, None)
        );
        assert_eq!(p("shoes UK 3-8"), ("shoes UK 3-8".into(), None, None));
        assert_eq!(
            p("bottle under 1 l"),
            ("bottle under 1 l".into(), None, None)
        );
        assert_eq!(
            p("500 ml steel bottle"),
            ("500 ml steel bottle".into(), None, None)
        );
        assert_eq!(p("iphone 6 case"), ("iphone 6 case".into(), None, None));
        let s = QuerySpec::parse("mug under 300");
        assert!(s.admits(299.0) && s.admits(300.0) && !s.admits(301.0));
    }
}
