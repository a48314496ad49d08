//! Staff sessions on the web: the session cookie, the `Staff` extractor (redirects pages to the
//! login form), and the CSRF and role checks every state-changing form goes through.

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use super::{AppError, PageError};
use crate::auth::Session;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "aisle_session";

/// A logged-in staff member of any role.
pub struct Staff(pub Session);

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let session = match jar.get(SESSION_COOKIE) {
            Some(c) => state
                .auth
                .session(c.value())
                .await
                .map_err(|e| PageError(e.into()).into_response())?,
            None => None,
        };
        match session {
            Some(s) => Ok(Staff(s)),
            None if parts.method == axum::http::Method::GET => {
                let here = parts
                    .extensions
                    .get::<OriginalUri>()
                    .map_or("/kg".to_owned(), |u| u.0.to_string());
                Err(Redirect::to(&format!("/kg/login?next={}", urlencode(&here))).into_response())
            }
            None => Err(PageError(AppError::Unauthorized).into_response()),
        }
    }
}

impl Staff {
    /// Refuses a state change without this session's CSRF token, or by a role that may not edit.
    pub fn may_edit(&self, csrf: &str) -> Result<(), AppError> {
        if !self.0.csrf_ok(csrf) {
            return Err(AppError::Forbidden(
                "the form's security token is missing or stale; reload the page".into(),
            ));
        }
        if !self.0.user.role.can_edit_graph() {
            return Err(AppError::Forbidden(format!(
                "the {} role may view the graph but not edit it",
                self.0.user.role.as_str()
            )));
        }
        Ok(())
    }
}

/// The session cookie: HttpOnly, SameSite=Strict, Secure when configured.
pub fn session_cookie(id: String, secure: bool, max_age_secs: u64) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, id))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/")
        .max_age(time_duration(max_age_secs))
        .build()
}

fn time_duration(secs: u64) -> time::Duration {
    time::Duration::seconds(secs.min(i64::MAX as u64) as i64)
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
