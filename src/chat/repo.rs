//! Conversations and messages in Postgres.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::Card;
use crate::support::relay::{self, NoticeKind};

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
    /// The agent who wrote it (role `agent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    #[serde(skip)]
    pub meta: Value,
}

impl StoredMessage {
    pub fn from_row(
        (id, role, text, meta, created_at): (i64, String, String, Value, DateTime<Utc>),
    ) -> Self {
        Self {
            id,
            role,
            text,
            kind: meta.get("kind").and_then(Value::as_str).map(str::to_owned),
            cards: meta
                .get("cards")
                .and_then(|c| serde_json::from_value(c.clone()).ok())
                .unwrap_or_default(),
            created_at,
            agent_name: meta
                .pointer("/agent/name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            meta,
        }
    }
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

/// Stores a message and, unless the bot has the conversation, announces it to every instance
/// (on commit); returns its id.
pub async fn add_message(
    pool: &PgPool,
    conversation: Uuid,
    role: &str,
    text: &str,
    meta: &Value,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let id = add_message_in(&mut tx, conversation, role, text, meta).await?;
    tx.commit().await?;
    Ok(id)
}

/// [`add_message`] inside the caller's transaction.
pub async fn add_message_in(
    tx: &mut sqlx::PgConnection,
    conversation: Uuid,
    role: &str,
    text: &str,
    meta: &Value,
) -> Result<i64, sqlx::Error> {
    let id: i64 = sqlx::query_scalar(
        "insert into messages (conversation_id, role, text, meta) values ($1, $2, $3, $4) returning id",
    )
    .bind(conversation)
    .bind(role)
    .bind(text)
    .bind(meta)
    .fetch_one(&mut *tx)
    .await?;
    let state: String = sqlx::query_scalar(
        "update conversations set updated_at = now() where id = $1 returning state",
    )
    .bind(conversation)
    .fetch_one(&mut *tx)
    .await?;
    // Only a conversation a person has or is about to take has listeners (the dashboards, the
    // widget's push stream); the bot's own turns reach the shopper through the reply stream.
    // A state change announces itself, so a stream woken by it reads this message too.
    if state != "bot" {
        relay::announce(tx, conversation, NoticeKind::Message, Some(id)).await?;
    }
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
    Ok(rows.into_iter().map(StoredMessage::from_row).collect())
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

/// Hands the conversation to the human queue, unless a person already has it, recording why
/// (`reason` for people, `rule` for machines). Returns the state after the call.
pub async fn escalate(
    pool: &PgPool,
    id: Uuid,
    reason: &str,
    rule: &Value,
) -> Result<String, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let state: Option<String> = sqlx::query_scalar(
        "update conversations
         set state = 'waiting_for_agent', escalation_reason = $2, escalation_rule = $3,
             escalated_at = now(), updated_at = now(), summary = null, resolution = null
         where id = $1 and state = 'bot' returning state",
    )
    .bind(id)
    .bind(reason)
    .bind(rule)
    .fetch_optional(&mut *tx)
    .await?;
    if state.is_some() {
        relay::announce(&mut tx, id, NoticeKind::State, None).await?;
    }
    tx.commit().await?;
    match state {
        Some(s) => Ok(s),
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

/// Messages after `after` (by id), oldest first, at most `limit`.
pub async fn messages_after(
    pool: &PgPool,
    conversation: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let rows: Vec<(i64, String, String, Value, DateTime<Utc>)> = sqlx::query_as(
        "select id, role, text, meta, created_at from messages
         where conversation_id = $1 and id > $2 order by id limit $3",
    )
    .bind(conversation)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(StoredMessage::from_row).collect())
}

/// What the shopper's widget shows about who has the chat.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicState {
    pub state: String,
    pub agent_name: Option<String>,
    pub queue_position: Option<i64>,
}

pub async fn public_state(pool: &PgPool, id: Uuid) -> Result<Option<PublicState>, sqlx::Error> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "select c.state, u.display_name from conversations c
         left join users u on u.id = c.assigned_agent and c.state = 'agent'
         where c.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some((state, agent_name)) = row else {
        return Ok(None);
    };
    let queue_position = if state == "waiting_for_agent" {
        queue_position(pool, id).await?
    } else {
        None
    };
    Ok(Some(PublicState {
        state,
        agent_name,
        queue_position,
    }))
}

/// The assistant messages of a conversation the shopper gave a thumbs down.
pub async fn thumbs_down(pool: &PgPool, conversation: Uuid) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "select distinct message_id from feedback_events
         where conversation_id = $1 and kind = 'down' and message_id is not null",
    )
    .bind(conversation)
    .fetch_all(pool)
    .await
}
