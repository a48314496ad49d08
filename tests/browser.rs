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

/// Finds `css` and runs `act` on it, again when a live page re-rendered the element in between
/// (a stale reference).
async fn on_element<F, Fut>(c: &fantoccini::Client, css: &str, act: F)
where
    F: Fn(fantoccini::elements::Element) -> Fut,
    Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
{
    let started = Instant::now();
    loop {
        let e = c.find(Locator::Css(css)).await.unwrap();
        match act(e).await {
            Ok(()) => return,
            Err(err) if started.elapsed() < Duration::from_secs(10) => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("{css}: {err}"),
        }
    }
}

async fn type_into(c: &fantoccini::Client, css: &str, text: &str) {
    on_element(c, css, |e| async move { e.send_keys(text).await }).await;
}

async fn click(c: &fantoccini::Client, css: &str) {
    on_element(c, css, |e| async move { e.click().await.map(|_| ()) }).await;
}

/// Serves the app on a free port as `aisle serve` does (client addresses, the relay that carries
/// changes to open event streams); the base URL.
async fn serve(state: aisle::state::AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(aisle::web::serve_live(
        listener,
        state,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    base
}

/// Opens the storefront and waits for the widget's launcher.
async fn open_store(c: &fantoccini::Client, base: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("[data-testid=aisle-launcher]"))
        .await
        .unwrap();
}

/// Fills in and submits the staff login form.
async fn log_in(c: &fantoccini::Client, username: &str) {
    type_into(c, "input[name=username]", username).await;
    type_into(c, "input[name=password]", PASSWORD).await;
    click(c, "#login").await;
}

/// Fails when the hostile `<img src=x onerror=…>` text was rendered as markup (inside `scope`).
async fn assert_rendered_as_text(c: &fantoccini::Client, scope: &str) {
    let injected = c
        .execute(
            &format!("return document.querySelectorAll('{scope} img[src=\"x\"]').length + (document.title === 'pwned' ? 100 : 0);"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!(0), "text was rendered as HTML");
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
    log_in(&c, "edna").await;
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

/// Waits until `script` (a JavaScript expression) is truthy; returns its last value.
async fn wait_js(c: &fantoccini::Client, script: &str, secs: u64) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let v = c
            .execute(&format!("return ({script});"), vec![])
            .await
            .unwrap();
        if v.as_bool() != Some(false) && !v.is_null() && v != json!(0) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "never true: {script}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test]
async fn a_shopper_chats_in_the_widget_clicks_a_card_and_finds_the_chat_after_reload(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let base = serve(state).await;

    let driver = start_driver();
    let c = browser(&driver).await;
    // The storefront embeds the widget with one script tag; open it from the launcher.
    open_store(&c, &base).await;
    click(&c, "[data-testid=aisle-launcher]").await;
    type_into(
        &c,
        "[data-testid=aisle-input]",
        "red ballet flats for my wife",
    )
    .await;
    click(&c, "[data-testid=aisle-send]").await;
    // Cards, then the finished reply.
    wait_js(
        &c,
        "document.querySelectorAll('[data-testid=aisle-card]').length",
        30,
    )
    .await;
    wait_js(
        &c,
        "document.querySelector('[data-testid=aisle-msg][data-role=assistant][data-done=true]')",
        60,
    )
    .await;
    let reply = wait_js(
        &c,
        "document.querySelector('[data-testid=aisle-msg][data-role=assistant][data-done=true] .aisle-text').textContent",
        5,
    )
    .await;
    assert!(reply.as_str().unwrap().contains("option"), "{reply}");
    screenshot(&c, "widget-cards").await;
    let session: String =
        sqlx::query_scalar("select id::text from conversations order by created_at desc limit 1")
            .fetch_one(&pool)
            .await
            .unwrap();

    // Shopper text is text, never markup.
    let hostile = "<img src=x onerror=\"document.title='pwned'\"> hi";
    type_into(&c, "[data-testid=aisle-input]", hostile).await;
    click(&c, "[data-testid=aisle-send]").await;
    let shown = wait_js(
        &c,
        "Array.from(document.querySelectorAll('[data-testid=aisle-msg][data-role=user]')).map(e => e.textContent).find(t => t.includes('onerror'))",
        15,
    )
    .await;
    assert!(shown.as_str().unwrap().contains("<img src=x"), "{shown}");
    assert_rendered_as_text(&c, "#aisle-widget").await;
    wait_js(
        &c,
        "document.querySelectorAll('[data-testid=aisle-msg][data-role=assistant][data-done=true]').length >= 2",
        60,
    )
    .await;

    // Clicking a card logs the click with its position, then follows the link.
    let product = wait_js(
        &c,
        "document.querySelector('[data-testid=aisle-card]').getAttribute('data-product-id')",
        5,
    )
    .await;
    click(&c, "[data-testid=aisle-card] a").await;
    let started = Instant::now();
    loop {
        let logged: i64 = sqlx::query_scalar(
            "select count(*) from feedback_events where conversation_id = $1::uuid and kind = 'click' and product_id = $2 and position = 1",
        )
        .bind(&session)
        .bind(product.as_str().unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
        if logged == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the card click was not logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back on the storefront, the conversation is restored from the server.
    open_store(&c, &base).await;
    let _ = c
        .execute(
            "window.aisleWidget && window.aisleWidget.open(); return 1;",
            vec![],
        )
        .await;
    let restored = wait_js(
        &c,
        "Array.from(document.querySelectorAll('[data-testid=aisle-msg][data-role=user]')).map(e => e.textContent).join('|')",
        15,
    )
    .await;
    assert!(
        restored
            .as_str()
            .unwrap()
            .contains("red ballet flats for my wife"),
        "{restored}"
    );
    wait_js(
        &c,
        "document.querySelectorAll('[data-testid=aisle-card]').length",
        15,
    )
    .await;
    screenshot(&c, "widget-restored").await;
    c.close().await.unwrap();
}

#[sqlx::test]
async fn an_agent_claims_a_chat_in_the_dashboard_and_the_shoppers_widget_shows_the_reply(
    pool: PgPool,
) {
    let state = common::demo_state(pool.clone()).await;
    state
        .auth
        .create_user("asha", "Asha", Role::Agent, PASSWORD)
        .await
        .unwrap();
    let base = serve(state).await;
    let driver = start_driver();

    // The shopper asks for a person in the widget on the storefront.
    let shopper = browser(&driver).await;
    open_store(&shopper, &base).await;
    click(&shopper, "[data-testid=aisle-launcher]").await;
    let hostile = "<img src=x onerror=\"document.title='pwned'\"> I want to talk to a person";
    type_into(&shopper, "[data-testid=aisle-input]", hostile).await;
    click(&shopper, "[data-testid=aisle-send]").await;
    wait_js(
        &shopper,
        "(document.querySelector('[data-testid=aisle-status]') || {}).textContent?.includes('Waiting')",
        60,
    )
    .await;

    // The agent logs in, sees the chat in the queue, claims it and replies.
    let agent = browser(&driver).await;
    agent.goto(&format!("{base}/agent")).await.unwrap();
    assert!(
        agent
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/kg/login")
    );
    log_in(&agent, "asha").await;
    agent
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("[data-testid=agent-claim]"))
        .await
        .unwrap();
    click(&agent, "[data-testid=agent-claim]").await;
    let said = wait_js(
        &agent,
        "Array.from(document.querySelectorAll('[data-testid=agent-msg][data-role=user]')).map(e => e.textContent).join('|') || false",
        15,
    )
    .await;
    assert!(said.as_str().unwrap().contains("<img src=x"), "{said}");
    assert_rendered_as_text(&agent, "").await;
    type_into(
        &agent,
        "[data-testid=agent-reply-input]",
        "Hello, this is Asha. How can I help?",
    )
    .await;
    click(&agent, "[data-testid=agent-send]").await;
    screenshot(&agent, "agent-dashboard").await;

    // The shopper's widget, on its own page, shows who has the chat and the reply.
    let reply = wait_js(
        &shopper,
        "Array.from(document.querySelectorAll('[data-testid=aisle-msg][data-role=agent]')).map(e => e.textContent).join('|') || false",
        30,
    )
    .await;
    assert!(reply.as_str().unwrap().contains("this is Asha"), "{reply}");
    let status = wait_js(
        &shopper,
        "document.querySelector('[data-testid=aisle-status]').textContent.includes('Asha') && document.querySelector('[data-testid=aisle-status]').textContent",
        15,
    )
    .await;
    assert!(
        status.as_str().unwrap().contains("chatting with Asha"),
        "{status}"
    );
    screenshot(&shopper, "widget-agent-reply").await;
    agent.close().await.unwrap();
    shopper.close().await.unwrap();
}
