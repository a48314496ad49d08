//! `aisle bench handoff`: how long an agent's message takes to reach the shopper's widget, with
//! the shopper and the agent on two server instances (their own connection pools, LISTEN
//! connections and HTTP servers, one database), against the same measured with both on one
//! instance, in one run.
//!
//! Each message is timed from the start of the agent's `POST …/messages` to its arrival on the
//! shopper's `GET …/events` stream, so it includes the write, the commit, NOTIFY, the relay, the
//! catch-up read and the SSE frame.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::db::Database;
use crate::state::AppState;

#[derive(Args)]
pub struct HandoffBenchArgs {
    /// Messages timed per setup.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Print only the JSON line.
    #[arg(long)]
    json: bool,
}

struct Running {
    base: String,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

async fn start(state: AppState) -> anyhow::Result<Running> {
    let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
    let mut ready = state.relay.subscribe();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.changed().await;
        };
        let _ = crate::web::serve_live(listener, state, shutdown, Duration::from_secs(2)).await;
    });
    // Listening once the relay's first resync arrives.
    tokio::time::timeout(Duration::from_secs(10), ready.next())
        .await
        .context("the relay did not start listening")?;
    Ok(Running { base, stop, server })
}

/// An agent's HTTP session: (client, cookie, csrf).
async fn login(
    base: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<(reqwest::Client, String, String)> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let form = format!("username={user}&password={password}&next=%2Fagent");
    let res = http
        .post(format!("{base}/kg/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?;
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("login failed")?
        .to_owned();
    let page = http
        .get(format!("{base}/agent"))
        .header("cookie", &cookie)
        .send()
        .await?
        .text()
        .await?;
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .context("no CSRF token on the dashboard")?
        .to_owned();
    Ok((http, cookie, csrf))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Times `n` agent messages posted on `agent_base` to a shopper streaming from `shop_base`.
async fn measure(
    shop_base: &str,
    agent_base: &str,
    state: &AppState,
    password: &str,
    n: usize,
) -> anyhow::Result<Vec<f64>> {
    // A conversation in the queue, claimed by the agent.
    let session = state.chat.start(None, None).await?;
    crate::chat::repo::escalate(&state.pool, session, "bench", &json!({"rule": "asked"})).await?;
    let (http, cookie, csrf) = login(agent_base, "bench-agent", password).await?;
    let post = |path: String, body: Value| {
        http.post(format!("{agent_base}{path}"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let r = post(
        format!("/agent/api/conversations/{session}/claim"),
        json!({}),
    )
    .await?;
    if !r.status().is_success() {
        bail!("claim failed: {}", r.text().await?);
    }
    let res = reqwest::get(format!(
        "{shop_base}/api/chat/sessions/{session}/events?after=0"
    ))
    .await?;
    let mut events = eventsource_stream::EventStream::new(res.bytes_stream());
    // Caught up once the "joined" notice is through.
    loop {
        let e = events.next().await.context("the stream ended")??;
        if e.event == "message" && e.data.contains("\"role\":\"system\"") {
            break;
        }
    }
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let text = format!("bench message {i}");
        let started = Instant::now();
        let r = post(
            format!("/agent/api/conversations/{session}/messages"),
            json!({"text": text}),
        )
        .await?;
        if !r.status().is_success() {
            bail!("reply failed: {}", r.text().await?);
        }
        loop {
            let e = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .context("a message did not arrive within 30 s")?
                .context("the stream ended")??;
            if e.event == "message" && e.data.contains(&format!("\"text\":\"{text}\"")) {
                break;
            }
        }
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

pub async fn bench(settings: Settings, args: HandoffBenchArgs) -> anyhow::Result<()> {
    let mut settings = settings;
    // Neither side needs the language model here.
    settings.chat.llm_replies = false;
    settings.support.llm_summary = false;
    settings.intent.llm = crate::intent::LlmMode::Never;
    settings.catalog.seed_demo = false;
    let db = Database::open_temporary(&settings)
        .await
        .context("creating a temporary database")?;
    let result = async {
        let shop = super::serve::app_state(&settings, db.pool.clone()).await?;
        // The second instance: its own pool (and so its own LISTEN connection) on the same database.
        let pool_b = sqlx::postgres::PgPoolOptions::new()
            .max_connections(settings.database.max_connections)
            .connect_with((*db.pool.connect_options()).clone())
            .await?;
        let desk = AppState {
            pool: pool_b.clone(),
            support: crate::support::SupportService::new(
                pool_b.clone(),
                settings.support.clone(),
                None,
            ),
            relay: crate::support::Relay::new(),
            auth: crate::auth::AuthService::new(
                pool_b.clone(),
                Duration::from_secs(settings.auth.session_ttl_secs),
            ),
            ..shop.clone()
        };
        let password = crate::auth::random_password();
        shop.auth
            .create_user("bench-agent", "Bench", crate::auth::Role::Agent, &password)
            .await?;
        let a = start(shop.clone()).await?;
        let b = start(desk).await?;
        eprintln!(
            "timing {} messages on one instance, then across two…",
            args.messages
        );
        let same = measure(&a.base, &a.base, &shop, &password, args.messages).await?;
        let cross = measure(&a.base, &b.base, &shop, &password, args.messages).await?;
        for r in [a, b] {
            let _ = r.stop.send(true);
            let _ = r.server.await;
        }
        pool_b.close().await;
        Ok::<_, anyhow::Error>((same, cross))
    }
    .await;
    db.close()
        .await
        .context("dropping the temporary database")?;
    let (same, cross) = result?;
    let row = |v: &[f64]| json!({"p50_ms": percentile(v, 0.5), "p95_ms": percentile(v, 0.95), "max_ms": v.last()});
    let out = json!({
        "bench": "handoff", "messages": args.messages,
        "same_instance": row(&same), "across_instances": row(&cross),
    });
    if !args.json {
        println!(
            "agent → shopper delivery ({} messages each, ms)",
            args.messages
        );
        println!("{:<18} {:>8} {:>8} {:>8}", "setup", "p50", "p95", "max");
        for (name, v) in [("one instance", &same), ("two instances", &cross)] {
            println!(
                "{name:<18} {:>8.1} {:>8.1} {:>8.1}",
                percentile(v, 0.5),
                percentile(v, 0.95),
                v.last().copied().unwrap_or(f64::NAN)
            );
        }
    }
    println!("{out}");
    Ok(())
}
