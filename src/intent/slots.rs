//! Slots stated in one message: prices and their currency, order ids, references to shown
//! products, and the graph gazetteer's categories, brands and attribute values (English and
//! Chinese synonyms alike), normalised as CONTRACTS.md says.

use std::sync::LazyLock;

use regex::Regex;

use super::Slots;
use crate::graph::{KnowledgeGraph, NodeKind};
use crate::ranking::query::QuerySpec;

fn re(pattern: &str) -> Regex {
    // Constant patterns; the unit tests compile every one.
    Regex::new(pattern).unwrap_or_else(|e| panic!("bad pattern {pattern}: {e}"))
}

/// Occasions the contract names, and the graph's values that mean one of them.
const OCCASIONS: &[(&str, &str)] = &[
    ("party", "party"),
    ("formal", "formal"),
    ("wedding", "wedding"),
    ("sports", "sports"),
    ("office", "office"),
    ("festive", "festive"),
    ("travel", "travel"),
    ("vacation", "travel"),
    ("gym", "gym"),
];

static OCCASION_WORDS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (
            r"(?i)\b(?:party|parties|partywear|party[- ]wear|clubbing)\b|派对|聚会|晚会",
            "party",
        ),
        (
            r"(?i)\b(?:formal|formals|formal[- ]wear)\b|正式|正装",
            "formal",
        ),
        (
            r"(?i)\b(?:wedding|weddings|shaadi|bridal)\b|婚礼|婚宴|结婚|喜宴",
            "wedding",
        ),
        (r"(?i)\b(?:sports?|sporty|athletic)\b|运动", "sports"),
        (
            r"(?i)\b(?:office|work ?wear|workplace)\b|上班|办公|通勤",
            "office",
        ),
        (
            r"(?i)\b(?:festive|festival|diwali|eid|navratri)\b|节日|过节|过年",
            "festive",
        ),
        (
            r"(?i)\b(?:travel|travelling|traveling|trip|vacation|holiday)\b|旅行|旅游|出差|度假",
            "travel",
        ),
        (r"(?i)\b(?:gym|workout)\b|健身", "gym"),
    ]
    .into_iter()
    .map(|(p, v)| (re(p), v))
    .collect()
});

static GENDER_WORDS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (
            r"(?i)\b(?:sons?|daughters?|bab(?:y|ies)|kids?|child|children|toddlers?|infants?|boys?|girls?|newborns?|nephew|niece|\d{1,2}[- ]?(?:year|yr)s?[- ]old)\b|儿童|宝宝|孩子|小孩|儿子|女儿|男孩|女孩|男童|女童|婴儿|童装|童鞋",
            "kids",
        ),
        (
            r"(?i)\b(?:wife|wives|girlfriend|gf|mom|mum|mother|mommy|sister|women|womens|women's|woman|ladies|lady|female|her|she|aunt|grandma|grandmother|bride)\b|女士|女款|女式|女生|老婆|妻子|妈妈|母亲|姐姐|妹妹|女朋友|女友|女性|女装|女鞋",
            "women",
        ),
        (
            r"(?i)\b(?:husband|boyfriend|bf|dad|father|daddy|brother|men|mens|men's|man|gents|gentlemen|male|him|he|uncle|grandpa|grandfather|groom)\b|男士|男款|男式|男生|老公|丈夫|爸爸|父亲|哥哥|弟弟|男朋友|男友|男性|男装|男鞋",
            "men",
        ),
        (r"(?i)\bunisex\b|男女通用|中性", "unisex"),
    ]
    .into_iter()
    .map(|(p, v)| (re(p), v))
    .collect()
});

static ORDER_ID: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        // Marketplace-style ids: OD4412873, ORD-240003, SO-99812.
        r"\b((?:OD|ORD|SO|PO|AD)[-#]?\d{4,}[A-Z0-9]*)\b",
        // "order 12345", "order no. 58213", "order #A1B2C3", "订单号 12345".
        r"(?i)(?:order|purchase|订单|单号)\s*(?:no\.?|number|num|id|号码|号|编号)?\s*(?:is|是|为)?\s*[:：]?\s*(#?[A-Z0-9][A-Z0-9-]{3,}\d[A-Z0-9-]*)",
        // A bare "#58213", kept as written.
        r"(#\d{4,})\b",
        // A long digit run is an order number when nothing else claims it.
        r"\b(\d{9,})\b",
    ]
    .into_iter()
    .map(re)
    .collect()
});

