//! Live edits of the knowledge graph against a real Postgres: versions and conflicts, validation
//! that changes nothing, history and revert, and a second instance following through LISTEN/NOTIFY.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aisle::graph::{Edit, GraphError, GraphService, NodeState, repo};
use sqlx::PgPool;

async fn demo(pool: &PgPool) -> GraphService {
    common::demo_state(pool.clone()).await.graph
}

/// A concept that reaches demo products, with its stored state.
async fn a_concept(graph: &GraphService, pool: &PgPool) -> (NodeState, i32) {
    let ids: Vec<String> =
        sqlx::query_scalar("select id from kg_nodes where kind = 'concept' order by id")
            .fetch_all(pool)
            .await
            .unwrap();
    for id in ids {
        let g = graph.current();
        let x = g.expand(&id);
        if !g.products_reached(&x, 1).is_empty() {
            return graph.editable(pool, &id).await.unwrap().unwrap();
        }
    }
    panic!("no concept reaches a demo product");
}

fn resolves_to(graph: &GraphService, phrase: &str, id: &str) -> bool {
    graph
        .current()
        .resolve(phrase)
        .iter()
        .any(|m| m.nodes.iter().any(|n| n.id == id))
}

#[sqlx::test]
async fn an_added_synonym_resolves_at_once_and_is_audited(pool: PgPool) {
    let graph = demo(&pool).await;
    let (mut state, version) = a_concept(&graph, &pool).await;
    let id = state.node.id.clone();
    assert!(!resolves_to(&graph, "something for the hostel room", &id));
    let before_version = graph.current().version();
    state.node.synonyms_en.push("hostel room".into());
    let applied = graph
        .apply(
            &pool,
            Edit::Update {
                expected_version: version,
                state,
            },
            "editor-1",
        )
        .await
        .unwrap();
    assert_eq!(applied.node_version, version + 1);
    assert_eq!(applied.graph_version, before_version + 1);
    assert!(resolves_to(&graph, "something for the hostel room", &id));
    let history = repo::history(&pool, &id, 10).await.unwrap();
    assert_eq!(history[0].action, "update");
    assert_eq!(history[0].actor, "editor-1");
    let before = &history[0].before.as_ref().unwrap().0;
    let after = &history[0].after.as_ref().unwrap().0;
    assert!(!before.node.synonyms_en.contains(&"hostel room".to_owned()));
    assert!(after.node.synonyms_en.contains(&"hostel room".to_owned()));
}

#[sqlx::test]
async fn concurrent_edits_of_one_node_conflict_and_nothing_is_lost(pool: PgPool) {
    let graph = demo(&pool).await;
    let (state, version) = a_concept(&graph, &pool).await;
    let (mut mine, mut theirs) = (state.clone(), state);
    mine.node.synonyms_en.push("first editor phrase".into());
    theirs.node.synonyms_en.push("second editor phrase".into());
    graph
        .apply(
            &pool,
            Edit::Update {
                expected_version: version,
                state: mine,
            },
            "a",
        )
        .await
        .unwrap();
    let err = graph
        .apply(
            &pool,
            Edit::Update {
                expected_version: version,
                state: theirs,
            },
            "b",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GraphError::Conflict { current, .. } if current == version + 1),
        "{err}"
    );
    assert!(err.to_string().contains("changed by someone else"));
    let id = &graph.current().resolve("first editor phrase")[0].nodes[0]
        .id
        .clone();
    let (stored, v) = graph.editable(&pool, id).await.unwrap().unwrap();
    assert!(
        stored
            .node
            .synonyms_en
            .contains(&"first editor phrase".to_owned())
    );
    assert!(
        !stored
            .node
            .synonyms_en
            .contains(&"second editor phrase".to_owned())
    );
    assert_eq!(v, version + 1);
}

