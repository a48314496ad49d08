//! Conversations and messages in Postgres.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::Card;

/// A conversation as the turn pipeline needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Conversation {
    pub id: Uuid,
    pub customer_id: Option<String>,
    pub lang: Option<String>,
    pub state: String,
    pub verified_orders: Vec<String>,
    pub verify_failures: i32,
}

/// A stored message as the widget and the history endpoint show it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    pub id: i64,
    pub role: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub cards: Vec<Card>,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub meta: Value,
}

pub async fn create(
    pool: &PgPool,
    customer_id: Option<&str>,
    lang: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query("insert into conversations (id, customer_id, lang) values ($1, $2, $3)")
        .bind(id)
        .bind(customer_id)
        .bind(lang)
        .execute(pool)
        .await?;
    Ok(id)
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Conversation>, sqlx::Error> {
    sqlx::query_as(
        "select id, customer_id, lang, state, verified_orders, verify_failures
         from conversations where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Stores a message; returns its id.
pub async fn add_message(
    pool: &PgPool,
    conversation: Uuid,
    role: &str,
    text: &str,
    meta: &Value,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let id: i64 = sqlx::query_scalar(
        "insert into messages (conversation_id, role, text, meta) values ($1, $2, $3, $4) returning id",
    )
    .bind(conversation)
    .bind(role)
    .bind(text)
    .bind(meta)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("update conversations set updated_at = now() where id = $1")
        .bind(conversation)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Adds meta keys to a stored message (the parsed intent, once known).
pub async fn merge_meta(pool: &PgPool, message: i64, meta: &Value) -> Result<(), sqlx::Error> {
    sqlx::query("update messages set meta = meta || $2 where id = $1")
        .bind(message)
        .bind(meta)
        .execute(pool)
        .await?;
    Ok(())
}

/// The last `limit` messages of a conversation (all when `limit` is `None`), oldest first.
pub async fn messages(
    pool: &PgPool,
    conversation: Uuid,
    limit: Option<i64>,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let rows: Vec<(i64, String, String, Value, DateTime<Utc>)> = sqlx::query_as(
        "select id, role, text, meta, created_at from (
             select id, role, text, meta, created_at from messages
             where conversation_id = $1 order by id desc limit $2
         ) m order by id",
    )
    .bind(conversation)
    .bind(limit.unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, role, text, meta, created_at)| StoredMessage {
            id,
            role,
            text,
            kind: meta.get("kind").and_then(Value::as_str).map(str::to_owned),
            cards: meta
                .get("cards")
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_default(),
            created_at,
            meta,
        })
        .collect())
}

pub async fn set_lang(pool: &PgPool, id: Uuid, lang: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update conversations set lang = $2 where id = $1")
        .bind(id)
        .bind(lang)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn set_dialogue_state(pool: &PgPool, id: Uuid, state: &Value) -> Result<(), sqlx::Error> {
    sqlx::query("update conversations set dialogue_state = $2 where id = $1")
        .bind(id)
        .bind(state)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records an order the shopper proved is theirs.
pub async fn add_verified_order(pool: &PgPool, id: Uuid, order: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update conversations set verified_orders = array_append(verified_orders, $2)
         where id = $1 and not ($2 = any(verified_orders))",
    )
    .bind(id)
    .bind(order)
    .execute(pool)
    .await?;
    Ok(())
}

/// Counts a failed ownership proof; returns the new count.
pub async fn add_verify_failure(pool: &PgPool, id: Uuid) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "update conversations set verify_failures = verify_failures + 1 where id = $1
         returning verify_failures",
    )
    .bind(id)
    .fetch_one(pool)
    .await
}

/// Hands the conversation to the human queue, unless a person already has it. Returns the state
/// after the call.
pub async fn escalate(pool: &PgPool, id: Uuid, reason: &str) -> Result<String, sqlx::Error> {
    let state: Option<String> = sqlx::query_scalar(
        "update conversations
         set state = 'waiting_for_agent', escalation_reason = $2, escalated_at = now(), updated_at = now()
         where id = $1 and state = 'bot' returning state",
    )
    .bind(id)
    .bind(reason)
    .fetch_optional(pool)
    .await?;
    match state {
        Some(s) => {
            // Agents' dashboards listen for queue changes (the support issue builds on this).
            sqlx::query("select pg_notify('aisle_queue', $1)")
                .bind(id.to_string())
                .execute(pool)
                .await?;
            Ok(s)
        }
        None => {
            sqlx::query_scalar("select state from conversations where id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
        }
    }
}

/// Position in the human queue (1 = next), when waiting.
pub async fn queue_position(pool: &PgPool, id: Uuid) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from conversations c, conversations me
         where me.id = $1 and me.state = 'waiting_for_agent' and c.state = 'waiting_for_agent'
           and (c.escalated_at, c.id) <= (me.escalated_at, me.id)
         having count(*) > 0",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}
