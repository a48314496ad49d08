//! The knowledge graph over a real Postgres: built from the Flipkart sample and the curated layer,
//! phrase resolution in EN and ZH, concept expansion, facts and explanations, validation that
//! leaves the graph unchanged, and the export/import round trip.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;

use aisle::catalog::import::{Format, import_file};
use aisle::graph::{Curated, EdgeKind, EdgeRecord, GraphService, NodeKind, curated, repo};
use sqlx::PgPool;

fn knowledge() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("knowledge/graph")
}

async fn flipkart_graph(pool: &PgPool) -> GraphService {
    let path = common::shared_data("flipkart_sample/products.csv");
    import_file(pool, Format::Flipkart, &path, &common::options(), |_| {})
        .await
        .unwrap();
    let graph = GraphService::new();
    assert!(graph.seed_if_empty(pool, &knowledge()).await.unwrap());
    graph.refresh(pool).await.unwrap();
    graph
}

#[sqlx::test]
async fn the_flipkart_sample_graph_has_every_product_category_brand_and_facet(pool: PgPool) {
    let g = flipkart_graph(&pool).await.current();
    let stats = g.stats();
    let nodes = |k: &str| stats.nodes.get(k).copied().unwrap_or(0);
    let edges = |k: &str| stats.edges.get(k).copied().unwrap_or(0);
    assert_eq!(nodes("product"), 1002);
    let (categorised, categories, brands): (i64, i64, i64) = sqlx::query_as(
        "select count(category), (select count(*) from categories), count(distinct lower(brand)) from products",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(edges("in_category") as i64, categorised);
    assert!(
        nodes("category") as i64 >= categories,
        "every catalog category is a node"
    );
    assert!(nodes("brand") as i64 >= brands);
    assert!(
        nodes("attribute") > 50 && edges("has_attribute") > 1000,
        "{stats:?}"
    );
    assert!(nodes("concept") >= 20 && nodes("policy") >= 8, "{stats:?}");
    assert!(
        edges("suits") > 0
            && edges("applies_to") > 0
            && edges("complements") > 0
            && edges("substitutes") > 0
    );
}

#[sqlx::test]
async fn every_curated_synonym_of_a_stocked_category_resolves_to_it(pool: PgPool) {
    let g = flipkart_graph(&pool).await.current();
    let curated = curated::read_dir(&knowledge()).unwrap();
    let mut checked = (0, 0);
    for n in curated.nodes.iter().filter(|n| n.kind == "category") {
        let Some(node) = g.node(&n.id) else { continue };
        if node.products == 0 {
            continue;
        }
        for (lang, s) in n
            .synonyms_en
            .iter()
            .map(|s| ("en", s))
            .chain(n.synonyms_zh.iter().map(|s| ("zh", s)))
        {
            let matches = g.resolve(s);
            let hit = matches.iter().any(|m| m.nodes.iter().any(|x| x.id == n.id));
            assert!(
                hit,
                "{lang} synonym {s:?} of {} resolved to {matches:?}",
                n.id
            );
            if lang == "en" {
                checked.0 += 1
            } else {
                checked.1 += 1
            }
        }
    }
    assert!(checked.0 > 200 && checked.1 > 200, "checked {checked:?}");
}

#[sqlx::test]
async fn chinese_and_colloquial_phrases_reach_the_english_catalog(pool: PgPool) {
    let g = flipkart_graph(&pool).await.current();
    let first = |q: &str, kind: NodeKind| -> Vec<String> {
        g.resolve(q)
            .iter()
            .flat_map(|m| m.nodes.iter())
            .filter(|n| n.kind == kind)
            .map(|n| n.id.clone())
            .collect()
    };
    // Socks for men: a category and a gender facet, both in Chinese.
    let cats = first("男士袜子", NodeKind::Category);
    assert!(cats.iter().any(|c| c.contains("socks")), "{cats:?}");
    let attrs = first("男士袜子", NodeKind::Attribute);
    assert!(attrs.contains(&"attr:gender=men".to_owned()), "{attrs:?}");
    // Watches, in either language and number.
    assert!(
        first("手表", NodeKind::Category)
            .iter()
            .any(|c| c.contains("watches"))
    );
    assert!(
        first("Wrist Watch", NodeKind::Category)
            .iter()
            .any(|c| c.contains("watches"))
    );
    // Rupees in any spelling name the currency.
    for q in ["under 800 rupees", "800卢比以内", "below ₹500"] {
        assert!(
            first(q, NodeKind::Attribute).contains(&"attr:currency=inr".to_owned()),
            "{q}"
        );
    }
    // The wife is a woman.
    assert!(
        first("flats for my wife", NodeKind::Attribute).contains(&"attr:gender=women".to_owned())
    );
}

#[sqlx::test]
async fn concepts_expand_to_stocked_categories_and_explain_their_products(pool: PgPool) {
    let g = flipkart_graph(&pool).await.current();
    let curated = curated::read_dir(&knowledge()).unwrap();
    let mut reached = 0;
    for c in curated.nodes.iter().filter(|n| n.kind == "concept") {
        let expansions = g.expand(&c.id);
        // Every stocked category the concept suits is in its expansion.
        for e in curated
            .edges
            .iter()
            .filter(|e| e.from_id == c.id && e.kind == "suits")
        {
            if g.node(&e.to_id).is_some_and(|n| n.products > 0) {
                assert!(
                    expansions.iter().any(|x| x.node.id == e.to_id),
                    "{} should expand to {}",
                    c.id,
                    e.to_id
                );
            }
        }
        let products = g.products_reached(&expansions, 5);
        if let Some((product, _)) = products.first() {
            reached += 1;
            let path = g
                .explain(&c.id, product)
                .unwrap_or_else(|| panic!("no path from {} to {product}", c.id));
            assert_eq!(path.first().unwrap().node.id, c.id);
            assert_eq!(path.last().unwrap().node.id, format!("product:{product}"));
            assert!(path.windows(2).all(|w| w[1].via.is_some()));
        }
    }
    assert!(
        reached >= 10,
        "only {reached} concepts reach Flipkart products"
    );
}

#[sqlx::test]
async fn product_facts_carry_the_category_path_and_the_policies_that_apply(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let g = state.graph.current();
    let (id, category): (String, String) =
        sqlx::query_as("select id, category from products where category like 'Footwear%' limit 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    let facts = g.facts(&id).unwrap();
    let path: Vec<String> = facts
        .category_path
        .iter()
        .map(|c| c.id.trim_start_matches("category:").to_owned())
        .collect();
    assert_eq!(path.last().unwrap(), &category);
    assert_eq!(path.first().unwrap(), "Footwear");
    assert!(facts.brand.is_some());
    let store_wide = g.store_policies();
    assert!(!store_wide.is_empty());
    assert!(
        store_wide
            .iter()
            .all(|p| facts.policies.iter().any(|f| f.id == p.id)),
        "store-wide policies apply"
    );
    assert!(
        facts.policies.iter().any(|p| p.kind == "returns"),
        "{:?}",
        facts.policies.iter().map(|p| &p.id).collect::<Vec<_>>()
    );
    assert!(facts.policies.iter().all(|p| !p.text_en.is_empty()));
    assert!(g.facts("no-such-product").is_none());
    // Complements of a product are other stocked categories.
    let with_complements = sqlx::query_scalar::<_, String>("select id from products")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .find(|id| !g.related(id, EdgeKind::Complements).is_empty());
    assert!(
        with_complements.is_some(),
        "some demo product has complements"
    );
}

#[sqlx::test]
async fn invalid_curated_data_is_rejected_and_changes_nothing(pool: PgPool) {
    let graph = flipkart_graph(&pool).await;
    let before = repo::load(&pool).await.unwrap();
    let stats_before = graph.current().stats();
    let good = curated::read_dir(&knowledge()).unwrap();

    let mut dangling = good.clone();
    dangling.edges.push(EdgeRecord {
        from_id: dangling
            .nodes
            .iter()
            .find(|n| n.kind == "concept")
            .unwrap()
            .id
            .clone(),
        to_id: "category:no > such > path".into(),
        kind: "suits".into(),
        weight: 0.5,
    });
    let err = graph
        .import(&pool, dangling, "test")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dangling") && err.contains("no > such > path"),
        "{err}"
    );

    let mut duplicate = good.clone();
    let synonym = duplicate
        .nodes
        .iter()
        .find(|n| n.kind == "concept" && !n.synonyms_en.is_empty())
        .unwrap()
        .synonyms_en[0]
        .clone();
    let other = duplicate
        .nodes
        .iter_mut()
        .filter(|n| n.kind == "concept")
        .nth(1)
        .unwrap();
    other.synonyms_en.push(synonym.clone());
    let err = graph
        .import(&pool, duplicate, "test")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("synonym {synonym:?} is on both")),
        "{err}"
    );

    let mut empty = good.clone();
    empty.nodes[0].label_en = "  ".into();
    assert!(
        graph
            .import(&pool, empty, "test")
            .await
            .unwrap_err()
            .to_string()
            .contains("empty English label")
    );

    let mut cycle = good.clone();
    let a = "category:footwear".to_owned();
    let b = "category:footwear > womens footwear".to_owned();
    cycle.edges.push(EdgeRecord {
        from_id: a,
        to_id: b,
        kind: "subcategory_of".into(),
        weight: 1.0,
    });
    assert!(
        graph
            .import(&pool, cycle, "test")
            .await
            .unwrap_err()
            .to_string()
            .contains("cycle")
    );

    assert_eq!(
        repo::load(&pool).await.unwrap(),
        before,
        "the stored layer is unchanged"
    );
    graph.refresh(&pool).await.unwrap();
    let after = graph.current().stats();
    assert_eq!(
        (after.version, after.nodes, after.edges),
        (stats_before.version, stats_before.nodes, stats_before.edges)
    );
}

