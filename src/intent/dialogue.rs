//! Dialogue state across turns and the carry-over rules of CONTRACTS.md:
//! - a search refinement carries every filter slot of the earlier search turns (a message that
//!   names another product type starts a new search instead);
//! - `product_question` and `compare` hold `product_ref` plus what the message itself states;
//! - an `order_id` given earlier carries into later order, return and shipping turns;
//! - `greeting` and `out_of_scope` hold nothing; `human_agent` only an order id it states.

use std::sync::LazyLock;

use regex::Regex;

use super::{Intent, Slots};

/// What the conversation so far has established.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DialogueState {
    /// Filters of the current search.
    pub search: Slots,
    pub order_id: Option<String>,
    /// The assistant's last turn listed products.
    pub products_shown: bool,
    pub earlier_search: bool,
    pub earlier_service: bool,
    pub turns: usize,
}

static PRODUCT_LIST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)(?:^\s*(?:\d+[.)]|[-*•])\s+\S.*(?:₹|rs\.?|\$|¥|元|inr)\s*[\d,]+)|(?:(?:₹|rs\.?\s?|¥)\s*[\d,]{2,}.*(?:₹|rs\.?\s?|¥)\s*[\d,]{2,})")
        .unwrap_or_else(|e| panic!("bad product list pattern: {e}"))
});

/// Whether an assistant turn showed products (a numbered or bulleted list with prices).
pub fn lists_products(text: &str) -> bool {
    PRODUCT_LIST.is_match(&text.to_lowercase())
}

impl DialogueState {
    /// Records an assistant turn.
    pub fn assistant(&mut self, text: &str) {
        self.products_shown = lists_products(text);
        self.turns += 1;
    }

    /// Records a user turn with its understood intent and the slots it stated; returns the slots
    /// the turn holds after carry-over.
    pub fn user(&mut self, intent: Intent, stated: &Slots) -> Slots {
        let slots = self.resolve(intent, stated);
        if let Some(id) = &stated.order_id {
            self.order_id = Some(id.clone());
        }
        match intent {
            Intent::ProductSearch => {
                self.search = slots.filters();
                self.earlier_search = true;
            }
            i if i.is_service() => self.earlier_service = true,
            _ => {}
        }
        self.turns += 1;
        slots
    }

    /// The slots a turn holds, by the carry-over rules, without changing the state.
    pub fn resolve(&self, intent: Intent, stated: &Slots) -> Slots {
        match intent {
            Intent::ProductSearch => {
                let fresh = stated.filters();
                let new_type = match (&fresh.category, &self.search.category) {
                    (Some(new), Some(old)) => !same_type(new, old),
                    _ => false,
                };
                if new_type || !self.earlier_search {
                    return fresh;
                }
                let mut carried = self.search.clone();
                carried.overlay(&fresh);
                carried
            }
            Intent::ProductQuestion | Intent::Compare => Slots {
                order_id: None,
                ..stated.clone()
            },
            i if i.is_service() => Slots {
                order_id: stated.order_id.clone().or_else(|| self.order_id.clone()),
                ..Slots::default()
            },
            Intent::HumanAgent => Slots {
                order_id: stated.order_id.clone(),
                ..Slots::default()
            },
            _ => Slots::default(),
        }
    }
}

/// "watch" and "analog watch" are the same search; "watch" and "saree" are not.
fn same_type(a: &str, b: &str) -> bool {
    let head = |s: &str| s.split_whitespace().last().unwrap_or("").to_owned();
    a == b || head(a) == head(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(category: &str, color: Option<&str>, max: Option<f64>) -> Slots {
        Slots {
            category: Some(category.into()),
            color: color.map(Into::into),
            max_price: max,
            ..Slots::default()
        }
    }

    #[test]
    fn refinements_carry_filters_and_new_types_start_over() {
        let mut s = DialogueState::default();
        s.user(Intent::ProductSearch, &slots("saree", Some("red"), None));
        s.assistant("1. Silk saree ₹1,499\n2. Cotton saree ₹899");
        assert!(s.products_shown);
        let refined = s.user(
            Intent::ProductSearch,
            &Slots {
                max_price: Some(1000.0),
                ..Slots::default()
            },
        );
        assert_eq!(refined.category.as_deref(), Some("saree"));
        assert_eq!(refined.color.as_deref(), Some("red"));
        assert_eq!(refined.max_price, Some(1000.0));
        let other = s.user(Intent::ProductSearch, &slots("watch", None, None));
        assert_eq!(other, slots("watch", None, None));
    }

    #[test]
    fn questions_keep_only_what_they_state_and_order_ids_carry() {
        let mut s = DialogueState::default();
        s.user(
            Intent::ProductSearch,
            &slots("watch", Some("black"), Some(2000.0)),
        );
        let q = s.user(
            Intent::ProductQuestion,
            &Slots {
                product_ref: Some("the second one".into()),
                ..Slots::default()
            },
        );
        assert_eq!(q.product_ref.as_deref(), Some("the second one"));
        assert!(q.category.is_none() && q.color.is_none());
        s.user(
            Intent::OrderStatus,
            &Slots {
                order_id: Some("OD4412873".into()),
                ..Slots::default()
            },
        );
        let r = s.user(Intent::ReturnRefund, &Slots::default());
        assert_eq!(r.order_id.as_deref(), Some("OD4412873"));
        assert!(s.user(Intent::Greeting, &Slots::default()).is_empty());
    }

    #[test]
    fn product_lists_are_recognised() {
        assert!(lists_products(
            "1. Titan Neo analog watch ₹2,495\n2. Fastrack ₹1,299"
        ));
        assert!(lists_products("Here you go:\n- Red flats Rs. 799"));
        assert!(!lists_products("Your order ships tomorrow."));
    }
}
