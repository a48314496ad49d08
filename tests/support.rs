//! Escalation to people and the agents' side, on a real Postgres over real HTTP: what escalates
//! (and why), the bot's silence after a takeover, hand-back with the context intact, who may see
//! what, and two server instances on one database relaying an agent's messages to a shopper in
//! order, none lost or doubled while the shopper's instance restarts.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use aisle::auth::Role;
use aisle::chat::{ChatService, TurnOutcome};
use aisle::state::AppState;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

async fn say(chat: &ChatService, session: Uuid, text: &str) -> TurnOutcome {
    let ticket = chat.begin(session).await.unwrap();
    let (tx, mut rx) = mpsc::channel(256);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let outcome = chat.turn(ticket, text, &tx).await.unwrap();
    drop(tx);
    drain.await.unwrap();
    outcome
}

/// One `aisle serve` instance: its own pool, relay listener and HTTP server on a free port.
struct Instance {
    base: String,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    state: AppState,
}

async fn instance(pool: &PgPool, like: &AppState) -> Instance {
    // Its own connections to the same database, as a second process would have.
    let own = PgPoolOptions::new()
        .max_connections(10)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let state = common::state_with(
        own.clone(),
        like.search.clone(),
        like.graph.clone(),
        None,
        common::settings(),
    );
    let (stop, mut stop_rx) = watch::channel(false);
    let mut sub = state.relay.subscribe();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let live = state.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop_rx.changed().await;
        };
        aisle::web::serve_live(listener, live, shutdown, Duration::from_secs(2))
            .await
            .unwrap();
    });
    // The relay is listening once its first resync arrives.
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("the relay listens");
    Instance {
        base,
        stop,
        server,
        state,
    }
}

impl Instance {
    async fn shut_down(self) {
        let _ = self.stop.send(true);
        self.server.await.unwrap();
    }
}

