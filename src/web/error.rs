//! The one `AppError`: every domain error converts into it, and one `match` maps each variant to a
//! status and a stable `code`. JSON callers get `{"error": {"code", "message"}}`; pages wrap it in
//! [`PageError`] for an HTML error page. 5xx log the whole cause chain and say little.

use askama::Template;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::catalog::CatalogError;
use crate::chat::ChatError;
use crate::chat::customer::TokenError;
use crate::graph::GraphError;
use crate::llm::LlmError;
use crate::ranking::SearchError;
use crate::support::SupportError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("log in first")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Search(#[from] SearchError),
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Db(#[source] sqlx::Error),
    #[error("page rendering failed")]
    Render(#[from] askama::Error),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error(transparent)]
    Support(#[from] SupportError),
    #[error("too many messages; try again in {} seconds", .retry_after.as_secs().max(1))]
    RateLimited { retry_after: std::time::Duration },
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(e)
            }
            e => Self::Db(e),
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(r.body_text()),
            _ => Self::BadRequest(r.body_text()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        Self::BadRequest(r.body_text())
    }
}

impl AppError {
    /// Status and stable code for each variant.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Auth(AuthError::BadCredentials) => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            Self::Auth(AuthError::RateLimited) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Auth(AuthError::Invalid(_)) => (StatusCode::BAD_REQUEST, "invalid_user"),
            Self::Auth(AuthError::Exists(_)) => (StatusCode::CONFLICT, "user_exists"),
            Self::Auth(AuthError::Db(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "database_error"),
            Self::Graph(GraphError::Invalid(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_edit")
            }
            Self::Graph(GraphError::Conflict { .. }) => (StatusCode::CONFLICT, "edit_conflict"),
            Self::Graph(GraphError::NodeNotFound(_)) => (StatusCode::NOT_FOUND, "node_not_found"),
            Self::Graph(GraphError::ProductNotFound(_)) => {
                (StatusCode::NOT_FOUND, "product_not_found")
            }
            Self::Graph(GraphError::Db(_) | GraphError::Join(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "graph_error")
            }
            Self::Catalog(CatalogError::ProductNotFound(_)) => {
                (StatusCode::NOT_FOUND, "product_not_found")
            }
            Self::Catalog(CatalogError::Feed(_)) => (StatusCode::BAD_REQUEST, "bad_feed"),
            Self::Catalog(CatalogError::Db(_)) | Self::Db(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "database_error")
            }
            Self::Search(SearchError::EmptyQuery) => (StatusCode::BAD_REQUEST, "empty_query"),
            Self::Search(SearchError::QueryTooLong(_)) => {
                (StatusCode::BAD_REQUEST, "query_too_long")
            }
            Self::Search(_) => (StatusCode::INTERNAL_SERVER_ERROR, "search_error"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Render(_) => (StatusCode::INTERNAL_SERVER_ERROR, "render_error"),
            Self::Llm(LlmError::Overloaded { .. }) => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
            Self::Llm(LlmError::Timeout(_)) => (StatusCode::GATEWAY_TIMEOUT, "model_timeout"),
            Self::Llm(LlmError::Invalid(_)) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::Llm(LlmError::Cancelled) => (StatusCode::BAD_REQUEST, "cancelled"),
            Self::Llm(LlmError::Load(_) | LlmError::Backend(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "model_unavailable")
            }
            Self::Chat(ChatError::Empty) => (StatusCode::BAD_REQUEST, "empty_message"),
            Self::Chat(ChatError::TooLong(..)) => (StatusCode::BAD_REQUEST, "message_too_long"),
            Self::Chat(ChatError::UnknownSession(_)) => (StatusCode::NOT_FOUND, "unknown_session"),
            Self::Chat(ChatError::Busy) => (StatusCode::CONFLICT, "reply_in_progress"),
            Self::Chat(ChatError::Closed) => (StatusCode::CONFLICT, "conversation_closed"),
            Self::Chat(ChatError::Token(TokenError::Disabled)) => {
                (StatusCode::BAD_REQUEST, "customer_tokens_disabled")
            }
            Self::Chat(ChatError::Token(_)) => (StatusCode::UNAUTHORIZED, "invalid_customer_token"),
            Self::Chat(ChatError::Db(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            )) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Chat(ChatError::Db(_) | ChatError::Intent(_) | ChatError::Internal(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "chat_error")
            }
            Self::Support(SupportError::NotFound(_)) => {
                (StatusCode::NOT_FOUND, "conversation_not_found")
            }
            Self::Support(SupportError::Forbidden(_)) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Support(SupportError::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
            Self::Support(SupportError::Invalid(_)) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Support(SupportError::Db(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            )) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Support(SupportError::Db(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "database_error")
            }
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        }
    }

    /// What the client is told: the error itself for 4xx, a short generic sentence for 5xx.
    fn public_message(&self, status: StatusCode) -> String {
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                "the service is temporarily unavailable; try again shortly".into()
            }
            s if s.is_server_error() => {
                "something went wrong on our side; it has been logged".into()
            }
            _ => self.to_string(),
        }
    }

    fn log(&self, status: StatusCode) {
        if status.is_server_error() {
            let mut chain = self.to_string();
            let mut source = std::error::Error::source(self);
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(error = %chain, "request failed");
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        self.log(status);
        let message = self.public_message(status);
        let mut response = (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response();
        if let Self::Llm(LlmError::Overloaded { retry_after, .. })
        | Self::RateLimited { retry_after } = &self
        {
            let secs = (retry_after.as_secs_f64().ceil() as u64).max(1).to_string();
            if let Ok(v) = axum::http::HeaderValue::from_str(&secs) {
                response.headers_mut().insert("retry-after", v);
            }
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("5"));
        }
        response
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

/// An [`AppError`] rendered as an HTML page, for browser routes.
#[derive(Debug)]
pub struct PageError(pub AppError);

// One impl per error type rather than a blanket `impl<E: Into<AppError>>`, which a dependency's
// impl (smallvec's, via mistral.rs) makes incoherent.
macro_rules! page_error_from {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for PageError {
            fn from(e: $t) -> Self {
                Self(e.into())
            }
        })*
    };
}

page_error_from!(
    AppError,
    AuthError,
    GraphError,
    CatalogError,
    SearchError,
    LlmError,
    sqlx::Error,
    askama::Error,
    JsonRejection,
    QueryRejection,
);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, _) = self.0.status_and_code();
        self.0.log(status);
        let message = self.0.public_message(status);
        let page = ErrorPage {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: &message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, message).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overloaded_model_is_429_with_retry_after() {
        let e = AppError::from(LlmError::Overloaded {
            waiting: 16,
            retry_after: std::time::Duration::from_secs(3),
        });
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            r.headers().get("retry-after").map(|v| v.to_str().ok()),
            Some(Some("3"))
        );
        let r =
            AppError::from(LlmError::Timeout(std::time::Duration::from_secs(1))).into_response();
        assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
