//! The database layer: the connection pool, migrations, and the embedded private Postgres cluster
//! used when no `DATABASE_URL` is configured. No business logic lives here.

mod embedded;
mod error;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, PgPool};

pub use embedded::EmbeddedCluster;
pub use error::DbError;

use crate::config::Settings;

/// The database name aisle uses inside the embedded cluster.
const EMBEDDED_DB: &str = "aisle";

/// An open, migrated database plus what must be cleaned up when it closes.
pub struct Database {
    pub pool: PgPool,
    cluster: Option<EmbeddedCluster>,
    /// A throwaway database to drop on close, and how to reach its server.
    temporary: Option<(String, PgConnectOptions)>,
}

impl Database {
    /// Connects to `DATABASE_URL` / `database.url`, or to the embedded cluster (started on demand),
    /// and applies migrations.
    pub async fn open(settings: &Settings) -> Result<Self, DbError> {
        let (server, cluster) = server_options(settings).await?;
        let options = match &cluster {
            Some(cluster) => {
                ensure_database(&cluster.connect_options("postgres"), EMBEDDED_DB).await?;
                cluster.connect_options(EMBEDDED_DB)
            }
            None => server,
        };
        let pool = pool(settings, options).await?;
        migrate(&pool).await?;
        Ok(Self {
            pool,
            cluster,
            temporary: None,
        })
    }

    /// Creates an empty, migrated throwaway database on the configured server (or the embedded
    /// cluster); [`Database::close`] drops it.
    pub async fn open_temporary(settings: &Settings) -> Result<Self, DbError> {
        let (server, cluster) = server_options(settings).await?;
        let admin = match &cluster {
            Some(cluster) => cluster.connect_options("postgres"),
            None => server,
        };
        let name = format!("aisle_tmp_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin.connect().await.map_err(DbError::Connect)?;
        sqlx::query(AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await?;
        drop(conn);
        let pool = pool(settings, admin.clone().database(&name)).await?;
        migrate(&pool).await?;
        Ok(Self {
            pool,
            cluster,
            temporary: Some((name, admin)),
        })
    }

    /// Closes the pool, drops a temporary database, and releases the embedded cluster.
    pub async fn close(mut self) -> Result<(), DbError> {
        self.pool.close().await;
        if let Some((name, admin)) = self.temporary.take() {
            let mut conn = admin.connect().await.map_err(DbError::Connect)?;
            sqlx::query(AssertSqlSafe(format!(
                "drop database if exists {name} with (force)"
            )))
            .execute(&mut conn)
            .await?;
        }
        if let Some(cluster) = self.cluster.take() {
            tokio::task::spawn_blocking(move || cluster.close()).await??;
        }
        Ok(())
    }

    /// Whether this database lives in the embedded cluster.
    pub fn is_embedded(&self) -> bool {
        self.cluster.is_some()
    }
}

async fn server_options(
    settings: &Settings,
) -> Result<(PgConnectOptions, Option<EmbeddedCluster>), DbError> {
    match settings.database_url() {
        Some(url) => Ok((
            PgConnectOptions::from_str(url).map_err(DbError::Connect)?,
            None,
        )),
        None => {
            let state_dir = settings.database.state_dir.clone();
            let cluster =
                tokio::task::spawn_blocking(move || EmbeddedCluster::open(&state_dir)).await??;
            Ok((cluster.connect_options("postgres"), Some(cluster)))
        }
    }
}

async fn pool(settings: &Settings, options: PgConnectOptions) -> Result<PgPool, DbError> {
    let options = options.log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(2));
    PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        .acquire_timeout(Duration::from_secs(settings.database.acquire_timeout_secs))
        .connect_with(options)
        .await
        .map_err(DbError::Connect)
}

async fn ensure_database(admin: &PgConnectOptions, name: &str) -> Result<(), DbError> {
    let mut conn = admin.connect().await.map_err(DbError::Connect)?;
    let exists: bool =
        sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // A concurrent process may win the race; that is fine.
        if let Err(e) = sqlx::query(AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await
        {
            let duplicate = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "42P04");
            if !duplicate {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Applies the migrations in `migrations/` (embedded in the binary).
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    sqlx::migrate!("./migrations").run(pool).await?;
    Ok(())
}
