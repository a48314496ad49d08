//! The support queue and what agents do with a conversation: claim it, read it, reply (with
//! product cards), leave internal notes, hand it back to the bot or close it.
//!
//! Access: agents and admins only (editors are refused). An agent sees a conversation's
//! transcript and customer data only while it is theirs; in the queue, before claiming, they see
//! the reason, the wait, the summary and the facts with customer data masked. Admins see
//! everything (and that is audited too). Each action is one transaction: the change, the message
//! the shopper sees, the audit row and the notice to other instances commit together.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::relay::{self, NoticeKind};
use super::repo::{self, ConvRow};
use super::summary::{self, Facts};
use super::{SupportError, SupportSettings};
use crate::auth::{Role, User};
use crate::chat::Card;
use crate::chat::repo::{self as chat_repo, StoredMessage};
use crate::llm::LlmHandle;

/// Product cards an agent may send in one message.
const MAX_CARDS: usize = 6;

#[derive(Debug, Clone, Serialize)]
pub struct AgentRef {
    pub id: Uuid,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    pub id: Uuid,
    pub state: String,
    pub lang: Option<String>,
    pub reason: Option<String>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub wait_secs: i64,
    pub queue_position: Option<i64>,
    pub assigned_agent: Option<AgentRef>,
    pub mine: bool,
    pub summary: Option<String>,
    /// The shopper's first and latest messages, quoted (shown beside a model's summary).
    pub quote: String,
    pub facts: Facts,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomerRef {
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationInfo {
    pub id: Uuid,
    pub state: String,
    pub lang: Option<String>,
    pub reason: Option<String>,
    pub rule: Option<Value>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub assigned_agent: Option<AgentRef>,
    pub customer: Option<CustomerRef>,
    pub verified_orders: Vec<String>,
    pub resolution: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub id: i64,
    pub author: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConversationView {
    pub conversation: ConversationInfo,
    pub messages: Vec<StoredMessage>,
    pub notes: Vec<Note>,
    pub summary: Option<String>,
    pub quote: String,
    pub facts: Facts,
}

#[derive(Debug, Clone, Serialize)]
pub struct CannedReply {
    pub id: i64,
    pub title: String,
    pub text: String,
    pub lang: String,
}

/// A state change as [`SupportService::transition`] makes it.
struct Transition<'a> {
    state: &'a str,
    resolution: Option<&'a str>,
    /// What the shopper is told (EN, ZH).
    notice: (&'a str, &'a str),
    action: &'a str,
    detail: Value,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct SupportService {
    pool: PgPool,
    settings: Arc<SupportSettings>,
    llm: Option<LlmHandle>,
}

fn agent_ref(row: &ConvRow) -> Option<AgentRef> {
    match (row.assigned_agent, &row.agent_name) {
        (Some(id), Some(name)) => Some(AgentRef {
            id,
            display_name: name.clone(),
        }),
        _ => None,
    }
}

/// Hides customer data in text an agent who does not handle the conversation may see: emails,
/// and tokens with four or more digits (order ids, phone numbers).
pub fn redact(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            if w.contains('@') || w.chars().filter(char::is_ascii_digit).count() >= 4 {
                "•••"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn mask(id: &str) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("•••{tail}")
}

fn is_zh(row: &ConvRow) -> bool {
    row.lang.as_deref() == Some("zh")
}

impl SupportService {
    pub fn new(pool: PgPool, settings: SupportSettings, llm: Option<LlmHandle>) -> Self {
        Self {
            pool,
            settings: Arc::new(settings),
            llm,
        }
    }

    pub fn settings(&self) -> &SupportSettings {
        &self.settings
    }

    fn staff_only(user: &User) -> Result<(), SupportError> {
        match user.role {
            Role::Agent | Role::Admin => Ok(()),
            Role::Editor => Err(SupportError::Forbidden(
                "the support dashboard is for agents and admins".into(),
            )),
        }
    }

    /// Whether `user` may read and act on the conversation now.
    fn handles(user: &User, row: &ConvRow) -> bool {
        user.role == Role::Admin || (row.state == "agent" && row.assigned_agent == Some(user.id))
    }

    fn must_handle(user: &User, row: &ConvRow) -> Result<(), SupportError> {
        if Self::handles(user, row) {
            return Ok(());
        }
        Err(SupportError::Forbidden(match row.state.as_str() {
            "waiting_for_agent" => "claim this conversation first".into(),
            "agent" => format!(
                "{} has this conversation",
                row.agent_name.as_deref().unwrap_or("another agent")
            ),
            s => format!("this conversation is not with an agent (it is {s})"),
        }))
    }

    async fn load(
        &self,
        conn: &mut sqlx::PgConnection,
        id: Uuid,
        lock: bool,
    ) -> Result<ConvRow, SupportError> {
        repo::conversation(conn, id, lock)
            .await?
            .ok_or(SupportError::NotFound(id))
    }

    /// The queue: waiting conversations, oldest first, then the caller's own (an admin's: all
    /// claimed ones).
    pub async fn queue(&self, user: &User) -> Result<Vec<QueueItem>, SupportError> {
        Self::staff_only(user)?;
        let rows = repo::queue(&self.pool, user.id, user.role == Role::Admin).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut by_conv: std::collections::HashMap<Uuid, Vec<StoredMessage>> =
            std::collections::HashMap::new();
        for (c, m) in repo::messages_of(&self.pool, &ids).await? {
            by_conv.entry(c).or_default().push(m);
        }
        let mut position = 0;
        Ok(rows
            .into_iter()
            .map(|row| {
                let messages = by_conv.remove(&row.id).unwrap_or_default();
                let mine = Self::handles(user, &row);
                let mut facts = summary::facts(&messages, &row.verified_orders);
                let mut quote = summary::extractive(&messages, is_zh(&row));
                let mut text = row
                    .summary
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| quote.clone());
                if !mine {
                    facts.order_ids = facts.order_ids.iter().map(|o| mask(o)).collect();
                    text = redact(&text);
                    quote = redact(&quote);
                }
                let queue_position = (row.state == "waiting_for_agent").then(|| {
                    position += 1;
                    position
                });
                QueueItem {
                    id: row.id,
                    assigned_agent: agent_ref(&row),
                    state: row.state,
                    lang: row.lang,
                    reason: row.escalation_reason,
                    escalated_at: row.escalated_at,
                    wait_secs: row.wait_secs.max(0),
                    queue_position,
                    mine,
                    summary: Some(text),
                    quote,
                    facts,
                }
            })
            .collect())
    }

    /// A conversation the caller handles: messages after `after`, notes, summary and facts. A full
    /// read (no `after`) is audited.
    pub async fn conversation(
        &self,
        user: &User,
        id: Uuid,
        after: Option<i64>,
    ) -> Result<ConversationView, SupportError> {
        Self::staff_only(user)?;
        let mut conn = self.pool.acquire().await?;
        let row = self.load(&mut conn, id, false).await?;
        Self::must_handle(user, &row)?;
        if after.is_none() {
            repo::audit(&mut conn, user, "view", Some(id), &json!({})).await?;
        }
        drop(conn);
        let all = chat_repo::messages(&self.pool, id, None).await?;
        let facts = summary::facts(&all, &row.verified_orders);
        let quote = summary::extractive(&all, is_zh(&row));
        let summary_text = row
            .summary
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| quote.clone());
        let messages = match after {
            Some(a) => all.into_iter().filter(|m| m.id > a).collect(),
            None => all,
        };
        let notes = repo::notes(&self.pool, id)
            .await?
            .into_iter()
            .map(|(id, author, text, created_at)| Note {
                id,
                author,
                text,
                created_at,
            })
            .collect();
        Ok(ConversationView {
            conversation: self.info(&row),
            messages,
            notes,
            summary: Some(summary_text),
            quote,
            facts,
        })
    }

    fn info(&self, row: &ConvRow) -> ConversationInfo {
        ConversationInfo {
            id: row.id,
            state: row.state.clone(),
            lang: row.lang.clone(),
            reason: row.escalation_reason.clone(),
            rule: row.escalation_rule.clone(),
            escalated_at: row.escalated_at,
            claimed_at: row.claimed_at,
            assigned_agent: agent_ref(row),
            customer: row.customer_id.as_ref().map(|id| CustomerRef {
                id: id.clone(),
                name: row.customer_name.clone(),
            }),
            verified_orders: row.verified_orders.clone(),
            resolution: row.resolution.clone(),
        }
    }

    /// Takes a waiting conversation. Two agents claiming at once: one wins, the other gets a
    /// conflict naming the winner.
    pub async fn claim(&self, user: &User, id: Uuid) -> Result<ConversationInfo, SupportError> {
        Self::staff_only(user)?;
        let mut tx = self.pool.begin().await?;
        let row = self.load(&mut tx, id, true).await?;
        if !repo::claim(&mut tx, id, user.id).await? {
            return Err(SupportError::Conflict(match row.state.as_str() {
                "agent" => format!(
                    "{} already has this conversation",
                    row.agent_name.as_deref().unwrap_or("another agent")
                ),
                s => format!("this conversation is not waiting for an agent (it is {s})"),
            }));
        }
        let text = if is_zh(&row) {
            format!("{} 已加入对话。", user.display_name)
        } else {
            format!("{} joined the chat.", user.display_name)
        };
        chat_repo::add_message_in(
            &mut tx,
            id,
            "system",
            &text,
            &json!({"event": "claimed", "agent": {"id": user.id, "name": user.display_name}}),
        )
        .await?;
        relay::announce(&mut tx, id, NoticeKind::State, None).await?;
        repo::audit(
            &mut tx,
            user,
            "claim",
            Some(id),
            &json!({"waited_secs": row.wait_secs}),
        )
        .await?;
        let row = self.load(&mut tx, id, false).await?;
        tx.commit().await?;
        Ok(self.info(&row))
    }

    /// Sends the shopper a message, with product cards from the catalog.
    pub async fn reply(
        &self,
        user: &User,
        id: Uuid,
        text: &str,
        product_ids: &[String],
    ) -> Result<StoredMessage, SupportError> {
        Self::staff_only(user)?;
        let text = self.checked_text(text, !product_ids.is_empty())?;
        let cards = self.cards(product_ids).await?;
        let mut tx = self.pool.begin().await?;
        let row = self.load(&mut tx, id, true).await?;
        Self::must_handle(user, &row)?;
        if row.state != "agent" {
            return Err(SupportError::Conflict(
                "claim the conversation before replying".into(),
            ));
        }
        let message = chat_repo::add_message_in(
            &mut tx,
            id,
            "agent",
            text,
            &json!({"agent": {"id": user.id, "name": user.display_name}, "cards": cards}),
        )
        .await?;
        repo::audit(
            &mut tx,
            user,
            "reply",
            Some(id),
            &json!({"message_id": message, "chars": text.chars().count(), "products": product_ids}),
        )
        .await?;
        tx.commit().await?;
        chat_repo::messages_after(&self.pool, id, message - 1, 1)
            .await?
            .into_iter()
            .next()
            .ok_or(SupportError::NotFound(id))
    }

    fn checked_text<'a>(&self, text: &'a str, may_be_empty: bool) -> Result<&'a str, SupportError> {
        let text = text.trim();
        if text.is_empty() && !may_be_empty {
            return Err(SupportError::Invalid("the message is empty".into()));
        }
        let n = text.chars().count();
        if n > self.settings.max_message_chars {
            return Err(SupportError::Invalid(format!(
                "the message is {n} characters long (limit {})",
                self.settings.max_message_chars
            )));
        }
        Ok(text)
    }

