//! The support agents' dashboard: the `/agent` page and its JSON API under `/agent/api`.
//!
//! Login is the staff login (`/kg/login`, argon2, rate limited, expiring sessions). Only agents
//! and admins get in; editors get a 403. Every state-changing request carries the session's CSRF
//! token in `X-CSRF-Token` (the cookie is also SameSite=Strict). Live updates come as server-sent
//! events from `/agent/api/events`: wake-ups relayed from Postgres NOTIFY; the page refetches.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::extract::{AppJson, AppQuery};
use super::staff::{SESSION_COOKIE, Staff};
use super::{AppError, PageError};
use crate::auth::{Role, Session};
use crate::chat::Card;
use crate::state::AppState;
use crate::support::{NoticeKind, SupportError, Wake};

/// The header a state-changing API call carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn is_support_role(role: Role) -> bool {
    matches!(role, Role::Agent | Role::Admin)
}

/// A logged-in agent or admin calling the API: 401 without a live session, 403 for other roles
/// and for a state change without the session's CSRF token.
pub struct AgentApi(pub Session);

impl FromRequestParts<AppState> for AgentApi {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let jar = CookieJar::from_headers(&parts.headers);
        let session = match jar.get(SESSION_COOKIE) {
            Some(c) => state.auth.session(c.value()).await?,
            None => None,
        };
        let session = session.ok_or(AppError::Unauthorized)?;
        if !is_support_role(session.user.role) {
            return Err(AppError::Forbidden(
                "the support dashboard is for agents and admins".into(),
            ));
        }
        if parts.method != axum::http::Method::GET {
            let token = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !session.csrf_ok(token) {
                return Err(AppError::Forbidden(
                    "the request's security token is missing or stale; reload the page".into(),
                ));
            }
        }
        Ok(Self(session))
    }
}

#[derive(Template)]
#[template(path = "agent/index.html")]
struct AgentPage {
    csrf: String,
    display_name: String,
    username: String,
    role: String,
    resolutions: Vec<String>,
}

pub async fn page(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    let s = staff.0;
    if !is_support_role(s.user.role) {
        return Err(AppError::Forbidden(format!(
            "the support dashboard is for agents and admins; you are logged in as an {}",
            s.user.role.as_str()
        ))
        .into());
    }
    let page = AgentPage {
        csrf: s.csrf_token,
        display_name: s.user.display_name,
        username: s.user.username,
        role: s.user.role.as_str().to_owned(),
        resolutions: state.support.settings().resolutions.clone(),
    };
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Html(page.render()?),
    )
        .into_response())
}

fn conversation_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::Support(SupportError::NotFound(Uuid::nil())))
}

pub async fn queue(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
) -> Result<Json<serde_json::Value>, AppError> {
    let items = state.support.queue(&s.user).await?;
    Ok(Json(json!({"conversations": items})))
}

#[derive(Deserialize)]
pub struct AfterParam {
    after: Option<i64>,
}

pub async fn conversation(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
    Path(raw): Path<String>,
    AppQuery(p): AppQuery<AfterParam>,
) -> Result<Json<serde_json::Value>, AppError> {
    let view = state
        .support
        .conversation(&s.user, conversation_id(&raw)?, p.after)
        .await?;
    Ok(Json(json!(view)))
}

pub async fn claim(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
    Path(raw): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let info = state.support.claim(&s.user, conversation_id(&raw)?).await?;
    Ok(Json(json!({"conversation": info})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReply {
    #[serde(default)]
    text: String,
    #[serde(default)]
    product_ids: Vec<String>,
}

pub async fn reply(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
    Path(raw): Path<String>,
    AppJson(body): AppJson<NewReply>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let message = state
        .support
        .reply(
            &s.user,
            conversation_id(&raw)?,
            &body.text,
            &body.product_ids,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"message": message}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    text: String,
}

pub async fn note(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
    Path(raw): Path<String>,
    AppJson(body): AppJson<NewNote>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let note = state
        .support
        .note(&s.user, conversation_id(&raw)?, &body.text)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"note": note}))))
}

