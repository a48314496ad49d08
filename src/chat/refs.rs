//! Which shown products a shopper points at: "the second one", "the last two", "第一个", "#3",
//! "the Kinsey one" (a brand or a word of a product's name).

use std::sync::LazyLock;

use regex::Regex;

use super::Card;

static ORDINALS_EN: [(&str, usize); 10] = [
    ("first", 1),
    ("second", 2),
    ("third", 3),
    ("fourth", 4),
    ("fifth", 5),
    ("sixth", 6),
    ("1st", 1),
    ("2nd", 2),
    ("3rd", 3),
    ("4th", 4),
];

static NUMBERED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:#|\bno\.?\s*|\bnumber\s+|\boption\s+|\bitem\s+|第)\s*([0-9一二三四五六七八九十]{1,2})")
        .unwrap_or_else(|e| panic!("bad pattern: {e}"))
});

fn zh_digit(s: &str) -> Option<usize> {
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    const DIGITS: [char; 10] = ['一', '二', '三', '四', '五', '六', '七', '八', '九', '十'];
    let mut chars = s.chars();
    let (first, rest) = (chars.next()?, chars.next());
    let value = |c: char| DIGITS.iter().position(|&d| d == c).map(|i| i + 1);
    match rest {
        None => value(first),
        // 十一 .. 十九
        Some(c) if first == '十' => value(c).filter(|&v| v < 10).map(|v| 10 + v),
        _ => None,
    }
}

static FIRST_N: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:first|top)\s+(two|three|four|2|3|4)\b|前(两|二|三|四|2|3|4)")
        .unwrap_or_else(|e| panic!("bad pattern: {e}"))
});

/// Positions (0-based) among `shown` that `text` points at, in the order the text names them.
/// Empty when it points at none.
pub fn resolve(text: &str, shown: &[Card]) -> Vec<usize> {
    if shown.is_empty() {
        return Vec::new();
    }
    let lower = text.to_lowercase();
    // "the first two", "前两个": a run from the top.
    if let Some(c) = FIRST_N.captures(&lower) {
        let n = match c.get(1).or(c.get(2)).map_or("", |m| m.as_str()) {
            "two" | "2" | "两" | "二" => 2,
            "three" | "3" | "三" => 3,
            _ => 4,
        };
        return (0..n.min(shown.len())).collect();
    }
    let mut found: Vec<(usize, usize)> = Vec::new(); // (offset in text, position)
    let len = shown.len();
    // Records 1-based place `n` at `offset` (once, and only when it is shown).
    let push = |found: &mut Vec<(usize, usize)>, offset: usize, n: usize| {
        if n >= 1 && n <= len && !found.iter().any(|&(_, p)| p == n - 1) {
            found.push((offset, n - 1));
        }
    };
    for (word, n) in ORDINALS_EN {
        for (i, _) in lower.match_indices(word) {
            let before = lower[..i].chars().next_back();
            if before.is_none_or(|c| !c.is_alphanumeric()) {
                push(&mut found, i, n);
            }
        }
    }
    for c in NUMBERED.captures_iter(&lower) {
        if let (Some(whole), Some(n)) = (c.get(0), c.get(1).and_then(|m| zh_digit(m.as_str()))) {
            push(&mut found, whole.start(), n);
        }
    }
    for word in ["last one", "last", "最后一个", "最后那个", "最后"] {
        if let Some(i) = lower.find(word) {
            push(&mut found, i, shown.len());
            break;
        }
    }
    if found.is_empty() {
        // A brand or a distinctive word of one product's name.
        for (pos, card) in shown.iter().enumerate() {
            let brand_hit = card
                .brand
                .as_deref()
                .is_some_and(|b| b.chars().count() >= 3 && lower.contains(&b.to_lowercase()));
            if brand_hit {
                let at = lower
                    .find(&card.brand.as_deref().unwrap_or("").to_lowercase())
                    .unwrap_or(0);
                push(&mut found, at, pos + 1);
            }
        }
        // A brand shared by several products points at none of them in particular.
        if found.len() > 1 {
            found.clear();
        }
    }
    if found.is_empty()
        && (lower.contains("both") || lower.contains("两个") || lower.contains("这两"))
    {
        push(&mut found, 0, 1);
        push(&mut found, 1, 2);
    }
    found.sort_by_key(|&(offset, _)| offset);
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cards(n: usize) -> Vec<Card> {
        (0..n)
            .map(|i| Card {
                id: format!("P{i}"),
                name: format!("Product {i}"),
                brand: Some(if i == 2 {
                    "Kinsey".into()
                } else {
                    "Aurelle".into()
                }),
                ..Card::default()
            })
            .collect()
    }

    #[test]
    fn ordinals_numbers_and_names_point_at_cards() {
        let shown = cards(4);
        assert_eq!(resolve("tell me about the second one", &shown), vec![1]);
        assert_eq!(
            resolve("compare the first and the third", &shown),
            vec![0, 2]
        );
        assert_eq!(resolve("第二个有什么颜色", &shown), vec![1]);
        assert_eq!(resolve("is #4 in stock", &shown), vec![3]);
        assert_eq!(resolve("the last one please", &shown), vec![3]);
        assert_eq!(resolve("what about the Kinsey", &shown), vec![2]);
        // A brand on several cards names none of them.
        assert!(resolve("the aurelle one", &shown).is_empty());
        assert_eq!(resolve("compare both", &shown), vec![0, 1]);
        assert_eq!(resolve("Compare the first two", &shown), vec![0, 1]);
        assert_eq!(resolve("比较前三个", &shown), vec![0, 1, 2]);
        // Out of range or nothing shown.
        assert!(resolve("the sixth", &shown).is_empty());
        assert!(resolve("the second", &[]).is_empty());
    }
}
