//! Auth SQL: users, sessions, login failures.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub csrf_token: String,
    pub user_id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
}

pub async fn insert_user(pool: &PgPool, u: &UserRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into users (id, username, display_name, password_hash, role, disabled) values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(u.id)
    .bind(&u.username)
    .bind(&u.display_name)
    .bind(&u.password_hash)
    .bind(&u.role)
    .bind(u.disabled)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn user_by_name(pool: &PgPool, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, username, display_name, password_hash, role, disabled from users where lower(username) = lower($1)",
    )
    .bind(username)
    .fetch_optional(pool)
    .await
}

pub async fn recent_failures(
    pool: &PgPool,
    username: &str,
    window_secs: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from login_failures where lower(username) = lower($1) and at > now() - make_interval(secs => $2)",
    )
    .bind(username)
    .bind(window_secs as f64)
    .fetch_one(pool)
    .await
}

pub async fn record_failure(pool: &PgPool, username: &str) -> Result<(), sqlx::Error> {
    sqlx::query("insert into login_failures (username) values ($1)")
        .bind(username)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn clear_failures(pool: &PgPool, username: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from login_failures where lower(username) = lower($1)")
        .bind(username)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn insert_session(
    pool: &PgPool,
    id: &str,
    user_id: Uuid,
    csrf: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into sessions (id, user_id, csrf_token, expires_at) values ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(user_id)
    .bind(csrf)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// A live session of an enabled user.
pub async fn session(pool: &PgPool, id: &str) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as(
        "select s.id, s.csrf_token, u.id as user_id, u.username, u.display_name, u.role
         from sessions s join users u on u.id = s.user_id
         where s.id = $1 and s.expires_at > now() and not u.disabled",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

pub async fn delete_session(pool: &PgPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("delete from sessions where id = $1 or expires_at < now()")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
