//! The chat API the widget uses (CONTRACTS.md, HTTP):
//!
//! - `POST /api/chat/sessions` `{"lang"?, "customer_token"?}` → 201 `{"session_id"}`
//! - `POST /api/chat/sessions/{id}/messages` `{"text"}` → `text/event-stream`: `intent`, `cards`,
//!   `token`…, then `done` (the stored reply) or `error`
//! - `GET /api/chat/sessions/{id}/messages` → the conversation so far, for restoring the widget
//! - `GET /api/chat/sessions/{id}/events?after=N` → `text/event-stream` of what happens next:
//!   `message` (every stored message after N, event id = message id, so a reconnecting
//!   EventSource resumes with `Last-Event-ID`) and `state` (who has the chat, the queue position)
//!
//! Limits: message length (`chat.max_message_chars`), messages per session and per client address
//! per minute (429 with Retry-After), one reply at a time per session (409).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::AppError;
use super::extract::AppJson;
use crate::chat::reply::Lang;
use crate::chat::{ChatError, ChatSettings, TurnEvent};
use crate::state::AppState;

/// Per-session and per-address message limits.
#[derive(Clone)]
pub struct ChatLimits {
    per_session: Arc<DefaultKeyedRateLimiter<Uuid>>,
    per_ip: Arc<DefaultKeyedRateLimiter<String>>,
}

impl ChatLimits {
    pub fn new(settings: &ChatSettings) -> Self {
        let quota = |n: u32| {
            let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
            // A burst of a quarter of the minute's budget (at least 3), refilled evenly.
            let burst = NonZeroU32::new((n.get() / 4).max(3).min(n.get())).unwrap_or(n);
            Quota::per_minute(n).allow_burst(burst)
        };
        Self {
            per_session: Arc::new(RateLimiter::keyed(quota(settings.per_session_per_minute))),
            per_ip: Arc::new(RateLimiter::keyed(quota(settings.per_ip_per_minute))),
        }
    }

    fn check(&self, session: Option<Uuid>, ip: &str) -> Result<(), AppError> {
        let clock = DefaultClock::default();
        if let Err(not_until) = self.per_ip.check_key(&ip.to_owned()) {
            return Err(AppError::RateLimited {
                retry_after: not_until.wait_time_from(clock.now()),
            });
        }
        if let Some(s) = session
            && let Err(not_until) = self.per_session.check_key(&s)
        {
            return Err(AppError::RateLimited {
                retry_after: not_until.wait_time_from(clock.now()),
            });
        }
        Ok(())
    }

    /// Forgets keys whose limits have fully refilled (called now and then).
    pub fn prune(&self) {
        self.per_session.retain_recent();
        self.per_ip.retain_recent();
    }
}

/// The client's address: the connection's peer (behind a load balancer, configure it to keep one
/// connection per client, or rate limits apply to the balancer's address).
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "local".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    lang: Option<String>,
    customer_token: Option<String>,
}

pub async fn create_session(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    state.chat_limits.check(None, &ip)?;
    // The body is optional: no body (or `{}`) starts an anonymous session.
    let body: NewSession = if body.iter().all(u8::is_ascii_whitespace) {
        NewSession::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::BadRequest(format!("invalid session request: {e}")))?
    };
    let lang = match body.lang.as_deref() {
        Some(l) => Some(Lang::parse(l).ok_or_else(|| {
            AppError::BadRequest(format!("lang must be \"en\" or \"zh\", not {l:?}"))
        })?),
        None => None,
    };
    let id = state
        .chat
        .start(body.customer_token.as_deref(), lang)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"session_id": id}))))
}

