//! Graph SQL: the curated layer in `kg_nodes` / `kg_edges`, its version in `kg_state`, and the
//! audit trail in `kg_audit`.

use serde_json::json;
use sqlx::PgPool;

use super::curated::Curated;
use super::model::{EdgeRecord, NodeRecord};

/// The curated layer and its version.
pub async fn load(pool: &PgPool) -> Result<(Curated, i64), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // One snapshot for all three reads.
    sqlx::query("set transaction isolation level repeatable read")
        .execute(&mut *tx)
        .await?;
    let version: i64 = sqlx::query_scalar("select version from kg_state")
        .fetch_one(&mut *tx)
        .await?;
    let nodes: Vec<NodeRecord> = sqlx::query_as(
        "select id, kind, label_en, label_zh, synonyms_en, synonyms_zh, data from kg_nodes order by kind, id",
    )
    .fetch_all(&mut *tx)
    .await?;
    let edges: Vec<EdgeRecord> = sqlx::query_as(
        "select from_id, to_id, kind, weight from kg_edges order by from_id, kind, to_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((Curated { nodes, edges }, version))
}

pub async fn version(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select version from kg_state")
        .fetch_one(pool)
        .await
}

/// Whether any curated node exists.
pub async fn is_empty(pool: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select not exists(select 1 from kg_nodes)")
        .fetch_one(pool)
        .await
}

/// Replaces the whole curated layer in one transaction, bumping the version and auditing the
/// import; returns the new version. Callers validate first (see `GraphService::import`).
pub async fn replace_all(
    pool: &PgPool,
    curated: &Curated,
    actor: &str,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("delete from kg_edges")
        .execute(&mut *tx)
        .await?;
    sqlx::query("delete from kg_nodes")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "insert into kg_nodes (id, kind, label_en, label_zh, synonyms_en, synonyms_zh, data, updated_by)
         select id, kind, label_en, label_zh,
                array(select jsonb_array_elements_text(synonyms_en)),
                array(select jsonb_array_elements_text(synonyms_zh)), data, $2
         from jsonb_to_recordset($1) as x(id text, kind text, label_en text, label_zh text,
                                         synonyms_en jsonb, synonyms_zh jsonb, data jsonb)",
    )
    .bind(sqlx::types::Json(&curated.nodes))
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into kg_edges (from_id, to_id, kind, weight)
         select from_id, to_id, kind, weight
         from jsonb_to_recordset($1) as x(from_id text, to_id text, kind text, weight real)
         on conflict do nothing",
    )
    .bind(sqlx::types::Json(&curated.edges))
    .execute(&mut *tx)
    .await?;
    let version: i64 =
        sqlx::query_scalar("update kg_state set version = version + 1 returning version")
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "insert into kg_audit (graph_version, action, actor, after) values ($1, 'import', $2, $3)",
    )
    .bind(version)
    .bind(actor)
    .bind(json!({"nodes": curated.nodes.len(), "edges": curated.edges.len()}))
    .execute(&mut *tx)
    .await?;
    sqlx::query("select pg_notify('aisle_kg', $1::text)")
        .bind(version)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(version)
}