static PRODUCT_REF_EN: LazyLock<Regex> = LazyLock::new(|| {
    // One reference, or two joined ("the first or the third", "#1 and #2", "the blue one or the
    // black one"), kept as one span.
    let one = r"(?:(?:the\s+)?(?:first|second|third|fourth|fifth|sixth|last|1st|2nd|3rd|4th|5th|6th|previous|other|top|bottom|cheaper|cheapest|costlier|pricier|smaller|bigger|larger)(?:\s+(?:one|ones|two|three|option|options|item|items|product|products|pair|pick|model|result))?|(?:option|item|number|no\.)\s?\d|\#\d|the\s+[a-z]+\s+one|(?:this|that|these|those)(?:\s+(?:one|ones|two|three))?|both(?:\s+of\s+(?:them|these|those))?|all\s+(?:three|four|of\s+them)|the\s+(?:two|three)\s+[a-z]+|the\s+last\s+(?:two|three))";
    re(&format!(
        r"(?i)\b(?:{one}(?:\s*(?:,|or|and|&|vs\.?|versus)\s*{one})?|\d\s*(?:or|and|&|vs\.?)\s*\d)\b|\#\d(?:\s*(?:or|and|&|vs\.?)\s*\#?\d)?"
    ))
});

static PRODUCT_REF_ZH: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:第[一二三四五六七八九十\d]+(?:个|款|件|双|条|只|块|种|项)?(?:和|跟|与|还是|或|、)?)+|最后(?:一|两|那|三)?(?:个|款|件|双)|(?:这|那)(?:两|几|三)?(?:个|款|件|双|条|只|块|种)|两款|两个都|这几|[12３123]号和[12３123]号",
    )
});

static CURRENCY_INR: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)₹|\brs\.?|\brupees?\b|\binr\b|卢比"));
static CURRENCY_CNY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)元|人民币|\brmb\b|\byuan\b|[¥￥]|[\d零一二两三四五六七八九十百千万]\s*块(?:钱)?(?:[^手表布]|$)",
    )
});
static CURRENCY_USD: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\$|\bdollars?\b|\busd\b|美元|美金"));

static THOUSANDS: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(\d+(?:\.\d+)?)\s*k\b(?:\s*(?:tv|uhd|display|monitor|video))?"));
static ZH_NUMBER: LazyLock<Regex> =
    LazyLock::new(|| re(r"[\d.]*[零〇一二两三四五六七八九十百千万]+"));

fn zh_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

/// A Chinese numeral ("两百", "一千五", "三百五十", "1千", "2万") as a number; `None` when the
/// run is not a number with a unit (a lone "一" in "第一个" is not a price).
pub fn zh_number(s: &str) -> Option<f64> {
    if !s.contains(['十', '百', '千', '万']) {
        return None;
    }
    let (lead, rest) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(0) | None => (None, s),
        Some(i) => (s[..i].parse::<f64>().ok(), &s[i..]),
    };
    let mut total = 0.0f64;
    let mut section = 0.0f64;
    let mut digit = lead;
    let mut last_unit = 1.0;
    for c in rest.chars() {
        if let Some(d) = zh_digit(c) {
            digit = Some(d as f64);
            continue;
        }
        let unit = match c {
            '十' => 10.0,
            '百' => 100.0,
            '千' => 1000.0,
            '万' => 10_000.0,
            _ => return None,
        };
        if unit == 10_000.0 {
            total = (total + section + digit.unwrap_or(0.0)) * unit;
            section = 0.0;
        } else {
            section += digit.unwrap_or(1.0) * unit;
        }
        digit = None;
        last_unit = unit;
    }
    // "一千五" is 1500: a trailing digit counts in the next unit down.
    if let Some(d) = digit {
        section += if last_unit >= 100.0 {
            d * last_unit / 10.0
        } else {
            d
        };
    }
    Some(total + section)
}

/// Rewrites "2k", "1.5k", "两百", "一千五" and "1千" as digits so the price patterns see them.
pub fn normalise_numbers(text: &str) -> String {
    let text = THOUSANDS.replace_all(text, |c: &regex::Captures<'_>| {
        let whole = &c[0];
        if whole.len() > c[1].len() + 1 && whole.to_lowercase().contains(['t', 'u', 'd', 'm', 'v'])
        {
            return whole.to_owned();
        }
        let v: f64 = c[1].parse().unwrap_or(0.0);
        format!("{}", (v * 1000.0).round() as i64)
    });
    ZH_NUMBER
        .replace_all(&text, |c: &regex::Captures<'_>| match zh_number(&c[0]) {
            Some(v) => format!("{}", v.round() as i64),
            None => c[0].to_owned(),
        })
        .into_owned()
}

