//! Failures of the database layer, in its own terms.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "no Postgres server binaries found (looked at `pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH); \
         install them with `apt-get install postgresql` or set DATABASE_URL to a running server"
    )]
    NoServerBinaries,
    #[error(
        "aisle runs as root, so the embedded Postgres must run as the `postgres` system user, which does not exist; \
         `apt-get install postgresql` creates it, or set DATABASE_URL"
    )]
    NoPostgresUser,
    #[error(
        "the postgres system user cannot write {0}: make its parent directories traversable (chmod o+x) \
         or set database.state_dir (AISLE__DATABASE__STATE_DIR) to a directory it can reach"
    )]
    Unreachable(PathBuf),
    #[error("{command} failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to Postgres: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl DbError {
    pub fn io(context: &str, source: std::io::Error) -> Self {
        Self::Io {
            context: context.to_owned(),
            source,
        }
    }
}