    /// Cards for catalog products, in the order given; an unknown id is an error.
    pub async fn cards(&self, ids: &[String]) -> Result<Vec<Card>, SupportError> {
        if ids.len() > MAX_CARDS {
            return Err(SupportError::Invalid(format!(
                "at most {MAX_CARDS} products per message"
            )));
        }
        let (cards, missing) = Card::for_ids(&self.pool, ids).await?;
        match missing.first() {
            Some(id) => Err(SupportError::Invalid(format!("no product with id {id:?}"))),
            None => Ok(cards),
        }
    }

    /// An internal note: agents only, never the shopper.
    pub async fn note(&self, user: &User, id: Uuid, text: &str) -> Result<Note, SupportError> {
        Self::staff_only(user)?;
        let text = self.checked_text(text, false)?;
        let mut tx = self.pool.begin().await?;
        let row = self.load(&mut tx, id, true).await?;
        Self::must_handle(user, &row)?;
        let (note_id, created_at) = repo::add_note(&mut tx, id, user, text).await?;
        relay::announce(&mut tx, id, NoticeKind::Note, None).await?;
        repo::audit(
            &mut tx,
            user,
            "note",
            Some(id),
            &json!({"note_id": note_id}),
        )
        .await?;
        tx.commit().await?;
        Ok(Note {
            id: note_id,
            author: user.display_name.clone(),
            text: text.to_owned(),
            created_at,
        })
    }