/// A category noun phrase in the contract's form: lower-case, singular unless the noun is used
/// in the plural ("socks", "jeans", "shoes").
pub fn singular(phrase: &str) -> String {
    const PLURAL_ONLY: &[&str] = &[
        "socks",
        "jeans",
        "shoes",
        "sunglasses",
        "earrings",
        "trousers",
        "pants",
        "shorts",
        "leggings",
        "pyjamas",
        "pajamas",
        "headphones",
        "earphones",
        "earbuds",
        "glasses",
        "spectacles",
        "sandals",
        "slippers",
        "boots",
        "heels",
        "flats",
        "sneakers",
        "loafers",
        "flip flops",
        "scissors",
        "tights",
        "thermals",
        "innerwear",
        "clothes",
        "jeggings",
        "joggers",
        "track pants",
        "briefs",
        "boxers",
        "gloves",
        "mittens",
        "goggles",
        "cufflinks",
        "studs",
    ];
    let phrase = phrase.trim().to_lowercase();
    let mut words: Vec<String> = phrase.split_whitespace().map(str::to_owned).collect();
    let Some(last) = words.last().cloned() else {
        return phrase;
    };
    if PLURAL_ONLY.iter().any(|p| phrase.ends_with(p)) {
        return words.join(" ");
    }
    let single = if let Some(stem) = last.strip_suffix("ies").filter(|s| s.len() > 2) {
        format!("{stem}y")
    } else if let Some(stem) = ["ches", "shes", "sses", "xes", "zes"]
        .iter()
        .find_map(|suf| last.strip_suffix(suf).map(|s| (s, &suf[..suf.len() - 2])))
        .map(|(s, keep)| format!("{s}{keep}"))
    {
        stem
    } else if last.ends_with('s')
        && !last.ends_with("ss")
        && !last.ends_with("us")
        && last.len() > 3
    {
        last[..last.len() - 1].to_owned()
    } else {
        last
    };
    if let Some(l) = words.last_mut() {
        *l = single;
    }
    words.join(" ")
}

/// Words that describe the shopper or the product's facets rather than its type; stripped from
/// a category phrase ("men's watch" → "watch").
static NOT_TYPE_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(?:(?:men|mens|men's|women|womens|women's|ladies|kids|kid's|boys|boys'|girls|girls'|baby|unisex|for|a|an|the|some|new|latest|cheap|good|best|nice)\s+)+",
    )
});

static OCCASION_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(?:(?:party|partywear|formal|wedding|bridal|sports?|sporty|office|festive|travel|gym)\s+)+",
    )
});

/// Common Chinese product nouns and the English the contract wants for them, where the graph's
/// label is a shelf name ("footwear", "coffee mugs") rather than what a shopper calls the thing.
const ZH_NOUNS: &[(&str, &str)] = &[
    ("运动鞋", "shoes"),
    ("跑鞋", "running shoes"),
    ("鞋子", "shoes"),
    ("鞋", "shoes"),
    ("马克杯", "mug"),
    ("杯子", "mug"),
    ("手表", "watch"),
    ("耳机", "headphones"),
    ("玩具", "toy"),
    ("充电宝", "power bank"),
    ("背包", "backpack"),
    ("双肩包", "backpack"),
    ("钱包", "wallet"),
    ("项链", "necklace"),
    ("耳环", "earrings"),
    ("戒指", "ring"),
    ("连衣裙", "dress"),
    ("袜子", "socks"),
    ("牛仔裤", "jeans"),
    ("墨镜", "sunglasses"),
    ("太阳镜", "sunglasses"),
    ("口红", "lipstick"),
    ("香水", "perfume"),
    ("手机壳", "phone case"),
    ("床单", "bedsheet"),
    ("窗帘", "curtain"),
    ("纱丽", "saree"),
    ("衬衫", "shirt"),
    ("T恤", "t-shirt"),
    ("凉鞋", "sandals"),
    ("靴子", "boots"),
    ("拖鞋", "slippers"),
];

