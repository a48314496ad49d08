//! `POST /api/feedback`: thumbs, clicks and add-to-cart events from the widget.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppError;
use super::extract::AppJson;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    session_id: Uuid,
    message_id: Option<i64>,
    kind: Kind,
    product_id: Option<String>,
    /// 1-based rank the product was shown at (for position-bias correction).
    position: Option<i32>,
    /// The search the product was shown for (turns clicks into training labels).
    query: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Up,
    Down,
    Click,
    AddToCart,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Click => "click",
            Self::AddToCart => "add_to_cart",
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    AppJson(f): AppJson<Feedback>,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    if matches!(f.kind, Kind::Click | Kind::AddToCart) && f.product_id.is_none() {
        return Err(AppError::BadRequest(format!(
            "{} feedback needs a product_id",
            f.kind.as_str()
        )));
    }
    // Each reference is checked so that an unknown id is a 404 naming it, not a constraint error.
    let known: (bool, Option<bool>, Option<bool>) = sqlx::query_as(
        "select exists(select 1 from conversations where id = $1),
                case when $2::bigint is null then null
                     else exists(select 1 from messages where id = $2 and conversation_id = $1) end,
                case when $3::text is null then null else exists(select 1 from products where id = $3) end",
    )
    .bind(f.session_id)
    .bind(f.message_id)
    .bind(&f.product_id)
    .fetch_one(&state.pool)
    .await?;
    match known {
        (false, _, _) => {
            return Err(AppError::NotFound(format!(
                "session {} not found",
                f.session_id
            )));
        }
        (_, Some(false), _) => {
            return Err(AppError::NotFound(
                "message not found in this session".into(),
            ));
        }
        (_, _, Some(false)) => return Err(AppError::NotFound("product not found".into())),
        _ => {}
    }
    if f.position.is_some_and(|p| p < 1) {
        return Err(AppError::BadRequest("position is 1-based".into()));
    }
    if f.query
        .as_ref()
        .is_some_and(|q| q.chars().count() > crate::ranking::MAX_QUERY_CHARS)
    {
        return Err(AppError::BadRequest("query is too long".into()));
    }
    let id: i64 = sqlx::query_scalar(
        "insert into feedback_events (conversation_id, message_id, kind, product_id, position, query)
         values ($1, $2, $3, $4, $5, $6) returning id",
    )
    .bind(f.session_id)
    .bind(f.message_id)
    .bind(f.kind.as_str())
    .bind(&f.product_id)
    .bind(f.position)
    .bind(f.query.as_deref().map(str::trim))
    .fetch_one(&state.pool)
    .await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}
