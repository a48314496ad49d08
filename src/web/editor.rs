//! The content team's graph editor under `/kg`: login, node search, a node with its edges and
//! history, edit/create/delete/revert, and a preview of what a shopper phrase resolves to.
//! Editors and admins may change things; agents may only look. Every form carries the session's
//! CSRF token.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use serde_json::Value;

use super::extract::AppQuery;
use super::staff::{SESSION_COOKIE, Staff, session_cookie, urlencode};
use super::{AppError, PageError};
use crate::graph::{
    EdgeKind, EdgeRecord, Edit, GraphError, HistoryEntry, NodeKind, NodeRecord, NodeRef, NodeState,
    ids, repo,
};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "kg/login.html")]
struct LoginPage {
    next: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "kg/index.html")]
struct IndexPage {
    user: String,
    role: String,
    can_edit: bool,
    csrf: String,
    q: String,
    results: Vec<NodeRef>,
    stats: String,
    message: Option<String>,
}

#[derive(Template)]
#[template(path = "kg/node.html")]
struct NodePage {
    user: String,
    role: String,
    can_edit: bool,
    csrf: String,
    node: NodeRef,
    /// Stored curated state; `None` for catalog-derived nodes not yet curated.
    version: i32,
    form: NodeForm,
    is_policy: bool,
    edges: Vec<(NodeRef, String, f32, bool)>,
    history: Vec<HistoryRow>,
    message: Option<String>,
    error: Option<String>,
    /// On a conflict: what is stored now, next to the editor's own input.
    current: Option<NodeForm>,
}

struct HistoryRow {
    id: i64,
    action: String,
    actor: String,
    at: String,
    change: String,
}

/// The editable fields of a node, as text.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    version: i32,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label_en: String,
    #[serde(default)]
    label_zh: String,
    #[serde(default)]
    synonyms_en: String,
    #[serde(default)]
    synonyms_zh: String,
    #[serde(default)]
    text_en: String,
    #[serde(default)]
    text_zh: String,
    #[serde(default)]
    facts: String,
    #[serde(default)]
    edges: String,
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    msg: Option<String>,
}

#[derive(Deserialize)]
pub struct IdParam {
    id: String,
    msg: Option<String>,
}

#[derive(Deserialize)]
pub struct DeleteForm {
    id: String,
    version: i32,
    csrf: String,
}

#[derive(Deserialize)]
pub struct RevertForm {
    id: String,
    audit_id: i64,
    csrf: String,
}