#[sqlx::test]
async fn export_then_import_reproduces_the_same_graph(pool: PgPool) {
    let graph = flipkart_graph(&pool).await;
    let (original, _) = repo::load(&pool).await.unwrap();
    let stats = graph.current().stats();
    let out = tempfile::tempdir().unwrap();
    for (name, text) in curated::render(&original).unwrap() {
        std::fs::write(out.path().join(name), text).unwrap();
    }
    sqlx::query("delete from kg_edges")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("delete from kg_nodes")
        .execute(&pool)
        .await
        .unwrap();
    let reread = curated::read_dir(out.path()).unwrap();
    graph.import(&pool, reread, "test").await.unwrap();
    let (reloaded, _) = repo::load(&pool).await.unwrap();
    assert_eq!(sorted(reloaded), sorted(original));
    let again = graph.current().stats();
    assert_eq!((again.nodes, again.edges), (stats.nodes, stats.edges));
}

fn sorted(mut c: Curated) -> Curated {
    c.nodes.sort_by(|a, b| a.id.cmp(&b.id));
    c.edges
        .sort_by(|a, b| (&a.from_id, &a.kind, &a.to_id).cmp(&(&b.from_id, &b.kind, &b.to_id)));
    c
}

#[sqlx::test]
async fn a_second_instance_sees_an_import_made_by_the_first(pool: PgPool) {
    let first = flipkart_graph(&pool).await;
    let second = GraphService::new();
    second.refresh(&pool).await.unwrap();
    assert_eq!(second.current().version(), first.current().version());
    let mut changed = curated::read_dir(&knowledge()).unwrap();
    let concept = changed
        .nodes
        .iter_mut()
        .find(|n| n.kind == "concept")
        .unwrap();
    concept.synonyms_en.push("zebra crossing gift".into());
    let id = concept.id.clone();
    let version = first.import(&pool, changed, "test").await.unwrap();
    assert!(
        second.refresh(&pool).await.unwrap(),
        "the version change triggers a rebuild"
    );
    assert_eq!(second.current().version(), version);
    let m = second.current().resolve("a zebra crossing gift please");
    assert!(
        m.iter().any(|m| m.nodes.iter().any(|n| n.id == id)),
        "{m:?}"
    );
}
