//! Parsing the price strings feeds contain: `12.99 USD`, `USD 12.99`, `₹1,299`, `Rs. 499`, `12,99 EUR`.

use std::str::FromStr;

use rust_decimal::Decimal;

/// A parsed amount and the currency the string named, if any.
pub type Amount = (Decimal, Option<String>);

const SYMBOLS: &[(&str, &str)] = &[
    ("₹", "INR"),
    ("rs.", "INR"),
    ("rs", "INR"),
    ("inr", "INR"),
    ("us$", "USD"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "CNY"),
    ("￥", "CNY"),
    ("元", "CNY"),
    ("rmb", "CNY"),
];

/// Parses a price string. The error is a reason fit for a reject report.
pub fn parse_price(raw: &str) -> Result<Amount, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("empty price".into());
    }
    let (number, currency) = split_currency(s);
    let number = number.trim();
    let amount = parse_number(number).ok_or_else(|| format!("price {raw:?} is not a number"))?;
    Ok((amount, currency))
}

fn split_currency(s: &str) -> (&str, Option<String>) {
    let lower = s.to_lowercase();
    for (sym, code) in SYMBOLS {
        if let Some(rest) = lower.strip_prefix(sym) {
            return (&s[s.len() - rest.len()..], Some((*code).to_owned()));
        }
        if let Some(rest) = lower.strip_suffix(sym) {
            return (&s[..rest.len()], Some((*code).to_owned()));
        }
    }
    // An ISO code before or after the number: "12.99 USD", "USD 12.99".
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() == 2 {
        let is_code = |p: &str| p.len() == 3 && p.chars().all(|c| c.is_ascii_alphabetic());
        if is_code(parts[1]) {
            return (parts[0], Some(parts[1].to_uppercase()));
        }
        if is_code(parts[0]) {
            return (parts[1], Some(parts[0].to_uppercase()));
        }
    }
    (s, None)
}

fn parse_number(s: &str) -> Option<Decimal> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '-' | '+'))
    {
        return None;
    }
    let commas = s.matches(',').count();
    let normalised =
        if commas == 1 && !s.contains('.') && s.rsplit(',').next().is_some_and(|d| d.len() == 2) {
            // "12,99": a decimal comma.
            s.replace(',', ".")
        } else {
            // "1,299.00": thousands separators.
            s.replace(',', "")
        };
    Decimal::from_str(&normalised).ok().map(|d| d.round_dp(2))
}

/// An amount as shoppers read it: "₹1,349", "$12.99", "800 XYZ" for a currency without a sign.
pub fn format_money(amount: f64, currency: &str) -> String {
    let symbol = match currency {
        "INR" => "₹",
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "CNY" => "¥",
        _ => "",
    };
    let cents = (amount * 100.0).round() as i64;
    let (whole, frac) = (cents / 100, (cents % 100).abs());
    let digits = whole.abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if whole < 0 { "-" } else { "" };
    let number = if frac == 0 {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac:02}")
    };
    if symbol.is_empty() {
        format!("{number} {currency}")
    } else {
        format!("{symbol}{number}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (String, Option<String>) {
        let (d, c) = parse_price(s).unwrap();
        (d.to_string(), c)
    }

    #[test]
    fn merchant_center_style_prices() {
        assert_eq!(p("12.99 USD"), ("12.99".into(), Some("USD".into())));
        assert_eq!(p("USD 12.99"), ("12.99".into(), Some("USD".into())));
        assert_eq!(p("1,299.00 INR"), ("1299.00".into(), Some("INR".into())));
        assert_eq!(p("12,99 EUR"), ("12.99".into(), Some("EUR".into())));
        assert_eq!(p("499"), ("499".into(), None));
    }

    #[test]
    fn symbols_and_local_spellings() {
        assert_eq!(p("₹1,299"), ("1299".into(), Some("INR".into())));
        assert_eq!(p("Rs. 499"), ("499".into(), Some("INR".into())));
        assert_eq!(p("$5"), ("5".into(), Some("USD".into())));
        assert_eq!(p("99元"), ("99".into(), Some("CNY".into())));
    }

    #[test]
    fn garbage_is_an_error_not_a_zero() {
        assert!(parse_price("abc USD").is_err());
        assert!(parse_price("").is_err());
        assert!(parse_price("NaN").is_err());
        assert!(parse_price("1e9999").is_err());
        assert_eq!(parse_price("-5 USD").unwrap().0, Decimal::new(-5, 0));
    }
}
