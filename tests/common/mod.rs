//! Helpers shared by the integration tests: paths to shared data, an app over a test database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use aisle::catalog::demo;
use aisle::catalog::import::ImportOptions;
use aisle::config::Settings;
use aisle::graph::GraphService;
use aisle::ranking::SearchService;
use aisle::state::AppState;
use aisle::telemetry::Metrics;
use sqlx::PgPool;

/// A file under the shared data directory beside the repository (`../shared/data`).
pub fn shared_data(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel);
    assert!(
        p.exists(),
        "{} is missing: the tests read the shared data sets",
        p.display()
    );
    p
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub fn options() -> ImportOptions {
    ImportOptions {
        batch_rows: 100,
        progress: false,
    }
}

pub fn settings() -> Settings {
    Settings::load(None).expect("default settings load")
}

/// Loads the demo store into `pool` and returns an app state with a built search index.
pub async fn demo_state(pool: PgPool) -> AppState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("knowledge/demo");
    demo::seed(&pool, &dir, &options())
        .await
        .expect("demo store loads");
    state(pool).await
}

/// The embedding model, loaded once per test binary. Tests need `scripts/models.sh` to have run.
pub fn embedder() -> Arc<aisle::embed::Embedder> {
    static EMBEDDER: std::sync::OnceLock<Arc<aisle::embed::Embedder>> = std::sync::OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-minilm-l6-v2");
            Arc::new(
                aisle::embed::Embedder::load(&dir)
                    .expect("the embedding model (run scripts/models.sh)"),
            )
        })
        .clone()
}

/// A search service as configured, with the shared embedder and the ranker from `model_dir`.
pub fn search_service(model_dir: &std::path::Path) -> SearchService {
    let s = settings();
    let ranking = aisle::ranking::RankingSettings {
        model_dir: model_dir.to_owned(),
        ..s.ranking
    };
    SearchService::new(s.search.graph_weight, &ranking, Some(embedder())).unwrap()
}

/// An app state over whatever `pool` holds.
pub async fn state(pool: PgPool) -> AppState {
    // No trained file: the model built into the binary, whatever this machine has trained.
    let search = search_service(std::path::Path::new("/nonexistent/aisle-ranker"));
    search.refresh(&pool).await.unwrap();
    let graph = GraphService::new();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("knowledge/graph");
    graph.seed_if_empty(&pool, &dir).await.unwrap();
    graph.refresh(&pool).await.unwrap();
    state_with(pool, search, graph, None, settings())
}

/// An app state over `pool` whose chat uses `llm` (none: templated replies, fast-path intents).
pub fn state_with(
    pool: PgPool,
    search: SearchService,
    graph: GraphService,
    llm: Option<aisle::llm::LlmHandle>,
    settings: Settings,
) -> AppState {
    let parser = aisle::intent::IntentParser::from_settings(
        &aisle::intent::IntentSettings {
            llm: aisle::intent::LlmMode::Never,
            ..settings.intent.clone()
        },
        Some(embedder()),
        None,
    )
    .unwrap();
    let chat = aisle::chat::ChatService::new(
        pool.clone(),
        search.clone(),
        graph.clone(),
        parser,
        llm.clone(),
        settings.chat.clone(),
    )
    .with_escalation(settings.support.escalation.clone());
    AppState {
        support: aisle::support::SupportService::new(pool.clone(), settings.support.clone(), llm),
        relay: aisle::support::Relay::new(),
        pool: pool.clone(),
        chat_limits: aisle::web::ChatLimits::new(&settings.chat),
        settings: Arc::new(settings),
        search,
        graph,
        metrics: Metrics::new(),
        auth: aisle::auth::AuthService::new(pool.clone(), std::time::Duration::from_secs(3600)),
        chat,
    }
}

/// A new chat session row (for feedback and affinity).
pub async fn new_session(pool: &PgPool) -> uuid::Uuid {
    let session = uuid::Uuid::new_v4();
    sqlx::query("insert into conversations (id) values ($1)")
        .bind(session)
        .execute(pool)
        .await
        .unwrap();
    session
}

/// POSTs `body` as JSON to `uri` on the router; the response status.
pub async fn post_json(
    router: &axum::Router,
    uri: &str,
    body: &serde_json::Value,
) -> axum::http::StatusCode {
    let request = axum::http::Request::post(uri)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    tower::ServiceExt::oneshot(router.clone(), request)
        .await
        .unwrap()
        .status()
}

/// The default chat model (`scripts/models.sh` fetches it).
pub fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// One runtime per test binary for the real model's engine, which outlives any single test.
pub static MODEL_RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> =
    std::sync::LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    });

/// Loads the real model on [`MODEL_RUNTIME`], from a thread of its own (a test's runtime cannot
/// block on another runtime).
pub fn load_model(settings: aisle::llm::LlmSettings) -> Arc<aisle::llm::LocalBackend> {
    let backend = std::thread::spawn(move || {
        MODEL_RUNTIME.block_on(aisle::llm::LocalBackend::load(&settings))
    })
    .join()
    .unwrap()
    .expect("the default GGUF loads (run scripts/models.sh)");
    Arc::new(backend)
}

/// `len` values spread evenly over ±`spread`, from a small fixed generator: numeric tests must
/// not depend on a random draw passing.
pub fn values(len: usize, seed: u64, spread: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0 * spread
        })
        .collect()
}
