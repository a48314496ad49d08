//! Staff users (agents, editors, admins), argon2 password hashes, login sessions with per-session
//! CSRF tokens, and login rate limiting. The web layer turns these into cookies and 401/403s.

mod password;
mod repo;
mod service;

pub use service::{AuthError, AuthService, Role, Session, User};

/// A random password for generated accounts (128 bits, hex).
pub fn random_password() -> String {
    password::token()[..32].to_owned()
}