#[derive(Deserialize)]
pub struct CreateForm {
    kind: String,
    key: String,
    label_en: String,
    csrf: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// Only local paths: never redirect off-site after login.
fn safe_next(next: &str) -> String {
    if (next.starts_with("/kg") || next == "/agent" || next.starts_with("/agent?"))
        && !next.starts_with("//")
    {
        next.to_owned()
    } else {
        "/kg".to_owned()
    }
}

pub async fn login_page(AppQuery(p): AppQuery<NextParam>) -> Result<Html<String>, PageError> {
    Ok(Html(
        LoginPage {
            next: safe_next(p.next.as_deref().unwrap_or("/kg")),
            error: None,
        }
        .render()?,
    ))
}

pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    match state.auth.login(f.username.trim(), &f.password).await {
        Ok(session) => {
            let cookie = session_cookie(
                session.id,
                state.settings.auth.cookie_secure,
                state.auth.session_ttl().as_secs(),
            );
            Ok((jar.add(cookie), Redirect::to(&safe_next(&f.next))).into_response())
        }
        Err(e @ (crate::auth::AuthError::BadCredentials | crate::auth::AuthError::RateLimited)) => {
            let status = AppError::from(e).status_and_code().0;
            let message = match status {
                axum::http::StatusCode::TOO_MANY_REQUESTS => {
                    "Too many failed logins; try again in a few minutes."
                }
                _ => "Wrong username or password.",
            };
            let page = LoginPage {
                next: safe_next(&f.next),
                error: Some(message.into()),
            };
            Ok((status, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    staff: Staff,
    jar: CookieJar,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    if !staff.0.csrf_ok(&f.csrf) {
        return Err(AppError::Forbidden(
            "the form's security token is missing or stale; reload the page".into(),
        )
        .into());
    }
    state.auth.logout(&staff.0.id).await?;
    Ok((
        jar.remove(axum_extra::extract::cookie::Cookie::from(SESSION_COOKIE)),
        Redirect::to("/kg/login"),
    )
        .into_response())
}

pub async fn index(
    State(state): State<AppState>,
    staff: Staff,
    AppQuery(p): AppQuery<SearchParams>,
) -> Result<Html<String>, PageError> {
    let g = state.graph.current();
    let q = p.q.unwrap_or_default();
    let stats = g.stats();
    let summary = stats
        .nodes
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(" · ");
    let page = IndexPage {
        user: staff.0.user.display_name.clone(),
        role: staff.0.user.role.as_str().into(),
        can_edit: staff.0.user.role.can_edit_graph(),
        csrf: staff.0.csrf_token.clone(),
        results: g.search_nodes(&q, 50),
        q,
        stats: format!("graph version {} — {summary}", stats.version),
        message: p.msg,
    };
    Ok(Html(page.render()?))
}

fn lines(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split(['\n', ',', '，', '、']) {
        let t = part.trim();
        if !t.is_empty() && !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    out
}

fn form_from(state: &NodeState, version: i32, csrf: &str) -> NodeForm {
    let n = &state.node;
    let d = &n.data.0;
    let text = |k: &str| {
        d.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    NodeForm {
        id: n.id.clone(),
        version,
        csrf: csrf.to_owned(),
        label_en: n.label_en.clone(),
        label_zh: n.label_zh.clone().unwrap_or_default(),
        synonyms_en: n.synonyms_en.join("\n"),
        synonyms_zh: n.synonyms_zh.join("\n"),
        text_en: text("text_en"),
        text_zh: text("text_zh"),
        facts: d.get("facts").map(|f| f.to_string()).unwrap_or_default(),
        edges: state
            .edges
            .iter()
            .map(|e| format!("{} {} {}", e.kind, e.weight, e.to_id))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// The node a form describes, on top of what is stored (kind-specific data such as the source
/// file is kept).
fn state_from(
    form: &NodeForm,
    stored: Option<&NodeState>,
    kind: NodeKind,
) -> Result<NodeState, AppError> {
    let mut data = stored
        .map(|s| s.node.data.0.clone())
        .unwrap_or_else(|| serde_json::json!({}));
    if kind == NodeKind::Policy {
        data["text_en"] = form.text_en.trim().into();
        data["text_zh"] = form.text_zh.trim().into();
        if !form.facts.trim().is_empty() {
            data["facts"] = serde_json::from_str(&form.facts)
                .map_err(|e| AppError::BadRequest(format!("facts must be a JSON object: {e}")))?;
        }
    }
    let mut edges = Vec::new();
    for (i, line) in form
        .edges
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let mut parts = line.splitn(3, ' ');
        let (Some(k), Some(w), Some(to)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AppError::BadRequest(format!(
                "edge line {} must read \"kind weight target-id\"",
                i + 1
            )));
        };
        let kind = EdgeKind::parse(k)
            .filter(|k| {
                matches!(
                    k,
                    EdgeKind::Suits
                        | EdgeKind::Complements
                        | EdgeKind::Substitutes
                        | EdgeKind::AppliesTo
                )
            })
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "edge line {}: {k:?} is not suits, complements, substitutes or applies_to",
                    i + 1
                ))
            })?;
        let weight: f32 = w.parse().map_err(|_| {
            AppError::BadRequest(format!("edge line {}: weight {w:?} is not a number", i + 1))
        })?;
        edges.push(EdgeRecord {
            from_id: form.id.clone(),
            to_id: to.trim().to_owned(),
            kind: kind.as_str().into(),
            weight,
        });
    }
    if kind == NodeKind::Policy {
        data["store_wide"] = (!edges.iter().any(|e| e.kind == EdgeKind::AppliesTo.as_str())).into();
    }
    let label_zh = form.label_zh.trim();
    Ok(NodeState {
        node: NodeRecord {
            id: form.id.clone(),
            kind: kind.as_str().into(),
            label_en: form.label_en.trim().to_owned(),
            label_zh: (!label_zh.is_empty()).then(|| label_zh.to_owned()),
            synonyms_en: lines(&form.synonyms_en),
            synonyms_zh: lines(&form.synonyms_zh),
            data: sqlx::types::Json(data),
        },
        edges,
    })
}

fn history_rows(entries: Vec<HistoryEntry>) -> Vec<HistoryRow> {
    entries
        .into_iter()
        .map(|h| {
            let names = |s: &Option<sqlx::types::Json<NodeState>>| {
                s.as_ref().map(|s| {
                    let n = &s.0.node;
                    format!(
                        "{} / {} [{}] [{}]",
                        n.label_en,
                        n.label_zh.clone().unwrap_or_default(),
                        n.synonyms_en.join(", "),
                        n.synonyms_zh.join("，")
                    )
                })
            };
            let change = match (names(&h.before), names(&h.after)) {
                (Some(b), Some(a)) if a == b => "edges or text changed".to_owned(),
                (Some(b), Some(a)) => format!("{b} → {a}"),
                (None, Some(a)) => format!("created: {a}"),
                (Some(b), None) => format!("deleted: {b}"),
                (None, None) => String::new(),
            };
            HistoryRow {
                id: h.id,
                action: h.action,
                actor: h.actor,
                at: h.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                change,
            }
        })
        .collect()
}

async fn render_node(
    state: &AppState,
    staff: &Staff,
    id: &str,
    draft: Option<NodeForm>,
    message: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let g = state.graph.current();
    let node = g
        .node(id)
        .ok_or_else(|| AppError::NotFound(format!("node {id:?} not found")))?;
    let csrf = staff.0.csrf_token.clone();
    let stored = state.graph.editable(&state.pool, id).await?;
    let (version, stored_form) = match &stored {
        Some((s, v)) => (*v, form_from(s, *v, &csrf)),
        None => {
            let (n, se, sz, _) = g
                .node_detail(id)
                .ok_or_else(|| AppError::NotFound(id.to_owned()))?;
            let form = NodeForm {
                id: id.to_owned(),
                csrf: csrf.clone(),
                label_en: n.label_en,
                label_zh: n.label_zh.unwrap_or_default(),
                synonyms_en: se.join("\n"),
                synonyms_zh: sz.join("\n"),
                ..NodeForm::default()
            };
            (0, form)
        }
    };
    let (form, current) = match draft {
        Some(mut d) => {
            d.csrf = csrf.clone();
            (d, error.as_ref().map(|_| stored_form))
        }
        None => (stored_form, None),
    };
    let edges = g
        .edges_of(id)
        .into_iter()
        .filter(|(other, ..)| other.kind != NodeKind::Product)
        .take(200)
        .map(|(n, k, w, out)| (n, k.as_str().to_owned(), w, out))
        .collect();
    let page = NodePage {
        user: staff.0.user.display_name.clone(),
        role: staff.0.user.role.as_str().into(),
        can_edit: staff.0.user.role.can_edit_graph(),
        csrf,
        is_policy: node.kind == NodeKind::Policy,
        node,
        version,
        form,
        edges,
        history: history_rows(repo::history(&state.pool, id, 50).await?),
        message,
        error: error.clone(),
        current,
    };
    let status = if error.is_some() {
        axum::http::StatusCode::CONFLICT
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, Html(page.render()?)).into_response())
}

pub async fn node(
    State(state): State<AppState>,
    staff: Staff,
    AppQuery(p): AppQuery<IdParam>,
) -> Result<Response, PageError> {
    render_node(&state, &staff, &p.id, None, p.msg, None).await
}

fn back_to(id: &str, msg: &str) -> Response {
    Redirect::to(&format!(
        "/kg/node?id={}&msg={}",
        urlencode(id),
        urlencode(msg)
    ))
    .into_response()
}

pub async fn update(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<NodeForm>,
) -> Result<Response, PageError> {
    staff.may_edit(&form.csrf)?;
    let kind = NodeKind::of_id(&form.id)
        .ok_or_else(|| AppError::BadRequest(format!("{:?} is not a node id", form.id)))?;
    let stored = state.graph.editable(&state.pool, &form.id).await?;
    let new_state = state_from(&form, stored.as_ref().map(|(s, _)| s), kind)?;
    let actor = staff.0.user.username.clone();
    let edit = match stored {
        Some(_) => Edit::Update {
            expected_version: form.version,
            state: new_state,
        },
        // A catalog-derived node gets its first curated layer.
        None if form.version == 0 => Edit::Create(new_state),
        None => return Err(AppError::Graph(GraphError::NodeNotFound(form.id.clone())).into()),
    };
    match state.graph.apply(&state.pool, edit, &actor).await {
        Ok(applied) => Ok(back_to(
            &form.id,
            &format!("Saved (graph version {}).", applied.graph_version),
        )),
        Err(e @ (GraphError::Conflict { .. } | GraphError::Invalid(_))) => {
            let id = form.id.clone();
            render_node(&state, &staff, &id, Some(form), None, Some(e.to_string())).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<DeleteForm>,
) -> Result<Response, PageError> {
    staff.may_edit(&f.csrf)?;
    let edit = Edit::Delete {
        id: f.id.clone(),
        expected_version: f.version,
    };
    let done = format!("Deleted {}.", f.id);
    let kept = "Curated layer removed; the catalog still has this node.";
    apply_and_return(&state, &staff, &f.id, edit, kept, &done).await
}

pub async fn revert(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<RevertForm>,
) -> Result<Response, PageError> {
    staff.may_edit(&f.csrf)?;
    let done = format!("Reverted change #{}.", f.audit_id);
    apply_and_return(
        &state,
        &staff,
        &f.id,
        Edit::Revert {
            audit_id: f.audit_id,
        },
        &done,
        &done,
    )
    .await
}

/// Applies an edit of node `id` and returns to its page (`present`) or, when the node no longer
/// exists, to the index (`gone`); a conflict or an invalid edit re-renders the node with the reason.
async fn apply_and_return(
    state: &AppState,
    staff: &Staff,
    id: &str,
    edit: Edit,
    present: &str,
    gone: &str,
) -> Result<Response, PageError> {
    match state
        .graph
        .apply(&state.pool, edit, &staff.0.user.username)
        .await
    {
        Ok(_) if state.graph.current().node(id).is_some() => Ok(back_to(id, present)),
        Ok(_) => Ok(Redirect::to(&format!("/kg?msg={}", urlencode(gone))).into_response()),
        Err(e @ (GraphError::Conflict { .. } | GraphError::Invalid(_))) => {
            render_node(state, staff, id, None, None, Some(e.to_string())).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn create(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<CreateForm>,
) -> Result<Response, PageError> {
    staff.may_edit(&f.csrf)?;
    let key = f.key.trim();
    let (id, data) = match f.kind.as_str() {
        "concept" => (ids::concept(key), serde_json::json!({})),
        "policy" => (
            ids::policy(key),
            serde_json::json!({"policy_kind": "returns", "text_en": f.label_en.trim(), "store_wide": true}),
        ),
        "category" => (ids::category(key), serde_json::json!({"path": key})),
        "brand" => (ids::brand(key), serde_json::json!({"name": key})),
        "attribute" => {
            let (k, v) = key
                .split_once('=')
                .ok_or_else(|| AppError::BadRequest("an attribute is written key=value".into()))?;
            (
                ids::attribute(k, v),
                serde_json::json!({"key": k.trim().to_lowercase(), "value": v.trim()}),
            )
        }
        other => {
            return Err(
                AppError::BadRequest(format!("cannot create a {other:?} node here")).into(),
            );
        }
    };
    if key.is_empty() {
        return Err(AppError::BadRequest("the identifier is empty".into()).into());
    }
    let state_new = NodeState {
        node: NodeRecord {
            id: id.clone(),
            kind: f.kind.clone(),
            label_en: f.label_en.trim().to_owned(),
            label_zh: None,
            synonyms_en: Vec::new(),
            synonyms_zh: Vec::new(),
            data: sqlx::types::Json(data),
        },
        edges: Vec::new(),
    };
    state
        .graph
        .apply(&state.pool, Edit::Create(state_new), &staff.0.user.username)
        .await?;
    Ok(back_to(&id, "Created."))
}
