//! Phrase matching for the graph: every label and synonym of a node becomes a lexicon entry.
//! Latin phrases are matched as token sequences after lower-casing and English stemming (so plurals
//! and case fold: "Ballet Flats" meets "ballet flat"); phrases with Chinese characters are matched as
//! substrings (leftmost-longest), since Chinese has no spaces to split on.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use rust_stemmers::{Algorithm, Stemmer};

/// Longest Latin phrase, in tokens.
const MAX_TOKENS: usize = 6;

/// Whether `c` is a CJK ideograph or a full-width form.
pub fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}' | '\u{f900}'..='\u{faff}' | '\u{ff00}'..='\u{ffef}')
}

/// Currency signs are tokens of their own ("₹500" → "₹", "500").
fn is_symbol(c: char) -> bool {
    matches!(c, '₹' | '$' | '€' | '£' | '¥')
}

/// A Latin token: its folded form and its byte span in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub term: String,
    pub start: usize,
    pub end: usize,
}

/// Splits text into folded Latin tokens (lower-case, stemmed), skipping CJK and punctuation.
/// Apostrophes inside words vanish ("women's" → "womens" → "women").
pub fn latin_tokens(text: &str) -> Vec<Token> {
    let stemmer = Stemmer::create(Algorithm::English);
    let mut out = Vec::new();
    let mut start = None;
    let mut word = String::new();
    let flush = |start: &mut Option<usize>, end: usize, word: &mut String, out: &mut Vec<Token>| {
        if let Some(s) = start.take() {
            let lower = word.to_lowercase();
            out.push(Token {
                term: stemmer.stem(&lower).into_owned(),
                start: s,
                end,
            });
            word.clear();
        }
    };
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() && !is_cjk(c) {
            start.get_or_insert(i);
            word.push(c);
        } else if (c == '\'' || c == '’') && start.is_some() {
            continue;
        } else {
            flush(&mut start, i, &mut word, &mut out);
            if is_symbol(c) {
                out.push(Token {
                    term: c.to_string(),
                    start: i,
                    end: i + c.len_utf8(),
                });
            }
        }
    }
    flush(&mut start, text.len(), &mut word, &mut out);
    out
}

/// The folded form of a phrase: its Latin tokens joined by spaces, or for text with Chinese
/// characters, the lower-cased text without spaces.
pub fn fold(phrase: &str) -> String {
    if phrase.chars().any(is_cjk) {
        phrase.to_lowercase().split_whitespace().collect()
    } else {
        latin_tokens(phrase)
            .into_iter()
            .map(|t| t.term)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A lexicon hit: the span of the text and the entries (caller-defined ids) it names.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    pub start: usize,
    pub end: usize,
    pub targets: &'a [u32],
}

impl Hit<'_> {
    /// Whether this hit lies inside a longer one of `all`.
    pub fn nested(&self, all: &[Hit<'_>]) -> bool {
        all.iter().any(|o| {
            o.start <= self.start && o.end >= self.end && o.end - o.start > self.end - self.start
        })
    }
}

/// Collects phrases, then freezes into a [`Lexicon`].
#[derive(Default)]
pub struct LexiconBuilder {
    latin: HashMap<String, Vec<u32>>,
    cjk: HashMap<String, Vec<u32>>,
}

impl LexiconBuilder {
    /// Adds `phrase` as a way to say `target`. Empty phrases are ignored.
    pub fn add(&mut self, phrase: &str, target: u32) {
        let folded = fold(phrase);
        if folded.is_empty() {
            return;
        }
        let map = if phrase.chars().any(is_cjk) {
            &mut self.cjk
        } else {
            &mut self.latin
        };
        let targets = map.entry(folded).or_default();
        if !targets.contains(&target) {
            targets.push(target);
        }
    }

    pub fn build(self) -> Lexicon {
        let (patterns, targets): (Vec<String>, Vec<Vec<u32>>) = self.cjk.into_iter().unzip();
        // Standard semantics: overlapping search reports every phrase, nested ones included.
        let cjk = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .ok();
        Lexicon {
            latin: self.latin,
            cjk,
            cjk_targets: targets,
        }
    }
}

/// A frozen phrase index.
pub struct Lexicon {
    latin: HashMap<String, Vec<u32>>,
    cjk: Option<AhoCorasick>,
    cjk_targets: Vec<Vec<u32>>,
}

impl Lexicon {
    pub fn len(&self) -> usize {
        self.latin.len() + self.cjk_targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hits in text order: the longest Latin phrase at each position (not overlapping), and every
    /// Chinese phrase, nested ones included ("男士" inside "男士袜子"); see [`Hit::nested`].
    pub fn find(&self, text: &str) -> Vec<Hit<'_>> {
        let mut hits = Vec::new();
        let tokens = latin_tokens(text);
        let mut i = 0;
        while i < tokens.len() {
            let longest = (1..=MAX_TOKENS.min(tokens.len() - i)).rev().find_map(|n| {
                let key = tokens[i..i + n]
                    .iter()
                    .map(|t| t.term.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                self.latin.get(&key).map(|targets| (n, targets))
            });
            match longest {
                Some((n, targets)) => {
                    hits.push(Hit {
                        start: tokens[i].start,
                        end: tokens[i + n - 1].end,
                        targets,
                    });
                    i += n;
                }
                None => i += 1,
            }
        }
        if let Some(ac) = &self.cjk {
            let lower = text.to_lowercase();
            // Lower-casing can change byte lengths outside ASCII; only map spans when it did not.
            if lower.len() == text.len() {
                for m in ac.find_overlapping_iter(&lower) {
                    hits.push(Hit {
                        start: m.start(),
                        end: m.end(),
                        targets: &self.cjk_targets[m.pattern().as_usize()],
                    });
                }
            }
        }
        hits.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end)));
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_phrases_fold_case_plurals_and_apostrophes() {
        let mut b = LexiconBuilder::default();
        b.add("Ballet Flats", 1);
        b.add("women", 2);
        b.add("flat", 3);
        let lex = b.build();
        let hits = lex.find("red ballet flat for Women's day");
        let spans: Vec<(&str, &[u32])> = hits
            .iter()
            .map(|h| {
                (
                    &"red ballet flat for Women's day"[h.start..h.end],
                    h.targets,
                )
            })
            .collect();
        assert_eq!(spans, [("ballet flat", &[1][..]), ("Women's", &[2][..])]);
    }

    #[test]
    fn chinese_phrases_match_inside_unspaced_text() {
        let mut b = LexiconBuilder::default();
        b.add("袜子", 1);
        b.add("男士", 2);
        b.add("保温杯", 3);
        b.add("保温", 4);
        let lex = b.build();
        let text = "男士袜子和保温杯";
        let hits = lex.find(text);
        let outer: Vec<(&str, u32)> = hits
            .iter()
            .filter(|h| !h.nested(&hits))
            .map(|h| (&text[h.start..h.end], h.targets[0]))
            .collect();
        assert_eq!(outer, [("男士", 2), ("袜子", 1), ("保温杯", 3)]);
        let nested: Vec<&str> = hits
            .iter()
            .filter(|h| h.nested(&hits))
            .map(|h| &text[h.start..h.end])
            .collect();
        assert_eq!(nested, ["保温"]);
    }

    #[test]
    fn currency_signs_are_tokens() {
        let t: Vec<String> = latin_tokens("under ₹800")
            .into_iter()
            .map(|t| t.term)
            .collect();
        assert_eq!(t, ["under", "₹", "800"]);
    }
}