/// The product type a category phrase names: its modifiers (gender, occasion, colour, material:
/// whatever the graph reads as an attribute, and "for men"-style tails) come off until what is
/// left names a category on its own ("男士运动手表" → "手表" → watch; "leather wallet for men" →
/// "wallet"). For Chinese the result is English: a common noun's usual name, else the graph's
/// label.
fn head(graph: &KnowledgeGraph, phrase: &str, cjk: bool) -> Option<String> {
    let mut rest: String = if cjk {
        phrase.to_owned()
    } else {
        let p = phrase.to_lowercase();
        let p = NOT_TYPE_WORDS.replace(&p, "");
        let p = TYPE_TAIL.replace(&p, "");
        if OCCASION_ONLY.is_match(p.trim()) {
            return None;
        }
        let p = OCCASION_PREFIX.replace(&p, "").trim().to_owned();
        // Leading words that are facet values on their own ("cotton socks", "ceramic mugs").
        let mut words: Vec<&str> = p.split_whitespace().collect();
        while words.len() > 1 && is_facet_word(graph, words[0]) {
            words.remove(0);
        }
        words.join(" ")
    };
    for _ in 0..4 {
        if rest.is_empty() {
            return None;
        }
        let matches = graph.resolve_any(&rest);
        let modifier = matches
            .iter()
            .find(|m| {
                m.start == 0
                    && m.end < rest.len()
                    && m.nodes.iter().any(|n| n.kind == NodeKind::Attribute)
                    && !m.nodes.iter().any(|n| n.kind == NodeKind::Category)
            })
            .or_else(|| {
                matches.iter().find(|m| {
                    m.start == 0
                        && m.end < rest.len()
                        && m.nodes.iter().any(|n| n.kind == NodeKind::Attribute)
                })
            });
        if let Some(m) = modifier {
            let cut = rest[m.end..]
                .trim_start_matches([' ', '的', '-'])
                .to_owned();
            if cut.is_empty() {
                break;
            }
            rest = cut;
            continue;
        }
        break;
    }
    if !cjk {
        return Some(rest);
    }
    if let Some((_, en)) = ZH_NOUNS.iter().find(|(zh, _)| rest.ends_with(zh)) {
        return Some((*en).to_owned());
    }
    let matches = graph.resolve_any(&rest);
    matches
        .iter()
        .filter(|m| m.nodes.iter().any(|n| n.kind == NodeKind::Category))
        .max_by_key(|m| m.end - m.start)
        .and_then(|m| m.nodes.iter().find(|n| n.kind == NodeKind::Category))
        .map(|n| n.label_en.to_lowercase())
}

/// Whether a word alone names a colour or material (and no product type).
fn is_facet_word(graph: &KnowledgeGraph, word: &str) -> bool {
    facet_of(graph, word).is_some()
}

/// The facet (key, value) a single word names, when it names one and no product type.
fn facet_of(graph: &KnowledgeGraph, word: &str) -> Option<(String, String)> {
    let matches = graph.resolve_any(word);
    let m = matches
        .iter()
        .find(|m| m.start == 0 && m.end == word.len())?;
    if m.nodes.iter().any(|n| n.kind == NodeKind::Category) {
        return None;
    }
    m.nodes.iter().find_map(|n| {
        let (key, value) = n.id.strip_prefix("attr:")?.split_once('=')?;
        matches!(key, "color" | "colour" | "material" | "fabric")
            .then(|| (key.to_owned(), value.to_owned()))
    })
}

static OCCASION_ONLY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(?:party|partywear|formal|wedding|bridal|sports?|sporty|office|festive|travel|gym|fitness)$",
    )
});

/// Extends a reference to shown products over a product noun right after it ("these" →
/// "these earrings", "这款" → "这款耳机", "the third" → "the third power bank").
fn extend_ref(graph: &KnowledgeGraph, text: &str, end: usize) -> usize {
    let after = &text[end..];
    let skipped = after.len() - after.trim_start().len();
    let window: String = after.trim_start().chars().take(24).collect();
    graph
        .resolve_any(&window)
        .iter()
        .filter(|m| m.start == 0 && m.nodes.iter().any(|n| n.kind == NodeKind::Category))
        .map(|m| m.end)
        .max()
        .map_or(end, |e| end + skipped + e)
}

/// "... for men", "... with mic": what follows the product noun in an English phrase.
static TYPE_TAIL: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\s+(?:for|with|in|from|of)\s+.*$"));

/// English words that are also brand names ("Only", "Mode", "Spice"): written in lower case they
/// are the word, not the brand.
fn common_word(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "only", "mode", "spice", "action", "red", "blue", "black", "white", "green", "gold",
        "silver", "classic", "style", "fashion", "smart", "happy", "royal", "star", "best", "good",
        "cool", "basic", "elegant", "trendy", "comfort", "sport", "sports", "active", "kids",
        "men", "women", "home", "care", "fresh", "pure", "natural", "gift", "love", "life", "new",
        "urban", "street", "casual", "formal", "party", "one", "all", "max", "shoes", "bags",
        "watches", "nice", "cute", "soft", "bright", "simple", "set", "pack",
    ];
    text.chars().all(|c| !c.is_uppercase()) && WORDS.contains(&text.trim().to_lowercase().as_str())
}