fn session_id(raw: &str) -> Result<Uuid, AppError> {
    // Not a UUID: no such session (the same answer as an unknown one).
    Uuid::parse_str(raw).map_err(|_| AppError::Chat(ChatError::UnknownSession(Uuid::nil())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    text: String,
}

pub async fn post_message(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<NewMessage>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let session = session_id(&raw)?;
    let text = state.chat.validate(&body.text)?.to_owned();
    state.chat_limits.check(Some(session), &ip)?;
    let ticket = state.chat.begin(session).await?;
    let (tx, rx) = mpsc::channel::<TurnEvent>(64);
    let (err_tx, err_rx) = mpsc::channel::<String>(1);
    let chat = state.chat.clone();
    let metrics = state.metrics.clone();
    // The turn runs to the end even when the client goes away, so the history stays whole.
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match chat.turn(ticket, &text, &tx).await {
            Ok(outcome) => {
                metrics.chat_turns.inc();
                if let Some(ms) = outcome
                    .trace
                    .pointer("/ms/cards")
                    .and_then(serde_json::Value::as_u64)
                {
                    metrics.chat_cards_seconds.observe(ms as f64 / 1000.0);
                }
                if let Some(ms) = outcome
                    .trace
                    .pointer("/ms/first_token")
                    .and_then(serde_json::Value::as_u64)
                {
                    metrics.chat_first_token_seconds.observe(ms as f64 / 1000.0);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, elapsed_ms = started.elapsed().as_millis() as u64, "chat turn failed");
                let message = match e {
                    ChatError::Db(_) => "the service is temporarily unavailable; your message may not have been saved, please send it again".to_owned(),
                    other => other.to_string(),
                };
                let _ = err_tx.send(message).await;
            }
        }
    });
    let events = ReceiverStream::new(rx).map(|e| Ok(to_sse(e)));
    let errors = ReceiverStream::new(err_rx).map(|message| {
        Ok(Event::default()
            .event("error")
            .data(json!({"error": message, "status": 500}).to_string()))
    });
    Ok(Sse::new(events.chain(errors))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn to_sse(event: TurnEvent) -> Event {
    let (name, data) = match event {
        TurnEvent::Intent(i) => ("intent", json!(i)),
        TurnEvent::Cards(c) => ("cards", json!({"cards": c})),
        TurnEvent::Token(t) => ("token", json!({"text": t})),
        TurnEvent::Done(o) => (
            "done",
            json!({"message_id": o.message_id, "user_message_id": o.user_message_id, "reply": o.reply}),
        ),
    };
    Event::default().event(name).data(data.to_string())
}

pub async fn history(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let session = session_id(&raw)?;
    let (conv, messages) = state.chat.history(session).await?;
    let public = crate::chat::repo::public_state(&state.pool, session).await?;
    Ok(Json(json!({
        "session_id": conv.id,
        "state": conv.state,
        "agent_name": public.as_ref().and_then(|p| p.agent_name.clone()),
        "queue_position": public.as_ref().and_then(|p| p.queue_position),
        "lang": conv.lang,
        "messages": messages,
    })))
}

#[derive(Deserialize)]
pub struct EventsParams {
    after: Option<i64>,
}

/// Messages read per database round trip while catching up.
const CATCH_UP_BATCH: i64 = 200;
/// How often a quiet stream re-reads anyway (a safety net under the NOTIFY wake-ups).
const SAFETY_POLL: Duration = Duration::from_secs(20);

/// Sends every message after `cursor` to `tx`; the new cursor, or `None` when the client left.
async fn catch_up(
    pool: &sqlx::PgPool,
    session: Uuid,
    mut cursor: i64,
    tx: &mpsc::Sender<Event>,
) -> Result<Option<i64>, sqlx::Error> {
    loop {
        let batch =
            crate::chat::repo::messages_after(pool, session, cursor, CATCH_UP_BATCH).await?;
        let n = batch.len() as i64;
        for m in batch {
            let e = Event::default()
                .event("message")
                .id(m.id.to_string())
                .data(json!(m).to_string());
            if tx.send(e).await.is_err() {
                return Ok(None);
            }
            cursor = m.id;
        }
        if n < CATCH_UP_BATCH {
            return Ok(Some(cursor));
        }
    }
}

/// The shopper's push stream: everything stored after the cursor, then every new message and
/// state change as it happens, across instances (relayed through Postgres NOTIFY). The database
/// is the source: a wake-up only says "read again", and the cursor (the last message id sent)
/// makes the read exact, so nothing is lost or sent twice across reconnects and restarts.
pub async fn events(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    super::extract::AppQuery(p): super::extract::AppQuery<EventsParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    use crate::chat::repo;
    let session = session_id(&raw)?;
    state.chat_limits.check(None, &ip)?;
    // Subscribe before the first read, so a change between the read and the wait still wakes us.
    let mut sub = state.relay.subscribe();
    let first = repo::public_state(&state.pool, session)
        .await?
        .ok_or(ChatError::UnknownSession(session))?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let mut cursor = resume.or(p.after).unwrap_or(0).max(0);
    let pool = state.pool.clone();
    let (tx, rx) = mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut last_state: Option<repo::PublicState> = None;
        let mut current = Some(first);
        loop {
            // Catch up from the database.
            match catch_up(&pool, session, cursor, &tx).await {
                Ok(Some(c)) => cursor = c,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, %session, "event stream read failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
            let now = match current.take() {
                Some(s) => Some(s),
                None => match repo::public_state(&pool, session).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, %session, "event stream state read failed");
                        last_state.clone()
                    }
                },
            };
            let Some(now) = now else { return };
            if last_state.as_ref() != Some(&now) {
                if tx
                    .send(Event::default().event("state").data(json!(now).to_string()))
                    .await
                    .is_err()
                {
                    return;
                }
                last_state = Some(now);
            }
            // Wait for a change to this conversation (or a resync, or the safety poll).
            let deadline = tokio::time::sleep(SAFETY_POLL);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    w = sub.next() => match w {
                        None => return,
                        Some(crate::support::Wake::Notice(n)) if n.conversation != session => {}
                        Some(_) => break,
                    },
                    _ = &mut deadline => break,
                    _ = tx.closed() => return,
                }
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx).map(Ok))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

pub async fn widget_script() -> impl axum::response::IntoResponse {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../static/widget.js"),
    )
}

pub async fn widget_stylesheet() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../static/widget.css"),
    )
}