    /// Gives the conversation back to the bot, which carries on with the whole history.
    pub async fn hand_back(&self, user: &User, id: Uuid) -> Result<(), SupportError> {
        Self::staff_only(user)?;
        let mut tx = self.pool.begin().await?;
        let row = self.load(&mut tx, id, true).await?;
        Self::must_handle(user, &row)?;
        if row.state != "agent" {
            return Err(SupportError::Conflict(format!(
                "only a claimed conversation can be handed back (this one is {})",
                row.state
            )));
        }
        self.transition(
            tx,
            user,
            &row,
            Transition {
                state: "bot",
                resolution: None,
                notice: (
                    "You're back with the shop assistant. Ask away.",
                    "您已回到购物助手，可以继续提问。",
                ),
                action: "hand_back",
                detail: json!({}),
            },
        )
        .await
    }

    /// Closes the conversation with a resolution tag. The caller must handle it; a waiting one
    /// (spam, a duplicate) may be closed by any agent.
    pub async fn close(&self, user: &User, id: Uuid, resolution: &str) -> Result<(), SupportError> {
        Self::staff_only(user)?;
        if !self.settings.resolutions.iter().any(|r| r == resolution) {
            return Err(SupportError::Invalid(format!(
                "unknown resolution {resolution:?} (one of: {})",
                self.settings.resolutions.join(", ")
            )));
        }
        let mut tx = self.pool.begin().await?;
        let row = self.load(&mut tx, id, true).await?;
        match row.state.as_str() {
            "closed" => {
                return Err(SupportError::Conflict(
                    "this conversation is already closed".into(),
                ));
            }
            "waiting_for_agent" => {}
            _ => Self::must_handle(user, &row)?,
        }
        self.transition(
            tx,
            user,
            &row,
            Transition {
                state: "closed",
                resolution: Some(resolution),
                notice: (
                    "This chat was closed. Start a new chat if you need anything else.",
                    "对话已结束。如需更多帮助，请开始新的对话。",
                ),
                action: "close",
                detail: json!({"resolution": resolution, "from": row.state}),
            },
        )
        .await
    }

