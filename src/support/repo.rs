//! Support SQL: the queue, claims and hand-backs, notes, canned replies, the audit log.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use uuid::Uuid;

use crate::auth::User;
use crate::chat::repo::StoredMessage;

/// A conversation as the support side sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConvRow {
    pub id: Uuid,
    pub state: String,
    pub lang: Option<String>,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub escalation_reason: Option<String>,
    pub escalation_rule: Option<Value>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub assigned_agent: Option<Uuid>,
    pub agent_name: Option<String>,
    pub verified_orders: Vec<String>,
    pub resolution: Option<String>,
    pub summary: Option<String>,
    pub wait_secs: i64,
}

const CONV_COLUMNS: &str = "c.id, c.state, c.lang, c.customer_id, cu.name as customer_name,
    c.escalation_reason, c.escalation_rule, c.escalated_at, c.claimed_at, c.assigned_agent,
    u.display_name as agent_name, c.verified_orders, c.resolution, c.summary,
    coalesce(extract(epoch from now() - c.escalated_at)::bigint, 0) as wait_secs
    from conversations c
    left join users u on u.id = c.assigned_agent
    left join customers cu on cu.id = c.customer_id";

pub async fn conversation(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<ConvRow>, sqlx::Error> {
    let sql = format!(
        "select {CONV_COLUMNS} where c.id = $1{}",
        if lock { " for update of c" } else { "" }
    );
    // Only constant text is formatted into the statement.
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The waiting conversations (oldest first), then the ones `agent` has (all claimed ones when
/// `all`), at most 200.
pub async fn queue(pool: &PgPool, agent: Uuid, all: bool) -> Result<Vec<ConvRow>, sqlx::Error> {
    let sql = format!(
        "select {CONV_COLUMNS}
         where c.state = 'waiting_for_agent' or (c.state = 'agent' and ($2 or c.assigned_agent = $1))
         order by c.state = 'agent', c.escalated_at, c.id limit 200"
    );
    sqlx::query_as(AssertSqlSafe(sql))
        .bind(agent)
        .bind(all)
        .fetch_all(pool)
        .await
}

/// Every message of the given conversations, oldest first.
pub async fn messages_of(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, StoredMessage)>, sqlx::Error> {
    let rows: Vec<(Uuid, i64, String, String, Value, DateTime<Utc>)> = sqlx::query_as(
        "select conversation_id, id, role, text, meta, created_at from messages
         where conversation_id = any($1) order by id",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(c, id, role, text, meta, at)| {
            (c, StoredMessage::from_row((id, role, text, meta, at)))
        })
        .collect())
}

/// Moves a waiting conversation to `agent`; false when it was not waiting.
pub async fn claim(conn: &mut PgConnection, id: Uuid, agent: Uuid) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "update conversations set state = 'agent', assigned_agent = $2, claimed_at = now(),
             updated_at = now()
         where id = $1 and state = 'waiting_for_agent'",
    )
    .bind(id)
    .bind(agent)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_state(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    resolution: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update conversations set state = $2, assigned_agent = null, updated_at = now(),
             resolution = coalesce($3, resolution),
             closed_at = case when $2 = 'closed' then now() else closed_at end
         where id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(resolution)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn add_note(
    conn: &mut PgConnection,
    id: Uuid,
    author: &User,
    text: &str,
) -> Result<(i64, DateTime<Utc>), sqlx::Error> {
    sqlx::query_as(
        "insert into agent_notes (conversation_id, author, author_name, text) values ($1, $2, $3, $4)
         returning id, created_at",
    )
    .bind(id)
    .bind(author.id)
    .bind(&author.display_name)
    .bind(text)
    .fetch_one(conn)
    .await
}

pub async fn notes(
    pool: &PgPool,
    id: Uuid,
) -> Result<Vec<(i64, String, String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "select id, author_name, text, created_at from agent_notes where conversation_id = $1
         order by id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

pub async fn audit(
    conn: &mut PgConnection,
    actor: &User,
    action: &str,
    conversation: Option<Uuid>,
    detail: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into audit_log (actor, actor_name, action, conversation_id, detail)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(actor.id)
    .bind(&actor.username)
    .bind(action)
    .bind(conversation)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Audit rows, newest first: (at, actor, action, conversation, detail).
pub type AuditRow = (DateTime<Utc>, String, String, Option<Uuid>, Value);

pub async fn audit_log(
    pool: &PgPool,
    conversation: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as(
        "select at, actor_name, action, conversation_id, detail from audit_log
         where $1::uuid is null or conversation_id = $1 order by id desc limit $2",
    )
    .bind(conversation)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn canned(pool: &PgPool) -> Result<Vec<(i64, String, String, String)>, sqlx::Error> {
    sqlx::query_as("select id, title, text, lang from canned_replies order by lang, title, id")
        .fetch_all(pool)
        .await
}

pub async fn add_canned(
    conn: &mut PgConnection,
    title: &str,
    text: &str,
    lang: &str,
    by: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "insert into canned_replies (title, text, lang, created_by) values ($1, $2, $3, $4)
         returning id",
    )
    .bind(title)
    .bind(text)
    .bind(lang)
    .bind(by)
    .fetch_one(conn)
    .await
}

pub async fn delete_canned(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("delete from canned_replies where id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Takes the next conversation in the queue without a summary, marking it as being summarised
/// (`''`), so that one instance writes each summary.
pub async fn take_unsummarised(
    pool: &PgPool,
) -> Result<Option<(Uuid, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "update conversations set summary = '' where id = (
             select id from conversations
             where state in ('waiting_for_agent', 'agent') and summary is null
             order by escalated_at limit 1 for update skip locked)
         returning id, lang",
    )
    .fetch_optional(pool)
    .await
}

pub async fn set_summary(pool: &PgPool, id: Uuid, summary: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update conversations set summary = $2 where id = $1")
        .bind(id)
        .bind(summary)
        .execute(pool)
        .await?;
    Ok(())
}
