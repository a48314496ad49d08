//! The text analyzer shared by indexing and querying: jieba segmentation (search mode, so long
//! Chinese words also yield their parts), punctuation dropped, lower-cased, English stemming (so
//! "ballerinas" meets "ballerina"). Latin text passes through jieba as whole words.

use std::sync::Arc;

use jieba_rs::Jieba;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The name the analyzer is registered under in the index.
pub const ANALYZER: &str = "aisle";

/// A tantivy tokenizer backed by one shared jieba dictionary.
#[derive(Clone)]
pub struct JiebaTokenizer {
    jieba: Arc<Jieba>,
    tokens: Vec<Token>,
}

impl JiebaTokenizer {
    pub fn new(jieba: Arc<Jieba>) -> Self {
        Self {
            jieba,
            tokens: Vec::new(),
        }
    }
}

/// Keeps words with a letter or digit, dropping lone ASCII letters ("s" from "women's").
fn keep(word: &str) -> bool {
    let mut chars = word.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => c.is_alphanumeric() && !c.is_ascii_alphabetic(),
        (Some(_), Some(_)) => word.chars().any(char::is_alphanumeric),
        _ => false,
    }
}

pub struct JiebaTokenStream<'a> {
    tokens: &'a mut Vec<Token>,
    index: usize,
}

impl Tokenizer for JiebaTokenizer {
    type TokenStream<'a> = JiebaTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> JiebaTokenStream<'a> {
        self.tokens.clear();
        for (position, t) in self
            .jieba
            .cut_for_search(text, false)
            .into_iter()
            .filter(|t| keep(t.word))
            .enumerate()
        {
            self.tokens.push(Token {
                offset_from: t.byte_start,
                offset_to: t.byte_end,
                position,
                text: t.word.to_owned(),
                position_length: 1,
            });
        }
        JiebaTokenStream {
            tokens: &mut self.tokens,
            index: 0,
        }
    }
}

impl TokenStream for JiebaTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.index += 1;
        self.index <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.index - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.index - 1]
    }
}

/// The full analyzer: segmentation, then long-token removal, lower-casing and stemming.
pub fn analyzer(jieba: Arc<Jieba>) -> TextAnalyzer {
    TextAnalyzer::builder(JiebaTokenizer::new(jieba))
        .filter(RemoveLongFilter::limit(60))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// The analyzed terms of `text`, in order, duplicates kept.
pub fn terms(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jieba() -> Arc<Jieba> {
        Arc::new(Jieba::new())
    }

    #[test]
    fn english_is_lower_cased_and_stemmed_and_punctuation_dropped() {
        let mut a = analyzer(jieba());
        assert_eq!(
            terms(&mut a, "Women's Ballerinas, RED!"),
            ["women", "ballerina", "red"]
        );
    }

    #[test]
    fn chinese_is_segmented_into_words() {
        let mut a = analyzer(jieba());
        let t = terms(&mut a, "男士袜子");
        assert!(
            t.contains(&"男士".to_owned()) && t.contains(&"袜子".to_owned()),
            "{t:?}"
        );
    }

    #[test]
    fn mixed_text_keeps_both_scripts() {
        let mut a = analyzer(jieba());
        let t = terms(&mut a, "Aurelle 女士平底鞋 UK 3-8");
        assert!(
            t.contains(&"aurell".to_owned()) || t.contains(&"aurelle".to_owned()),
            "{t:?}"
        );
        assert!(t.contains(&"女士".to_owned()), "{t:?}");
        assert!(t.contains(&"3".to_owned()), "{t:?}");
    }
}