pub async fn hand_back(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
    Path(raw): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let id = conversation_id(&raw)?;
    state.support.hand_back(&s.user, id).await?;
    Ok(Json(json!({"conversation_id": id, "state": "bot"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    resolution: String,
}

pub async fn close(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
    Path(raw): Path<String>,
    AppJson(body): AppJson<CloseBody>,
) -> Result<Json<serde_json::Value>, AppError> {
    let id = conversation_id(&raw)?;
    state.support.close(&s.user, id, &body.resolution).await?;
    Ok(Json(
        json!({"conversation_id": id, "state": "closed", "resolution": body.resolution}),
    ))
}

pub async fn canned(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
) -> Result<Json<serde_json::Value>, AppError> {
    Ok(Json(
        json!({"canned": state.support.canned(&s.user).await?}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCanned {
    title: String,
    text: String,
    #[serde(default = "en")]
    lang: String,
}

fn en() -> String {
    "en".into()
}

pub async fn add_canned(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
    AppJson(body): AppJson<NewCanned>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let c = state
        .support
        .add_canned(&s.user, &body.title, &body.text, &body.lang)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"canned": c}))))
}

pub async fn delete_canned(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, AppError> {
    state.support.delete_canned(&s.user, id).await?;
    Ok(Json(json!({"deleted": id})))
}

#[derive(Deserialize)]
pub struct AuditParams {
    conversation: Option<Uuid>,
}

pub async fn audit(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
    AppQuery(p): AppQuery<AuditParams>,
) -> Result<Json<serde_json::Value>, AppError> {
    let rows = state.support.audit_log(&s.user, p.conversation).await?;
    Ok(Json(json!({"entries": rows})))
}

#[derive(Deserialize)]
pub struct ProductParams {
    q: Option<String>,
}

/// Product search for sending a card: the shoppers' ranker over the catalog.
pub async fn products(
    State(state): State<AppState>,
    AgentApi(_): AgentApi,
    AppQuery(p): AppQuery<ProductParams>,
) -> Result<Json<serde_json::Value>, AppError> {
    let q = p.q.unwrap_or_default();
    let search = state.search.clone();
    let graph = state.graph.current();
    let query = q.clone();
    let results = tokio::task::spawn_blocking(move || {
        search.search_for(
            crate::ranking::Ranker::Learned,
            &graph,
            &query,
            8,
            &Default::default(),
        )
    })
    .await
    .map_err(|e| AppError::Search(e.into()))??;
    let ids: Vec<String> = results.iter().map(|r| r.id.clone()).collect();
    let (cards, _) = Card::for_ids(&state.pool, &ids).await?;
    Ok(Json(json!({"query": q, "products": cards})))
}

/// Wake-ups for the dashboard: `queue` (the queue changed), `conversation` (a conversation got
/// a message, a state change or a note), `resync` (notices may have been missed). The stream
/// ends when the session is logged out or expires (checked every minute) or the server stops.
pub async fn events(
    State(state): State<AppState>,
    AgentApi(s): AgentApi,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut sub = state.relay.subscribe();
    let (tx, rx) = mpsc::channel::<Event>(256);
    let auth = state.auth.clone();
    let session_id = s.id;
    tokio::spawn(async move {
        let mut check = tokio::time::interval(Duration::from_secs(60));
        check.tick().await;
        let _ = tx.send(Event::default().event("resync").data("{}")).await;
        loop {
            let event = tokio::select! {
                w = sub.next() => match w {
                    None => return,
                    Some(Wake::Resync) => vec![Event::default().event("resync").data("{}")],
                    Some(Wake::Notice(n)) => {
                        let mut out = Vec::new();
                        if n.kind == NoticeKind::State {
                            out.push(Event::default().event("queue").data(
                                json!({"conversation_id": n.conversation}).to_string(),
                            ));
                        }
                        out.push(Event::default().event("conversation").data(
                            json!({"conversation_id": n.conversation, "kind": n.kind}).to_string(),
                        ));
                        out
                    }
                },
                _ = check.tick() => {
                    match auth.session(&session_id).await {
                        Ok(Some(_)) => continue,
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot check an agent's session");
                            continue;
                        }
                    }
                }
                _ = tx.closed() => return,
            };
            for e in event {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
        }
    });
    Sse::new(tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

pub async fn script() -> impl IntoResponse {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../static/agent.js"),
    )
}

pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../static/agent.css"),
    )
}
