//! The graph editor in a real headless Chromium (through chromedriver): log in, run a preview,
//! add a synonym, and see the preview change. Screenshots go to $CARGO_TARGET_TMPDIR.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aisle::auth::Role;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;
use sqlx::PgPool;

const PASSWORD: &str = "correct horse battery";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> Driver {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed (scripts/test.sh installs chromium-driver)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn browser(driver: &Driver) -> fantoccini::Client {
    // Two crypto providers are linked into this binary, so rustls cannot pick one by itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", format!("--user-data-dir={}", tempfile::tempdir().unwrap().keep().display())],
        }),
    );
    ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

async fn screenshot(c: &fantoccini::Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn type_into(c: &fantoccini::Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn click(c: &fantoccini::Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Runs the editor's preview for `phrase` (replacing what the box held).
async fn preview(c: &fantoccini::Client, phrase: &str) {
    c.find(Locator::Id("preview-q"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    type_into(c, "#preview-q", phrase).await;
    click(c, "#preview-form button").await;
}

/// Waits until the element exists and its text satisfies `ok`, returning the text (a page that
/// is still loading after a form post has no such element yet).
async fn wait_text(c: &fantoccini::Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    loop {
        let text = match c.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if ok(&text) {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{css} never matched; last text: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test]
async fn an_editor_logs_in_adds_a_synonym_and_sees_the_preview_change(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    state
        .auth
        .create_user("edna", "Edna", Role::Editor, PASSWORD)
        .await
        .unwrap();
    let concept: String = sqlx::query_scalar(
        "select n.id from kg_nodes n where n.kind = 'concept' and exists (select 1 from kg_edges e where e.from_id = n.id) order by n.id limit 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let label: String = sqlx::query_scalar("select label_en from kg_nodes where id = $1")
        .bind(&concept)
        .fetch_one(&pool)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, aisle::web::app(state)).await.unwrap() });

    let driver = start_driver();
    let c = browser(&driver).await;
    let node_url = format!(
        "{base}/kg/node?id={}",
        concept
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>()
    );
    c.goto(&node_url).await.unwrap();
    // Not logged in: the login form, which returns to the node afterwards.
    assert!(c.current_url().await.unwrap().path().ends_with("/kg/login"));
    type_into(&c, "input[name=username]", "edna").await;
    type_into(&c, "input[name=password]", PASSWORD).await;
    click(&c, "#login").await;
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Id("save"))
        .await
        .unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .query()
            .unwrap_or_default()
            .contains("id=")
    );

    // Before the edit the phrase names nothing.
    let phrase = "hostel move-in kit";
    preview(&c, phrase).await;
    wait_text(&c, "#preview-now", |t| t.contains("no node matches")).await;

    // Add the synonym in the form and save.
    type_into(&c, "textarea[name=synonyms_en]", "\nhostel move-in kit").await;
    click(&c, "#save").await;
    wait_text(&c, "p.ok", |t| t.contains("Saved")).await;

    // The same preview now resolves to the concept; the earlier result is shown as "before".
    preview(&c, phrase).await;
    let now = wait_text(&c, "#preview-now", |t| t.contains(&label)).await;
    assert!(now.contains("products reached"), "{now}");
    let before = c
        .find(Locator::Css("#preview-before"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(before.contains("no node matches"), "{before}");
    screenshot(&c, "kg-editor-preview").await;
    c.close().await.unwrap();
}
