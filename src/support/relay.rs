//! Live updates across replicas through Postgres LISTEN/NOTIFY.
//!
//! Every change to a conversation (a message, a state change, an agent's note) is written first and
//! announced second: the `pg_notify` runs inside the writing transaction, so Postgres delivers it
//! only after the commit, to every `aisle serve` instance listening on [`CHANNEL`]. A notice is only
//! a wake-up; whoever wakes reads what changed from the database by message id. So a lost notice
//! (a listener reconnecting, a lagging subscriber) costs latency, never a message, and nothing is
//! delivered twice: subscribers keep a cursor (the last message id they sent) and the database
//! answers "everything after it".

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// The notification channel.
pub const CHANNEL: &str = "aisle_support";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A message was stored (shopper, bot, agent or system).
    Message,
    /// The conversation's state or assignee changed.
    State,
    /// An agent's internal note was added.
    Note,
}

/// One change to one conversation, as sent over NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    #[serde(rename = "c")]
    pub conversation: Uuid,
    #[serde(rename = "k")]
    pub kind: NoticeKind,
    /// The message id, for messages.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<i64>,
}

/// What a subscriber wakes up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    Notice(Notice),
    /// Notices may have been missed (the listener reconnected, the subscriber lagged): re-read.
    Resync,
}

/// Announces a change inside the writing transaction (delivered on commit).
pub async fn announce(
    tx: &mut sqlx::PgConnection,
    conversation: Uuid,
    kind: NoticeKind,
    message: Option<i64>,
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_string(&Notice {
        conversation,
        kind,
        message,
    })
    .unwrap_or_default();
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(tx)
        .await?;
    Ok(())
}

/// The in-process fan-out of the notices this instance receives. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    tx: broadcast::Sender<Wake>,
    closed: watch::Sender<bool>,
}

impl Default for Relay {
    fn default() -> Self {
        Self::new()
    }
}

impl Relay {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        let (closed, _) = watch::channel(false);
        Self { tx, closed }
    }

    /// A new subscription. A subscriber that falls more than 1024 notices behind sees a
    /// [`Wake::Resync`] instead of the ones it missed (see [`Subscription::next`]).
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            closed: self.closed.subscribe(),
        }
    }

    /// Ends every subscription (the server is shutting down, so open event streams finish).
    pub fn close(&self) {
        let _ = self.closed.send(true);
    }

    /// Delivers a wake-up to this instance's subscribers only (tests, and the listener below).
    pub fn publish(&self, wake: Wake) {
        let _ = self.tx.send(wake);
    }

    /// Listens on [`CHANNEL`] until `stop` fires, reconnecting after a lost connection; after
    /// every (re)connect, subscribers are told to resync.
    pub fn spawn_listener(
        &self,
        pool: PgPool,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "support relay cannot connect; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                            _ = stop.changed() => return,
                        }
                    }
                };
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "support relay cannot LISTEN; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
                this.publish(Wake::Resync);
                loop {
                    tokio::select! {
                        n = listener.try_recv() => match n {
                            Ok(Some(n)) => match serde_json::from_str::<Notice>(n.payload()) {
                                Ok(notice) => this.publish(Wake::Notice(notice)),
                                Err(e) => tracing::warn!(error = %e, payload = n.payload(), "unreadable support notice"),
                            },
                            // The connection dropped: reconnect, and resync on the way.
                            Ok(None) => {
                                tracing::warn!("support relay lost its connection; reconnecting");
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "support relay failed; reconnecting");
                                break;
                            }
                        },
                        _ = stop.changed() => return,
                    }
                }
            }
        })
    }
}

/// One subscriber's view of the relay.
pub struct Subscription {
    rx: broadcast::Receiver<Wake>,
    closed: watch::Receiver<bool>,
}

impl Subscription {
    /// The next wake-up; `None` once the relay is closed.
    pub async fn next(&mut self) -> Option<Wake> {
        if *self.closed.borrow() {
            return None;
        }
        tokio::select! {
            r = self.rx.recv() => match r {
                Ok(w) => Some(w),
                Err(broadcast::error::RecvError::Lagged(_)) => Some(Wake::Resync),
                Err(broadcast::error::RecvError::Closed) => None,
            },
            _ = self.closed.changed() => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_are_compact_json() {
        let n = Notice {
            conversation: Uuid::nil(),
            kind: NoticeKind::Message,
            message: Some(7),
        };
        let s = serde_json::to_string(&n).unwrap();
        assert_eq!(
            s,
            r#"{"c":"00000000-0000-0000-0000-000000000000","k":"message","m":7}"#
        );
        assert_eq!(serde_json::from_str::<Notice>(&s).unwrap(), n);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_resyncs_and_close_ends_subscriptions() {
        let relay = Relay::new();
        let mut sub = relay.subscribe();
        for _ in 0..1100 {
            relay.publish(Wake::Resync);
        }
        relay.publish(Wake::Notice(Notice {
            conversation: Uuid::nil(),
            kind: NoticeKind::State,
            message: None,
        }));
        assert_eq!(sub.next().await, Some(Wake::Resync));
        relay.close();
        assert_eq!(sub.next().await, None);
    }
}
