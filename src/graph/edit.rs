//! Live edits of the curated layer. Each edit runs in one transaction that holds the graph's edit
//! lock (`kg_state` row), checks the node's version (optimistic concurrency), validates the whole
//! resulting graph (dangling edges, duplicate synonyms, empty labels, cycles), writes the node with
//! an audit row, bumps the graph version and notifies other replicas. The validated graph is the
//! new live graph, swapped in after the commit; an invalid edit changes nothing.

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::curated::Curated;
use super::error::GraphError;
use super::model::{EdgeRecord, NodeKind, NodeRecord};
use super::service::GraphService;
use super::{build, repo};
use crate::catalog::repo as catalog_repo;

/// A node as the editor sees and submits it: its record and its outgoing curated edges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub node: NodeRecord,
    pub edges: Vec<EdgeRecord>,
}

/// One change to the curated layer.
#[derive(Debug, Clone)]
pub enum Edit {
    /// A new node (its id must be free).
    Create(NodeState),
    /// Replace a node and its outgoing edges; `expected_version` is the version the editor loaded.
    Update {
        expected_version: i32,
        state: NodeState,
    },
    /// Remove a node and its outgoing edges (refused while other nodes' edges point at it).
    Delete { id: String, expected_version: i32 },
    /// Put a node back as it was before an audited change.
    Revert { audit_id: i64 },
}

/// What an applied edit produced.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub node_id: String,
    pub graph_version: i64,
    /// The node's new version (0 once deleted).
    pub node_version: i32,
}

fn check_state(state: &NodeState) -> Result<(), GraphError> {
    let n = &state.node;
    if NodeKind::of_id(&n.id).is_none_or(|k| k.as_str() != n.kind || k == NodeKind::Product) {
        return Err(GraphError::Invalid(format!(
            "{:?} is not a valid id for a {} node",
            n.id, n.kind
        )));
    }
    if let Some(e) = state.edges.iter().find(|e| e.from_id != n.id) {
        return Err(GraphError::Invalid(format!(
            "edge {} → {} does not start at {}",
            e.from_id, e.to_id, n.id
        )));
    }
    if let Some(e) = state
        .edges
        .iter()
        .find(|e| !(e.weight > 0.0 && e.weight <= 1.0))
    {
        return Err(GraphError::Invalid(format!(
            "edge {} → {} has weight {} (must be in (0, 1])",
            e.from_id, e.to_id, e.weight
        )));
    }
    Ok(())
}

impl GraphService {
    /// Applies one edit by `actor`; see the module docs for the guarantees.
    pub async fn apply(
        &self,
        pool: &PgPool,
        edit: Edit,
        actor: &str,
    ) -> Result<Applied, GraphError> {
        let mut tx = pool.begin().await?;
        // The edit lock: edits are serialised, so validation sees every earlier edit.
        let current_version: i64 = sqlx::query_scalar("select version from kg_state for update")
            .fetch_one(&mut *tx)
            .await?;
        let (id, target, action, before) = match edit {
            Edit::Create(state) => {
                check_state(&state)?;
                let id = state.node.id.clone();
                if repo::node_state(&mut tx, &id).await?.is_some() {
                    return Err(GraphError::Invalid(format!("node {id:?} already exists")));
                }
                (id, Some(state), "create", None)
            }
            Edit::Update {
                expected_version,
                state,
            } => {
                check_state(&state)?;
                let id = state.node.id.clone();
                let before = locked(&mut tx, &id, expected_version).await?;
                (id, Some(state), "update", Some(before))
            }
            Edit::Delete {
                id,
                expected_version,
            } => {
                let before = locked(&mut tx, &id, expected_version).await?;
                (id, None, "delete", Some(before))
            }
            Edit::Revert { audit_id } => {
                let entry = repo::audit_entry(&mut tx, audit_id).await?.ok_or_else(|| {
                    GraphError::Invalid(format!("no change #{audit_id} to revert"))
                })?;
                let id = entry.node_id.ok_or_else(|| {
                    GraphError::Invalid(format!("change #{audit_id} is not a node edit"))
                })?;
                let before = repo::node_state(&mut tx, &id).await?.map(|(s, _)| s);
                (id, entry.before.map(|j| j.0), "revert", before)
            }
        };
        let mut curated = repo::load_in(&mut tx).await?;
        replace_node(&mut curated, &id, target.as_ref());
        let products: Vec<_> = catalog_repo::all_products(pool).try_collect().await?;
        let mut graph =
            tokio::task::spawn_blocking(move || build::build(&curated, &products, current_version))
                .await??;
        let (graph_version, node_version) = repo::write_node(
            &mut tx,
            &id,
            target.as_ref(),
            (action, actor, before.as_ref()),
        )
        .await?;
        tx.commit().await?;
        // Install the graph just validated; refresh() would rebuild the same thing.
        graph.set_version(graph_version);
        self.install(pool, graph, graph_version).await?;
        tracing::info!(node = %id, action, actor, graph_version, "knowledge graph edited");
        Ok(Applied {
            node_id: id,
            graph_version,
            node_version,
        })
    }

    /// The stored state and version of a curated node, for editing.
    pub async fn editable(
        &self,
        pool: &PgPool,
        id: &str,
    ) -> Result<Option<(NodeState, i32)>, GraphError> {
        let mut conn = pool.acquire().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let state = repo::node_state(&mut tx, id).await?;
        tx.rollback().await?;
        Ok(state)
    }
}

/// The stored state of node `id`, locked, provided it is still at `expected_version`.
async fn locked(
    tx: &mut sqlx::PgConnection,
    id: &str,
    expected_version: i32,
) -> Result<NodeState, GraphError> {
    let (state, version) = repo::node_state(tx, id)
        .await?
        .ok_or_else(|| GraphError::NodeNotFound(id.to_owned()))?;
    if version != expected_version {
        return Err(GraphError::Conflict {
            id: id.to_owned(),
            expected: expected_version,
            current: version,
        });
    }
    Ok(state)
}

/// `curated` with node `id` (and its outgoing edges) replaced by `state`, or removed.
fn replace_node(curated: &mut Curated, id: &str, state: Option<&NodeState>) {
    curated.nodes.retain(|n| n.id != id);
    curated.edges.retain(|e| e.from_id != id);
    if let Some(s) = state {
        curated.nodes.push(s.node.clone());
        curated.edges.extend(s.edges.iter().cloned());
    }
}
