//! A reader for the Python literals the Flipkart export embeds in CSV cells: lists, dicts and strings
//! in either quote style (`[{'key': 'Color', 'value': "men's red"}]`), plus numbers, `None`,
//! `True`/`False`. Produces `serde_json::Value`; anything else is an error with its byte offset.

use serde_json::{Map, Value};

/// Parses one Python literal.
pub fn parse(src: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: src.as_bytes(),
        src,
        pos: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 32;

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn value(&mut self) -> Result<Value, String> {
        self.ws();
        match self.peek() {
            Some(b'[') | Some(b'(') => self.seq(),
            Some(b'{') => self.dict(),
            Some(b'\'') | Some(b'"') => self.string().map(Value::String),
            Some(_) => self.bare(),
            None => Err(self.err("unexpected end")),
        }
    }

    fn nest(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        Ok(())
    }

    fn seq(&mut self) -> Result<Value, String> {
        self.nest()?;
        let close = if self.s[self.pos] == b'[' { b']' } else { b')' };
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.pos += 1;
                break;
            }
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(self.err("expected ',' or the end of the list")),
            }
        }
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn dict(&mut self) -> Result<Value, String> {
        self.nest()?;
        self.pos += 1;
        let mut map = Map::new();
        loop {
            self.ws();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                break;
            }
            let key = match self.value()? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            let v = self.value()?;
            map.insert(key, v);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
        self.depth -= 1;
        Ok(Value::Object(map))
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.s[self.pos];
        self.pos += 1;
        let mut out = String::new();
        let mut start = self.pos;
        while let Some(c) = self.peek() {
            match c {
                _ if c == quote => {
                    out.push_str(&self.src[start..self.pos]);
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.src[start..self.pos]);
                    let esc = self
                        .s
                        .get(self.pos + 1)
                        .copied()
                        .ok_or_else(|| self.err("dangling escape"))?;
                    match esc {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'\\' | b'\'' | b'"' => out.push(esc as char),
                        // Unknown escapes stay as written, as Python does.
                        _ => {
                            out.push('\\');
                            self.pos += 1;
                            start = self.pos;
                            continue;
                        }
                    }
                    self.pos += 2;
                    start = self.pos;
                }
                _ => self.pos += 1,
            }
        }
        Err(self.err("unterminated string"))
    }

    fn bare(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'_'))
        {
            self.pos += 1;
        }
        let word = &self.src[start..self.pos];
        match word {
            "" => Err(self.err("unexpected character")),
            "None" => Ok(Value::Null),
            "True" => Ok(Value::Bool(true)),
            "False" => Ok(Value::Bool(false)),
            _ => word
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("unknown literal {word:?} at byte {start}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flipkart_specification_lists() {
        let v = parse(r#"[{'key': 'Ideal For', 'value': 'Women'}, {'value': "men's pack"}, {'key': 'It\'s', 'value': 'a\\b'}]"#)
            .unwrap();
        assert_eq!(
            v,
            json!([{"key": "Ideal For", "value": "Women"}, {"value": "men's pack"}, {"key": "It's", "value": "a\\b"}])
        );
    }

    #[test]
    fn category_trees_and_scalars() {
        assert_eq!(
            parse("['footwear', 'womens footwear']").unwrap(),
            json!(["footwear", "womens footwear"])
        );
        assert_eq!(parse("(1, None, True)").unwrap(), json!([1.0, null, true]));
        assert_eq!(parse("'你好'").unwrap(), json!("你好"));
    }

    #[test]
    fn malformed_literals_report_where() {
        assert_eq!(
            parse("['a', 'b'").unwrap_err(),
            "expected ',' or the end of the list at byte 9"
        );
        assert!(parse("['a").unwrap_err().starts_with("unterminated string"));
        assert!(parse("[os.system('x')]").is_err());
        assert!(
            parse(&"[".repeat(100))
                .unwrap_err()
                .starts_with("nesting too deep")
        );
    }
}
