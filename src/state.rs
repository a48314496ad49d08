//! The shared application state handed to every handler.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::AuthService;
use crate::chat::ChatService;
use crate::config::Settings;
use crate::graph::GraphService;
use crate::ranking::SearchService;
use crate::telemetry::Metrics;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub search: SearchService,
    pub graph: GraphService,
    pub metrics: Metrics,
    pub auth: AuthService,
    pub chat: ChatService,
    pub chat_limits: crate::web::ChatLimits,
    pub support: crate::support::SupportService,
    /// Live updates from every instance (Postgres NOTIFY), fanned out to this one's streams.
    pub relay: crate::support::Relay,
}
