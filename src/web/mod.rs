//! HTTP: the only module that imports axum. Routes, extractors, the `AppError` mapping, middleware
//! (request ids, tracing spans, metrics, body limits, timeouts, panics → 500) and graceful shutdown.

mod agent;
mod chat;
mod editor;
mod error;
mod extract;
mod feedback;
mod health;
mod kg;
mod search;
mod staff;
mod storefront;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use chat::ChatLimits;
pub use error::{AppError, PageError};

use crate::state::AppState;
use crate::telemetry::HttpLabels;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: routes plus middleware.
pub fn app(state: AppState) -> Router {
    let max_body = state.settings.server.max_body_bytes;
    let timeout = state.settings.request_timeout();
    // What the widget calls, from the store's own pages on any origin. No cookies are involved
    // (the session id is the credential), so any origin may call them.
    let widget_api = Router::new()
        .route("/api/chat/sessions", post(chat::create_session))
        .route(
            "/api/chat/sessions/{id}/messages",
            post(chat::post_message).get(chat::history),
        )
        .route("/api/chat/sessions/{id}/events", get(chat::events))
        .route("/api/feedback", post(feedback::create))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE])
                .max_age(Duration::from_secs(3600)),
        );
    let routes = Router::new()
        .merge(widget_api)
        .route("/", get(storefront::index))
        .route("/products/{id}", get(storefront::product))
        .route("/static/aisle.css", get(storefront::stylesheet))
        .route("/static/kg.js", get(storefront::editor_script))
        .route("/static/widget.js", get(chat::widget_script))
        .route("/static/widget.css", get(chat::widget_stylesheet))
        .route("/agent", get(agent::page))
        .route("/static/agent.js", get(agent::script))
        .route("/static/agent.css", get(agent::stylesheet))
        .route("/agent/api/queue", get(agent::queue))
        .route("/agent/api/events", get(agent::events))
        .route("/agent/api/conversations/{id}", get(agent::conversation))
        .route("/agent/api/conversations/{id}/claim", post(agent::claim))
        .route("/agent/api/conversations/{id}/messages", post(agent::reply))
        .route("/agent/api/conversations/{id}/notes", post(agent::note))
        .route(
            "/agent/api/conversations/{id}/handback",
            post(agent::hand_back),
        )
        .route("/agent/api/conversations/{id}/close", post(agent::close))
        .route(
            "/agent/api/canned",
            get(agent::canned).post(agent::add_canned),
        )
        .route("/agent/api/canned/{id}/delete", post(agent::delete_canned))
        .route("/agent/api/products", get(agent::products))
        .route("/agent/api/audit", get(agent::audit))
        .route("/kg", get(editor::index))
        .route("/kg/login", get(editor::login_page).post(editor::login))
        .route("/kg/logout", post(editor::logout))
        .route("/kg/node", get(editor::node).post(editor::update))
        .route("/kg/node/delete", post(editor::delete))
        .route("/kg/revert", post(editor::revert))
        .route("/kg/create", post(editor::create))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/search", get(search::search))
        .route("/api/products/{id}", get(search::product))
        .route("/api/kg/resolve", get(kg::resolve))
        .route("/api/kg/nodes/{id}", get(kg::node))
        .route("/api/kg/facts/{id}", get(kg::facts))
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .with_state(state);
    routes.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
                let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), route, request_id = id)
            }))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(CatchPanicLayer::new())
            .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
            // Body-reading extractors refuse larger bodies with a JSON 413.
            .layer(DefaultBodyLimit::max(max_body)),
    )
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let labels = HttpLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state.metrics.http_requests.get_or_create(&labels).inc();
    state
        .metrics
        .http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Serves `state`'s app as one live instance: its relay listens for other instances' changes
/// (Postgres NOTIFY) while it serves, and closes when `shutdown` resolves, so open event streams
/// end and draining (at most `grace`) does not wait on them.
pub async fn serve_live(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let relay = state.relay.clone();
    let listening = relay.spawn_listener(state.pool.clone(), stop_rx);
    let result = serve(
        listener,
        app(state),
        async move {
            shutdown.await;
            relay.close();
        },
        grace,
    )
    .await;
    let _ = stop_tx.send(true);
    let _ = listening.await;
    result
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight requests for at most
/// `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = drain_tx.send(());
    });
    tokio::select! {
        result = server => result,
        _ = async {
            let _ = drain_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("graceful shutdown timed out; dropping remaining connections");
            Ok(())
        }
    }
}