/// What one message states, before dialogue carry-over.
#[derive(Debug, Clone, Default)]
pub struct Stated {
    pub slots: Slots,
    /// The message names a product type, brand or facet the graph knows.
    pub names_product: bool,
    /// Graph concepts the message names (a need such as "gift for a newborn").
    pub concepts: usize,
    /// Policy nodes the message names (returns, warranty, delivery).
    pub policies: usize,
}

/// Reads the slots a message states.
pub fn extract(graph: &KnowledgeGraph, text: &str) -> Stated {
    let mut stated = Stated::default();
    let slots = &mut stated.slots;
    let normalised = normalise_numbers(text);

    // Order ids first, so their digits are not read as prices.
    let mut rest = normalised.clone();
    for pattern in ORDER_ID.iter() {
        if let Some(c) = pattern.captures(&rest)
            && let Some(m) = c.get(1)
        {
            slots.order_id = Some(m.as_str().trim_matches('-').to_owned());
            let range = m.range();
            rest.replace_range(range, " ");
            break;
        }
    }

    let spec = QuerySpec::parse(&rest);
    slots.max_price = spec.max_price;
    slots.min_price = spec.min_price;
    if spec.max_price.is_some() || spec.min_price.is_some() {
        slots.currency = if CURRENCY_INR.is_match(&rest) {
            Some("INR".into())
        } else if CURRENCY_USD.is_match(&rest) {
            Some("USD".into())
        } else if CURRENCY_CNY.is_match(&rest) {
            Some("CNY".into())
        } else {
            None
        };
    }

    slots.product_ref = PRODUCT_REF_EN
        .find(text)
        .or_else(|| PRODUCT_REF_ZH.find(text))
        .map(|m| {
            let end = extend_ref(graph, text, m.end());
            text[m.start()..end].trim().to_owned()
        });

    // The gazetteer, on the text without the price phrases.
    let mut category: Option<(usize, String)> = None;
    let mut facet_spans: Vec<(usize, usize)> = Vec::new();
    let mut category_span: Option<(usize, usize)> = None;
    for m in graph.resolve_any(&spec.text) {
        let cjk = m.text.chars().any(crate::graph::lexicon::is_cjk);
        // English facet values keep the shopper's word ("wooden", "nude"); Chinese ones become
        // the graph's English value.
        let word = |value: &str| {
            if cjk {
                value.to_lowercase()
            } else {
                m.text.to_lowercase()
            }
        };
        for node in &m.nodes {
            match node.kind {
                NodeKind::Category => {
                    stated.names_product = true;
                    let Some(phrase) = head(graph, &m.text, cjk)
                        .or_else(|| cjk.then(|| node.label_en.to_lowercase()))
                    else {
                        continue;
                    };
                    if !cjk {
                        for w in m.text.split_whitespace() {
                            match facet_of(graph, &w.to_lowercase()) {
                                Some((k, _)) if k.starts_with("col") && slots.color.is_none() => {
                                    slots.color = Some(w.to_lowercase());
                                }
                                Some((k, _))
                                    if !k.starts_with("col") && slots.material.is_none() =>
                                {
                                    slots.material = Some(w.to_lowercase());
                                }
                                _ => {}
                            }
                        }
                    }
                    // The first product type named is the one searched for ("curtains ... for
                    // the living room").
                    if category.is_none() {
                        category = Some((m.start, singular(&phrase)));
                        category_span = Some((m.start, m.end));
                    }
                    break;
                }
                NodeKind::Brand if slots.brand.is_none() && !cjk && !common_word(&m.text) => {
                    stated.names_product = true;
                    slots.brand = Some(m.text.clone());
                }
                NodeKind::Attribute => {
                    let Some((key, value)) = node
                        .id
                        .strip_prefix("attr:")
                        .and_then(|a| a.split_once('='))
                    else {
                        continue;
                    };
                    match key {
                        "color" | "colour" if slots.color.is_none() => {
                            stated.names_product = true;
                            slots.color = Some(word(value));
                            facet_spans.push((m.start, m.end));
                        }
                        "material" | "fabric" if slots.material.is_none() => {
                            stated.names_product = true;
                            slots.material = Some(word(value));
                            facet_spans.push((m.start, m.end));
                        }
                        "occasion" if slots.occasion.is_none() => {
                            if let Some((_, v)) = OCCASIONS.iter().find(|(g, _)| *g == value) {
                                slots.occasion = Some((*v).to_owned());
                            }
                        }
                        _ => {}
                    }
                }
                NodeKind::Concept => stated.concepts += 1,
                NodeKind::Policy => stated.policies += 1,
                _ => {}
            }
        }
    }
    // A colour inside the words that point at a shown product ("the blue one") is part of the
    // reference, not a new filter.
    if let Some(r) = &slots.product_ref
        && let Some(at) = spec.text.find(r.as_str())
    {
        let inside = |v: &Option<String>| {
            v.as_ref().is_some_and(|_| {
                facet_spans
                    .iter()
                    .any(|(s, e)| *s >= at && *e <= at + r.len())
            })
        };
        if inside(&slots.color) {
            slots.color = None;
        }
        if inside(&slots.material) {
            slots.material = None;
        }
        if category_span.is_some_and(|(s, e)| s >= at && e <= at + r.len()) {
            category = None;
        }
    }
    slots.category = category.map(|(_, c)| c);
    if slots.occasion.is_none() {
        slots.occasion = OCCASION_WORDS
            .iter()
            .find(|(r, _)| r.is_match(text))
            .map(|(_, v)| (*v).to_owned());
    }
    slots.gender = GENDER_WORDS
        .iter()
        .find(|(r, _)| r.is_match(text))
        .map(|(_, v)| (*v).to_owned());
    stated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_numerals_and_thousands() {
        assert_eq!(zh_number("两百"), Some(200.0));
        assert_eq!(zh_number("一千五"), Some(1500.0));
        assert_eq!(zh_number("三百五十"), Some(350.0));
        assert_eq!(zh_number("1千"), Some(1000.0));
        assert_eq!(zh_number("2万"), Some(20000.0));
        assert_eq!(zh_number("十"), Some(10.0));
        assert_eq!(zh_number("一"), None);
        assert_eq!(normalise_numbers("under 2k please"), "under 2000 please");
        assert_eq!(normalise_numbers("1.5k budget"), "1500 budget");
        assert_eq!(normalise_numbers("两百元以内"), "200元以内");
        assert_eq!(normalise_numbers("第一个"), "第一个");
        assert_eq!(normalise_numbers("a 4k tv"), "a 4k tv");
    }

    #[test]
    fn singular_forms() {
        assert_eq!(singular("Sarees"), "saree");
        assert_eq!(singular("wrist watches"), "wrist watch");
        assert_eq!(singular("socks"), "socks");
        assert_eq!(singular("running shoes"), "running shoes");
        assert_eq!(singular("dresses"), "dress");
        assert_eq!(singular("accessories"), "accessory");
        assert_eq!(singular("kurta"), "kurta");
        assert_eq!(singular("bus"), "bus");
    }

    #[test]
    fn patterns_compile_and_match() {
        let oid = |t: &str| {
            ORDER_ID.iter().find_map(|r| {
                r.captures(t)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str().to_owned())
            })
        };
        assert_eq!(
            oid("where is my order OD4412873?").as_deref(),
            Some("OD4412873")
        );
        assert_eq!(oid("order #58213 not here").as_deref(), Some("#58213"));
        assert_eq!(
            oid("订单号 ORD-240003 到哪了").as_deref(),
            Some("ORD-240003")
        );
        assert_eq!(oid("red flats under 800"), None);
        let r = |t: &str| PRODUCT_REF_EN.find(t).map(|m| m.as_str().to_owned());
        assert_eq!(
            r("is the second one waterproof").as_deref(),
            Some("the second one")
        );
        assert_eq!(
            r("first or the third?").as_deref(),
            Some("first or the third")
        );
        let z = |t: &str| PRODUCT_REF_ZH.find(t).map(|m| m.as_str().to_owned());
        assert_eq!(z("第一个有蓝色吗").as_deref(), Some("第一个"));
        for (r, _) in OCCASION_WORDS.iter().chain(GENDER_WORDS.iter()) {
            assert!(!r.as_str().is_empty());
        }
        assert!(CURRENCY_CNY.is_match("200块"));
        assert!(!CURRENCY_CNY.is_match("一块手表"));
        assert!(CURRENCY_INR.is_match("below Rs. 1,200"));
    }
}
