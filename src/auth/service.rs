//! Auth logic: creating users, logging in (with rate limiting), resolving sessions.

use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{password, repo};

/// Failed logins allowed per username within [`FAILURE_WINDOW_SECS`].
const MAX_FAILURES: i64 = 5;
const FAILURE_WINDOW_SECS: i64 = 300;
const MIN_PASSWORD_CHARS: usize = 10;

/// What a staff user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Support agent: may view the graph, not edit it.
    Agent,
    /// Content editor: may edit the graph.
    Editor,
    /// Everything.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(Self::Agent),
            "editor" => Some(Self::Editor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }

    pub fn can_edit_graph(self) -> bool {
        matches!(self, Self::Editor | Self::Admin)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

/// A logged-in user's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub csrf_token: String,
    pub user: User,
}

impl Session {
    /// Whether a submitted CSRF token is this session's.
    pub fn csrf_ok(&self, submitted: &str) -> bool {
        password::same_token(&self.csrf_token, submitted)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many failed logins; try again in a few minutes")]
    RateLimited,
    #[error("{0}")]
    Invalid(String),
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Cloneable handle.
#[derive(Clone)]
pub struct AuthService {
    pool: PgPool,
    session_ttl: Duration,
    /// A hash of a random password, verified against when the user does not exist.
    dummy_hash: std::sync::Arc<String>,
}

impl AuthService {
    pub fn new(pool: PgPool, session_ttl: Duration) -> Self {
        let dummy_hash = password::hash(&password::token()).unwrap_or_default();
        Self {
            pool,
            session_ttl,
            dummy_hash: std::sync::Arc::new(dummy_hash),
        }
    }

    /// Creates a user; the password must be at least 10 characters.
    pub async fn create_user(
        &self,
        username: &str,
        display_name: &str,
        role: Role,
        password: &str,
    ) -> Result<User, AuthError> {
        let username = username.trim();
        if username.is_empty()
            || username.len() > 64
            || username
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(AuthError::Invalid(
                "the username must be 1-64 characters without spaces".into(),
            ));
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(AuthError::Invalid(format!(
                "the password must be at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        if repo::user_by_name(&self.pool, username).await?.is_some() {
            return Err(AuthError::Exists(username.to_owned()));
        }
        let pw = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
            .await
            .map_err(|e| AuthError::Invalid(e.to_string()))?
            .map_err(AuthError::Invalid)?;
        let display_name = if display_name.trim().is_empty() {
            username
        } else {
            display_name.trim()
        };
        let row = repo::UserRow {
            id: Uuid::new_v4(),
            username: username.to_owned(),
            display_name: display_name.to_owned(),
            password_hash: hash,
            role: role.as_str().to_owned(),
            disabled: false,
        };
        repo::insert_user(&self.pool, &row).await?;
        Ok(User {
            id: row.id,
            username: row.username,
            display_name: row.display_name,
            role,
        })
    }

    /// Checks the password and opens a session. Rate limited per username; the same error for an
    /// unknown user and a wrong password.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session, AuthError> {
        if repo::recent_failures(&self.pool, username, FAILURE_WINDOW_SECS).await? >= MAX_FAILURES {
            return Err(AuthError::RateLimited);
        }
        let row = repo::user_by_name(&self.pool, username).await?;
        // Verify against a real hash even for unknown users, so timing does not reveal them.
        let stored = row
            .as_ref()
            .map_or_else(|| self.dummy_hash.to_string(), |r| r.password_hash.clone());
        let pw = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || password::verify(&pw, &stored))
            .await
            .unwrap_or(false);
        let row = match row {
            Some(r) if ok && !r.disabled => r,
            _ => {
                repo::record_failure(&self.pool, username).await?;
                return Err(AuthError::BadCredentials);
            }
        };
        repo::clear_failures(&self.pool, username).await?;
        let role = Role::parse(&row.role)
            .ok_or_else(|| AuthError::Invalid(format!("unknown role {:?}", row.role)))?;
        let session = Session {
            id: password::token(),
            csrf_token: password::token(),
            user: User {
                id: row.id,
                username: row.username,
                display_name: row.display_name,
                role,
            },
        };
        let expires = chrono::Utc::now()
            + chrono::Duration::from_std(self.session_ttl).unwrap_or(chrono::Duration::hours(8));
        repo::insert_session(
            &self.pool,
            &session.id,
            session.user.id,
            &session.csrf_token,
            expires,
        )
        .await?;
        Ok(session)
    }

    /// The session for a cookie value, if it is live.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, AuthError> {
        let Some(row) = repo::session(&self.pool, id).await? else {
            return Ok(None);
        };
        let Some(role) = Role::parse(&row.role) else {
            return Ok(None);
        };
        Ok(Some(Session {
            id: row.id,
            csrf_token: row.csrf_token,
            user: User {
                id: row.user_id,
                username: row.username,
                display_name: row.display_name,
                role,
            },
        }))
    }

    pub async fn logout(&self, id: &str) -> Result<(), AuthError> {
        repo::delete_session(&self.pool, id).await?;
        Ok(())
    }

    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }
}