#[sqlx::test]
async fn invalid_edits_are_refused_with_the_reason_and_change_nothing(pool: PgPool) {
    let graph = demo(&pool).await;
    let (state, version) = a_concept(&graph, &pool).await;
    let stored_before = repo::load(&pool).await.unwrap();
    let graph_version = graph.current().version();

    let mut dangling = state.clone();
    dangling.edges.push(aisle::graph::EdgeRecord {
        from_id: state.node.id.clone(),
        to_id: "category:Nowhere > At All".into(),
        kind: "suits".into(),
        weight: 0.5,
    });
    let err = graph
        .apply(
            &pool,
            Edit::Update {
                expected_version: version,
                state: dangling,
            },
            "x",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dangling"), "{err}");

    let other: String = sqlx::query_scalar("select id from kg_nodes where kind = 'concept' and id <> $1 and cardinality(synonyms_en) > 0 limit 1")
        .bind(&state.node.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let taken = graph
        .editable(&pool, &other)
        .await
        .unwrap()
        .unwrap()
        .0
        .node
        .synonyms_en[0]
        .clone();
    let mut duplicate = state.clone();
    duplicate.node.synonyms_en.push(taken.clone());
    let err = graph
        .apply(
            &pool,
            Edit::Update {
                expected_version: version,
                state: duplicate,
            },
            "x",
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("synonym {taken:?} is on both")),
        "{err}"
    );

    let mut empty = state.clone();
    empty.node.label_en = " ".into();
    let err = graph
        .apply(
            &pool,
            Edit::Update {
                expected_version: version,
                state: empty,
            },
            "x",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty English label"), "{err}");

    let mut wrong_kind = state.clone();
    wrong_kind.node.kind = "policy".into();
    assert!(
        graph
            .apply(
                &pool,
                Edit::Update {
                    expected_version: version,
                    state: wrong_kind
                },
                "x"
            )
            .await
            .is_err()
    );

    // A curated-only node that another node's edge points at cannot be deleted.
    let targets: Vec<String> = sqlx::query_scalar(
        "select distinct e.to_id from kg_edges e join kg_nodes n on n.id = e.to_id where n.kind = 'attribute' order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let orphan = targets
        .into_iter()
        .find(|t| graph.current().node(t).is_some_and(|n| n.products == 0))
        .unwrap();
    let (_, v) = graph.editable(&pool, &orphan).await.unwrap().unwrap();
    let err = graph
        .apply(
            &pool,
            Edit::Delete {
                id: orphan.clone(),
                expected_version: v,
            },
            "x",
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("dangling") && err.to_string().contains(&orphan),
        "{err}"
    );

    assert_eq!(repo::load(&pool).await.unwrap(), stored_before);
    assert_eq!(graph.current().version(), graph_version);
    let audits: i64 = sqlx::query_scalar("select count(*) from kg_audit where action <> 'import'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audits, 0);
}

#[sqlx::test]
async fn a_change_can_be_reverted_and_a_deleted_node_restored(pool: PgPool) {
    let graph = demo(&pool).await;
    let (state, version) = a_concept(&graph, &pool).await;
    let id = state.node.id.clone();
    let mut edited = state.clone();
    edited.node.label_zh = Some("新的中文名".into());
    graph
        .apply(
            &pool,
            Edit::Update {
                expected_version: version,
                state: edited,
            },
            "e",
        )
        .await
        .unwrap();
    let change = repo::history(&pool, &id, 1).await.unwrap()[0].id;
    graph
        .apply(&pool, Edit::Revert { audit_id: change }, "e")
        .await
        .unwrap();
    assert_eq!(graph.editable(&pool, &id).await.unwrap().unwrap().0, state);

    let (_, v) = graph.editable(&pool, &id).await.unwrap().unwrap();
    graph
        .apply(
            &pool,
            Edit::Delete {
                id: id.clone(),
                expected_version: v,
            },
            "e",
        )
        .await
        .unwrap();
    assert!(graph.current().node(&id).is_none());
    assert!(graph.editable(&pool, &id).await.unwrap().is_none());
    let deletion = repo::history(&pool, &id, 1).await.unwrap()[0].id;
    graph
        .apply(&pool, Edit::Revert { audit_id: deletion }, "e")
        .await
        .unwrap();
    assert_eq!(graph.editable(&pool, &id).await.unwrap().unwrap().0, state);
    assert!(graph.current().node(&id).is_some());
    let actions: Vec<String> = repo::history(&pool, &id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.action)
        .collect();
    assert_eq!(actions, ["revert", "delete", "revert", "update"]);
}

#[sqlx::test]
async fn a_second_instance_follows_edits_through_notifications(pool: PgPool) {
    let first = demo(&pool).await;
    let second = GraphService::new();
    second.refresh(&pool).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = second.spawn_listener(pool.clone(), stop_rx);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut state, version) = a_concept(&first, &pool).await;
    let id = state.node.id.clone();
    state.node.synonyms_zh.push("宿舍必备".into());
    let applied = first
        .apply(
            &pool,
            Edit::Update {
                expected_version: version,
                state,
            },
            "e",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while second.current().version() != applied.graph_version {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the second instance never saw the edit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resolves_to(&second, "宿舍必备的东西", &id));
    stop_tx.send(true).unwrap();
    listener.await.unwrap();
}
