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
    let curated = load_in(&mut tx).await?;
    tx.commit().await?;
    Ok((curated, version))
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
    let after = json!({"nodes": curated.nodes.len(), "edges": curated.edges.len()});
    let version = record_change(&mut tx, None, "import", actor, None, Some(after)).await?;
    tx.commit().await?;
    Ok(version)
}

/// A node's stored record, version and outgoing curated edges, inside a transaction.
pub async fn node_state(
    tx: &mut sqlx::PgConnection,
    id: &str,
) -> Result<Option<(super::edit::NodeState, i32)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Versioned {
        #[sqlx(flatten)]
        node: NodeRecord,
        version: i32,
    }
    let row: Option<Versioned> = sqlx::query_as(
        "select id, kind, label_en, label_zh, synonyms_en, synonyms_zh, data, version from kg_nodes where id = $1 for update",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(Versioned { node, version }) = row else {
        return Ok(None);
    };
    let id = node.id.clone();
    let edges: Vec<EdgeRecord> = sqlx::query_as(
        "select from_id, to_id, kind, weight from kg_edges where from_id = $1 order by kind, to_id",
    )
    .bind(&id)
    .fetch_all(&mut *tx)
    .await?;
    Ok(Some((super::edit::NodeState { node, edges }, version)))
}

/// Writes (or, with `None`, deletes) a node and its outgoing edges, bumps the graph version,
/// records the audit row and notifies listeners. Returns `(graph version, node version)`.
pub async fn write_node(
    tx: &mut sqlx::PgConnection,
    id: &str,
    state: Option<&super::edit::NodeState>,
    audit: (&str, &str, Option<&super::edit::NodeState>),
) -> Result<(i64, i32), sqlx::Error> {
    sqlx::query("delete from kg_edges where from_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let node_version = match state {
        Some(s) => {
            let n = &s.node;
            let v: i32 = sqlx::query_scalar(
                "insert into kg_nodes (id, kind, label_en, label_zh, synonyms_en, synonyms_zh, data, updated_by)
                 values ($1, $2, $3, $4, $5, $6, $7, $8)
                 on conflict (id) do update set kind = excluded.kind, label_en = excluded.label_en,
                     label_zh = excluded.label_zh, synonyms_en = excluded.synonyms_en,
                     synonyms_zh = excluded.synonyms_zh, data = excluded.data,
                     version = kg_nodes.version + 1, updated_by = excluded.updated_by, updated_at = now()
                 returning version",
            )
            .bind(&n.id)
            .bind(&n.kind)
            .bind(&n.label_en)
            .bind(&n.label_zh)
            .bind(&n.synonyms_en)
            .bind(&n.synonyms_zh)
            .bind(&n.data)
            .bind(audit.1)
            .fetch_one(&mut *tx)
            .await?;
            for e in &s.edges {
                sqlx::query("insert into kg_edges (from_id, to_id, kind, weight) values ($1, $2, $3, $4) on conflict do nothing")
                    .bind(&e.from_id)
                    .bind(&e.to_id)
                    .bind(&e.kind)
                    .bind(e.weight)
                    .execute(&mut *tx)
                    .await?;
            }
            v
        }
        None => {
            sqlx::query("delete from kg_nodes where id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            0
        }
    };
    let (action, actor, before) = audit;
    let before = before
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| sqlx::Error::Encode(e.into()))?;
    let after = state
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| sqlx::Error::Encode(e.into()))?;
    let version = record_change(tx, Some(id), action, actor, before, after).await?;
    Ok((version, node_version))
}

/// Bumps the graph version, records the audit row and notifies the replicas (delivered when the
/// transaction commits). Every change to the curated layer ends here.
async fn record_change(
    tx: &mut sqlx::PgConnection,
    node_id: Option<&str>,
    action: &str,
    actor: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<i64, sqlx::Error> {
    let version: i64 =
        sqlx::query_scalar("update kg_state set version = version + 1 returning version")
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "insert into kg_audit (graph_version, node_id, action, actor, before, after) values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(version)
    .bind(node_id)
    .bind(action)
    .bind(actor)
    .bind(before)
    .bind(after)
    .execute(&mut *tx)
    .await?;
    sqlx::query("select pg_notify('aisle_kg', $1::text)")
        .bind(version)
        .execute(&mut *tx)
        .await?;
    Ok(version)
}

/// One audited change.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    pub id: i64,
    pub graph_version: i64,
    pub node_id: Option<String>,
    pub action: String,
    pub actor: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub before: Option<sqlx::types::Json<super::edit::NodeState>>,
    pub after: Option<sqlx::types::Json<super::edit::NodeState>>,
}

/// A node's changes, newest first.
pub async fn history(
    pool: &PgPool,
    node_id: &str,
    limit: i64,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as(
        "select id, graph_version, node_id, action, actor, at, before, after from kg_audit
         where node_id = $1 order by id desc limit $2",
    )
    .bind(node_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn audit_entry(
    tx: &mut sqlx::PgConnection,
    id: i64,
) -> Result<Option<HistoryEntry>, sqlx::Error> {
    sqlx::query_as("select id, graph_version, node_id, action, actor, at, before, after from kg_audit where id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
}

/// The curated layer inside an open transaction (after the edit lock is held).
pub async fn load_in(tx: &mut sqlx::PgConnection) -> Result<Curated, sqlx::Error> {
    let nodes: Vec<NodeRecord> =
        sqlx::query_as("select id, kind, label_en, label_zh, synonyms_en, synonyms_zh, data from kg_nodes order by kind, id")
            .fetch_all(&mut *tx)
            .await?;
    let edges: Vec<EdgeRecord> = sqlx::query_as(
        "select from_id, to_id, kind, weight from kg_edges order by from_id, kind, to_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Curated { nodes, edges })
}