    /// Moves a locked conversation to another state and, in the same transaction, tells the
    /// shopper (a system message in their language), announces the change and audits it.
    async fn transition(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
        user: &User,
        row: &ConvRow,
        t: Transition<'_>,
    ) -> Result<(), SupportError> {
        repo::set_state(&mut tx, row.id, t.state, t.resolution).await?;
        let text = if is_zh(row) { t.notice.1 } else { t.notice.0 };
        chat_repo::add_message_in(
            &mut tx,
            row.id,
            "system",
            text,
            &json!({"event": t.action, "resolution": t.resolution}),
        )
        .await?;
        relay::announce(&mut tx, row.id, NoticeKind::State, None).await?;
        repo::audit(&mut tx, user, t.action, Some(row.id), &t.detail).await?;
        tx.commit().await?;
        Ok(())
    }

    fn admin_only(user: &User, what: &str) -> Result<(), SupportError> {
        if user.role == Role::Admin {
            Ok(())
        } else {
            Err(SupportError::Forbidden(format!("only admins {what}")))
        }
    }

    pub async fn canned(&self, user: &User) -> Result<Vec<CannedReply>, SupportError> {
        Self::staff_only(user)?;
        Ok(repo::canned(&self.pool)
            .await?
            .into_iter()
            .map(|(id, title, text, lang)| CannedReply {
                id,
                title,
                text,
                lang,
            })
            .collect())
    }

