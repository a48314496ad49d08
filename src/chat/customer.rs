//! Signed customer tokens: how a store tells aisle which customer is logged in.
//!
//! The store's backend, which knows its logged-in customer, makes a token with the secret it
//! shares with aisle (`chat.customer_token_secret`) and puts it in the widget's
//! `data-customer-token`:
//!
//! ```text
//! v1.<customer id, hex>.<expiry, unix seconds>.<HMAC-SHA256(secret, "v1.<hex id>.<expiry>"), hex>
//! ```
//!
//! A session created with a valid token may read that customer's orders, and only theirs. Without
//! one the shopper proves ownership of a single order with its id and the account's email.

use std::sync::LazyLock;

use hmac::{Hmac, KeyInit, Mac};
use regex::Regex;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("customer tokens are not enabled (chat.customer_token_secret is empty)")]
    Disabled,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token expired")]
    Expired,
    #[error("the token names an unknown customer")]
    UnknownCustomer,
}

fn mac(secret: &[u8], payload: &str) -> Result<HmacSha256, TokenError> {
    let mut m = HmacSha256::new_from_slice(secret).map_err(|_| TokenError::Disabled)?;
    m.update(payload.as_bytes());
    Ok(m)
}

/// A token for `customer_id` valid until `expires` (unix seconds).
pub fn sign(secret: &[u8], customer_id: &str, expires: i64) -> Result<String, TokenError> {
    if secret.is_empty() {
        return Err(TokenError::Disabled);
    }
    let payload = format!("v1.{}.{expires}", hex::encode(customer_id));
    let tag = mac(secret, &payload)?.finalize().into_bytes();
    Ok(format!("{payload}.{}", hex::encode(tag)))
}

/// The customer id a token vouches for at time `now` (unix seconds).
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<String, TokenError> {
    if secret.is_empty() {
        return Err(TokenError::Disabled);
    }
    let mut parts = token.trim().split('.');
    let (Some("v1"), Some(id_hex), Some(expiry), Some(tag_hex), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    let expires: i64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    let tag = hex::decode(tag_hex).map_err(|_| TokenError::Malformed)?;
    // Constant-time comparison (the Mac trait's verify).
    mac(secret, &format!("v1.{id_hex}.{expiry}"))?
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    if expires < now {
        return Err(TokenError::Expired);
    }
    let id = hex::decode(id_hex).map_err(|_| TokenError::Malformed)?;
    String::from_utf8(id).map_err(|_| TokenError::Malformed)
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[a-z0-9._%+\-]{1,64}@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,24}\b")
        .unwrap_or_else(|e| panic!("bad email pattern: {e}"))
});

/// The first email address written in a message.
pub fn email_in(text: &str) -> Option<String> {
    EMAIL.find(text).map(|m| m.as_str().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"shared secret between store and aisle";

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let t = sign(KEY, "CUST-1001", 2_000).unwrap();
        assert_eq!(verify(KEY, &t, 1_000).unwrap(), "CUST-1001");
        assert_eq!(verify(KEY, &t, 2_001), Err(TokenError::Expired));
    }

    #[test]
    fn tampering_or_another_key_is_refused() {
        let t = sign(KEY, "CUST-1001", 2_000).unwrap();
        assert_eq!(verify(b"other", &t, 1_000), Err(TokenError::BadSignature));
        // Another customer's id with the original signature.
        let forged = t.replacen(&hex::encode("CUST-1001"), &hex::encode("CUST-1002"), 1);
        assert_eq!(verify(KEY, &forged, 1_000), Err(TokenError::BadSignature));
        // A later expiry with the original signature.
        let extended = t.replacen(".2000.", ".9999.", 1);
        assert_eq!(verify(KEY, &extended, 1_000), Err(TokenError::BadSignature));
        assert_eq!(verify(KEY, "v1.zz", 1_000), Err(TokenError::Malformed));
        assert_eq!(verify(b"", &t, 1_000), Err(TokenError::Disabled));
    }

    #[test]
    fn emails_are_found_in_messages() {
        assert_eq!(
            email_in("order ORD-1, my email is Priya.Sharma@Example.com thanks").as_deref(),
            Some("priya.sharma@example.com")
        );
        assert_eq!(email_in("no address here @ all"), None);
    }
}