/// A logged-in staff member over HTTP.
struct Staff {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

async fn staff(base: &str, state: &AppState, username: &str, role: Role) -> Staff {
    if let Err(e) = state
        .auth
        .create_user(username, &format!("{username} (support)"), role, PASSWORD)
        .await
    {
        assert!(matches!(e, aisle::auth::AuthError::Exists(_)), "{e}");
    }
    login(base, username).await
}

async fn login(base: &str, username: &str) -> Staff {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http
        .post(format!("{base}/kg/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "username={username}&password={}&next=%2Fagent",
            PASSWORD.replace(' ', "+")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "login as {username}");
    assert_eq!(res.headers()["location"], "/agent");
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(format!("{base}/agent"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned();
    Staff {
        http,
        base: base.to_owned(),
        cookie,
        csrf,
    }
}

impl Staff {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

async fn rule_of(pool: &PgPool, id: Uuid) -> (String, Option<String>) {
    let (state, rule): (String, Option<Value>) =
        sqlx::query_as("select state, escalation_rule from conversations where id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    (
        state,
        rule.and_then(|r| r["rule"].as_str().map(str::to_owned)),
    )
}

#[sqlx::test]
async fn direct_indirect_and_repeated_failure_escalate_with_their_reason(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let chat = &state.chat;

    let direct = chat.start(None, None).await.unwrap();
    let o = say(chat, direct, "I want to talk to a human agent").await;
    assert!(o.reply.escalated, "{:?}", o.reply);
    assert_eq!(o.reply.state, "waiting_for_agent");
    assert!(o.reply.cards.is_empty());
    assert_eq!(
        rule_of(&pool, direct).await,
        ("waiting_for_agent".into(), Some("asked".into()))
    );

    let indirect = chat.start(None, None).await.unwrap();
    let o = say(
        chat,
        indirect,
        "this bot is useless, can I speak to someone",
    )
    .await;
    assert!(o.reply.escalated, "{:?}", o.reply);
    assert_eq!(rule_of(&pool, indirect).await.0, "waiting_for_agent");

    let frustrated = chat.start(None, None).await.unwrap();
    let o = say(chat, frustrated, "WHY IS THIS SO HARD TO FIND").await;
    assert!(o.reply.escalated, "{:?}", o.reply);
    assert_eq!(
        rule_of(&pool, frustrated).await.1.as_deref(),
        Some("frustration")
    );

    // Two searches that find nothing: the first gets a clarifying question, the second goes to a
    // person instead of failing again.
    let failing = chat.start(None, None).await.unwrap();
    let first = say(chat, failing, "purple titanium snowboard under 5 rupees").await;
    assert_eq!(first.reply.kind.as_str(), "clarify", "{:?}", first.reply);
    assert!(!first.reply.escalated);
    let second = say(chat, failing, "green velvet kayak under 3 rupees").await;
    assert!(second.reply.escalated, "{:?}", second.reply);
    assert_eq!(
        rule_of(&pool, failing).await.1.as_deref(),
        Some("repeated_failure")
    );

    // An ordinary search does not escalate.
    let fine = chat.start(None, None).await.unwrap();
    let o = say(chat, fine, "red flats under 800").await;
    assert!(
        !o.reply.escalated && !o.reply.cards.is_empty(),
        "{:?}",
        o.reply
    );
    assert_eq!(rule_of(&pool, fine).await, ("bot".into(), None));
}

#[sqlx::test]
async fn after_a_takeover_the_bot_is_silent_and_hand_back_resumes_with_the_context(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let server = instance(&pool, &state).await;
    let chat = &server.state.chat;
    let asha = staff(&server.base, &server.state, "asha", Role::Agent).await;

    let s = chat.start(None, None).await.unwrap();
    let first = say(chat, s, "red flats under 800").await;
    assert!(!first.reply.cards.is_empty());
    let o = say(chat, s, "can I talk to a real person please").await;
    assert!(o.reply.escalated);

    // The queue shows it with its reason and summary.
    let (status, q) = asha.get("/agent/api/queue").await;
    assert_eq!(status, StatusCode::OK, "{q}");
    let item = q["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == json!(s))
        .cloned()
        .unwrap();
    assert_eq!(item["reason"], "asked for a person");
    assert!(
        item["summary"].as_str().unwrap().contains("red flats"),
        "{item}"
    );
    assert!(
        item["facts"]["intents"]
            .as_array()
            .unwrap()
            .contains(&json!("product_search"))
    );

    let (status, body) = asha
        .post(&format!("/agent/api/conversations/{s}/claim"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["conversation"]["state"], "agent");

    // The bot adds nothing of its own while Asha has the chat.
    let quiet = say(chat, s, "hello? are the flats in stock?").await;
    assert!(quiet.message_id.is_none());
    assert!(quiet.reply.text.is_empty() && quiet.reply.cards.is_empty());
    assert_eq!(quiet.reply.state, "agent");
    let product: String = sqlx::query_scalar("select id from products order by id limit 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (status, body) = asha
        .post(
            &format!("/agent/api/conversations/{s}/messages"),
            json!({"text": "Hi, I'm Asha. Yes, these are in stock.", "product_ids": [product]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["agent_name"], "asha (support)");
    assert_eq!(body["message"]["cards"][0]["id"], json!(product));
    let (status, _) = asha
        .post(
            &format!("/agent/api/conversations/{s}/notes"),
            json!({"text": "internal: customer prefers flats"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // The shopper's history has the agent's message and never the note.
    let history: Value = reqwest::get(format!("{}/api/chat/sessions/{s}/messages", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["state"], "agent");
    assert_eq!(history["agent_name"], "asha (support)");
    let roles: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    let claimed_at = roles.iter().position(|r| *r == "system").unwrap();
    assert_eq!(&roles[claimed_at..], ["system", "user", "agent"]);
    assert!(!history.to_string().contains("internal: customer"));

    // Hand back: the bot answers again, with the conversation's budget and product type.
    let (status, body) = asha
        .post(&format!("/agent/api/conversations/{s}/handback"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let back = say(chat, s, "do you have them in black?").await;
    assert!(
        !back.reply.escalated && back.message_id.is_some(),
        "{:?}",
        back.reply
    );
    assert!(!back.reply.cards.is_empty(), "{:?}", back.reply);
    assert!(
        back.reply.cards.iter().all(|c| c.price <= 800.0),
        "{:?}",
        back.reply.cards
    );
    assert_eq!(back.reply.intent.slots.max_price, Some(800.0));

    let actions: Vec<String> =
        sqlx::query_scalar("select action from audit_log where conversation_id = $1 order by id")
            .bind(s)
            .fetch_all(&pool)
            .await
            .unwrap();
    for a in ["claim", "reply", "note", "hand_back"] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} missing from {actions:?}"
        );
    }
    server.shut_down().await;
}

#[sqlx::test]
async fn only_the_handling_agent_sees_a_conversation_and_csrf_and_roles_are_enforced(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let server = instance(&pool, &state).await;
    let base = &server.base;
    let chat = &server.state.chat;
    let s = chat.start(None, None).await.unwrap();
    say(chat, s, "where is my order? my email is meera@example.com").await;
    say(chat, s, "I want to speak to a human").await;
    assert_eq!(rule_of(&pool, s).await.0, "waiting_for_agent");

    // Nobody logged in, or only a shopper's session id: nothing.
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anon
        .get(format!("{base}/agent/api/queue"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = anon
        .get(format!("{base}/agent/api/conversations/{s}"))
        .header("cookie", format!("aisle_session={s}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = anon.get(format!("{base}/agent")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/kg/login")
    );

    // An editor is not an agent.
    let edna = staff(base, &server.state, "edna", Role::Editor).await;
    assert_eq!(edna.get("/agent/api/queue").await.0, StatusCode::FORBIDDEN);

    let asha = staff(base, &server.state, "asha", Role::Agent).await;
    let bo = staff(base, &server.state, "bo", Role::Agent).await;
    // Before a claim, the transcript is closed to everyone, and the queue masks customer data.
    assert_eq!(
        asha.get(&format!("/agent/api/conversations/{s}")).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, q) = bo.get("/agent/api/queue").await;
    let text = q.to_string();
    assert!(
        text.contains(&s.to_string()) && !text.contains("meera@example.com"),
        "{text}"
    );

    // A state change without the CSRF token is refused.
    let r = asha
        .http
        .post(format!("{base}/agent/api/conversations/{s}/claim"))
        .header("cookie", &asha.cookie)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Two agents claim at once: exactly one wins.
    let path = format!("/agent/api/conversations/{s}/claim");
    let (a, b) = tokio::join!(asha.post(&path, json!({})), bo.post(&path, json!({})));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let (winner, loser) = if a.0 == StatusCode::OK {
        (&asha, &bo)
    } else {
        (&bo, &asha)
    };
    let (status, view) = winner.get(&format!("/agent/api/conversations/{s}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(view.to_string().contains("meera@example.com"));
    assert_eq!(
        loser.get(&format!("/agent/api/conversations/{s}")).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = loser
        .post(
            &format!("/agent/api/conversations/{s}/messages"),
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Bad input: an empty reply, an unknown product, an unknown resolution, an unknown id.
    let msgs = format!("/agent/api/conversations/{s}/messages");
    assert_eq!(
        winner.post(&msgs, json!({"text": "  "})).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        winner
            .post(
                &msgs,
                json!({"text": "see", "product_ids": ["no-such-product"]})
            )
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        winner
            .post(
                &format!("/agent/api/conversations/{s}/close"),
                json!({"resolution": "whatever"})
            )
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        winner
            .get(&format!("/agent/api/conversations/{}", Uuid::new_v4()))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // Close: the shopper can no longer write to it.
    let (status, _) = winner
        .post(
            &format!("/agent/api/conversations/{s}/close"),
            json!({"resolution": "order_info_given"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = reqwest::Client::new()
        .post(format!("{base}/api/chat/sessions/{s}/messages"))
        .json(&json!({"text": "one more thing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    server.shut_down().await;
}

/// The shopper's push stream: (message id, role, text, when it arrived).
fn shopper_stream(
    base: String,
    session: Uuid,
    after: i64,
    out: mpsc::UnboundedSender<(i64, String, String, Instant)>,
) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let mut last = after;
        let res = reqwest::get(format!(
            "{base}/api/chat/sessions/{session}/events?after={after}"
        ))
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let mut events = eventsource_stream::EventStream::new(res.bytes_stream());
        while let Some(Ok(e)) = events.next().await {
            if e.event == "message" {
                let m: Value = serde_json::from_str(&e.data).unwrap();
                last = m["id"].as_i64().unwrap();
                let _ = out.send((
                    last,
                    m["role"].as_str().unwrap().to_owned(),
                    m["text"].as_str().unwrap().to_owned(),
                    Instant::now(),
                ));
            }
        }
        last
    })
}

#[sqlx::test]
async fn two_instances_relay_agent_messages_in_order_with_none_lost_across_a_restart(pool: PgPool) {
    let state = common::demo_state(pool.clone()).await;
    let shop = instance(&pool, &state).await;
    let desk = instance(&pool, &state).await;
    let s = shop.state.chat.start(None, None).await.unwrap();
    say(&shop.state.chat, s, "I need to talk to a person").await;
    let asha = staff(&desk.base, &desk.state, "asha", Role::Agent).await;
    let (status, _) = asha
        .post(&format!("/agent/api/conversations/{s}/claim"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let stream = shopper_stream(shop.base.clone(), s, 0, tx.clone());
    // Wait until the stream has caught up (the "joined" notice).
    loop {
        let (_, role, _, _) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if role == "system" {
            break;
        }
    }
    let path = format!("/agent/api/conversations/{s}/messages");
    let mut sent = Vec::new();
    let mut latencies = Vec::new();
    for i in 0..20 {
        let text = format!("message {i}");
        let at = Instant::now();
        assert_eq!(
            asha.post(&path, json!({"text": text})).await.0,
            StatusCode::CREATED
        );
        let (_, role, got, arrived) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("delivered across instances")
            .unwrap();
        assert_eq!((role.as_str(), got.as_str()), ("agent", text.as_str()));
        latencies.push(arrived - at);
        sent.push(text);
    }

    // The shopper's instance restarts while the agent keeps writing.
    let last = {
        shop.shut_down().await;
        stream.await.unwrap()
    };
    for i in 20..30 {
        let text = format!("message {i}");
        assert_eq!(
            asha.post(&path, json!({"text": text})).await.0,
            StatusCode::CREATED
        );
        sent.push(text);
    }
    let shop = instance(&pool, &state).await;
    let stream = shopper_stream(shop.base.clone(), s, last, tx.clone());
    for i in 30..40 {
        let text = format!("message {i}");
        assert_eq!(
            asha.post(&path, json!({"text": text})).await.0,
            StatusCode::CREATED
        );
        sent.push(text);
    }
    let mut received = Vec::new();
    let mut ids = Vec::new();
    while received.len() < 20 {
        let (id, role, got, _) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("every message arrives after the restart")
            .unwrap();
        if role == "agent" {
            received.push(got);
            ids.push(id);
        }
    }
    assert_eq!(received, sent[20..]);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    // Nothing more (no duplicates) arrives.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err()
    );

    // The other way: the shopper writes on their instance, the agent's dashboard (on the other)
    // is woken by the relay and reads what is new by id.
    let res = asha
        .http
        .get(format!("{}/agent/api/events", desk.base))
        .header("cookie", &asha.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut wakes = eventsource_stream::EventStream::new(res.bytes_stream());
    assert_eq!(wakes.next().await.unwrap().unwrap().event, "resync");
    let (_, view) = asha.get(&format!("/agent/api/conversations/{s}")).await;
    let mut last_seen = view["messages"].as_array().unwrap().last().unwrap()["id"]
        .as_i64()
        .unwrap();
    let shopper = reqwest::Client::new();
    let mut seen = Vec::new();
    for i in 0..5 {
        let text = format!("shopper says {i}");
        let r = shopper
            .post(format!("{}/api/chat/sessions/{s}/messages", shop.base))
            .json(&json!({"text": text}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let _ = r.text().await.unwrap();
        // Woken, the dashboard fetches what is new.
        while !seen.contains(&text) {
            let e = tokio::time::timeout(Duration::from_secs(10), wakes.next())
                .await
                .expect("the dashboard is woken across instances")
                .unwrap()
                .unwrap();
            if e.event != "conversation" {
                continue;
            }
            let (_, new) = asha
                .get(&format!("/agent/api/conversations/{s}?after={last_seen}"))
                .await;
            for m in new["messages"].as_array().unwrap() {
                last_seen = m["id"].as_i64().unwrap();
                if m["role"] == "user" {
                    seen.push(m["text"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    assert_eq!(
        seen,
        (0..5)
            .map(|i| format!("shopper says {i}"))
            .collect::<Vec<_>>()
    );

    latencies.sort();
    eprintln!(
        "agent → shopper across instances: p50 {:?}, max {:?} (n = {}; figures, not a target)",
        latencies[latencies.len() / 2],
        latencies.last().unwrap(),
        latencies.len()
    );
    shop.shut_down().await;
    stream.abort();
    desk.shut_down().await;
}