    /// Adds a canned reply (admins).
    pub async fn add_canned(
        &self,
        user: &User,
        title: &str,
        text: &str,
        lang: &str,
    ) -> Result<CannedReply, SupportError> {
        Self::admin_only(user, "edit canned replies")?;
        let (title, text) = (title.trim(), self.checked_text(text, false)?);
        if title.is_empty() || title.chars().count() > 80 {
            return Err(SupportError::Invalid(
                "the title must be 1-80 characters".into(),
            ));
        }
        if lang != "en" && lang != "zh" {
            return Err(SupportError::Invalid(
                "lang must be \"en\" or \"zh\"".into(),
            ));
        }
        let mut tx = self.pool.begin().await?;
        let id = repo::add_canned(&mut tx, title, text, lang, user.id).await?;
        repo::audit(
            &mut tx,
            user,
            "canned_add",
            None,
            &json!({"id": id, "title": title}),
        )
        .await?;
        tx.commit().await?;
        Ok(CannedReply {
            id,
            title: title.to_owned(),
            text: text.to_owned(),
            lang: lang.to_owned(),
        })
    }

    pub async fn delete_canned(&self, user: &User, id: i64) -> Result<(), SupportError> {
        Self::admin_only(user, "edit canned replies")?;
        let mut tx = self.pool.begin().await?;
        if !repo::delete_canned(&mut tx, id).await? {
            return Err(SupportError::Invalid(format!("no canned reply {id}")));
        }
        repo::audit(&mut tx, user, "canned_delete", None, &json!({"id": id})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The audit log (admins), newest first, for one conversation or all.
    pub async fn audit_log(
        &self,
        user: &User,
        conversation: Option<Uuid>,
    ) -> Result<Vec<Value>, SupportError> {
        Self::admin_only(user, "read the audit log")?;
        Ok(repo::audit_log(&self.pool, conversation, 500)
            .await?
            .into_iter()
            .map(|(at, actor, action, conversation, detail)| {
                json!({"at": at, "actor": actor, "action": action,
                       "conversation_id": conversation, "detail": detail})
            })
            .collect())
    }

    /// Writes the summaries the queue lacks, one conversation at a time; each is taken by one
    /// instance only. Returns how many were written.
    pub async fn summarise_pending(&self) -> Result<usize, SupportError> {
        let mut written = 0;
        while let Some((id, lang)) = repo::take_unsummarised(&self.pool).await? {
            let messages = chat_repo::messages(&self.pool, id, None).await?;
            let llm = self.llm.as_ref().filter(|_| self.settings.llm_summary);
            let (text, source) = summary::write(
                llm,
                &messages,
                lang.as_deref() == Some("zh"),
                Duration::from_millis(self.settings.summary_timeout_ms),
            )
            .await;
            repo::set_summary(&self.pool, id, &text).await?;
            let mut conn = self.pool.acquire().await?;
            relay::announce(&mut conn, id, NoticeKind::State, None).await?;
            tracing::debug!(conversation = %id, ?source, "queue summary written");
            written += 1;
        }
        Ok(written)
    }

    /// Writes summaries whenever the queue changes, until the relay closes or `stop` fires.
    pub fn spawn_summariser(
        &self,
        relay: &super::Relay,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let mut sub = relay.subscribe();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.summarise_pending().await {
                    tracing::warn!(error = %e, "writing queue summaries failed");
                }
                // Wait for a state change (an escalation) or a resync; messages do not matter.
                loop {
                    tokio::select! {
                        w = sub.next() => match w {
                            Some(super::Wake::Notice(n)) if n.kind != NoticeKind::State => {}
                            Some(_) => break,
                            None => return,
                        },
                        _ = stop.changed() => return,
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_emails_and_long_numbers() {
        assert_eq!(
            redact("order OD12345 for asha@example.com is late"),
            "order ••• for ••• is late"
        );
        assert_eq!(redact("red flats under 800"), "red flats under 800");
        assert_eq!(mask("OD1001"), "•••01");
    }
}
