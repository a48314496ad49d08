//! The graph editor over HTTP with a real Postgres: login and sessions, CSRF, roles, saving a
//! synonym through the form, and an edit conflict that keeps the editor's input.
#![allow(clippy::unwrap_used)]

mod common;

use aisle::auth::Role;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

struct Client {
    router: axum::Router,
    cookie: Option<String>,
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| {
                s.bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect::<String>()
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Client {
    async fn send(
        &mut self,
        req: axum::http::request::Builder,
        body: Body,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let req = match &self.cookie {
            Some(c) => req.header(header::COOKIE, c),
            None => req,
        };
        let res = self
            .router
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        if let Some(set) = headers.get(header::SET_COOKIE) {
            self.cookie = Some(set.to_str().unwrap().split(';').next().unwrap().to_owned());
        }
        let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
            .unwrap();
        (status, headers, body)
    }

    async fn get(&mut self, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        self.send(Request::get(uri), Body::empty()).await
    }

    async fn post(
        &mut self,
        uri: &str,
        pairs: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let req =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(req, Body::from(form(pairs))).await
    }

    async fn login(&mut self, username: &str) {
        let (status, headers, _) = self
            .post(
                "/kg/login",
                &[
                    ("username", username),
                    ("password", PASSWORD),
                    ("next", "/kg"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "login as {username}");
        assert_eq!(headers[header::LOCATION], "/kg");
        let set = headers[header::SET_COOKIE].to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
    }
}

/// What a browser submits for escaped page text (named and numeric entities).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';').unwrap_or(0);
        let entity = &tail[1..end.max(1)];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) if end > 0 => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            _ => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A form field's value in a page.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field"))
        + marker.len();
    unescape(html[start..].split('"').next().unwrap())
}

fn textarea(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let start = html.find(&marker).unwrap();
    let open = html[start..].find('>').unwrap() + start + 1;
    let close = html[open..].find("</textarea>").unwrap() + open;
    unescape(&html[open..close])
}

async fn setup(pool: &PgPool) -> (Client, String) {
    let state = common::demo_state(pool.clone()).await;
    for (name, role) in [("edna", Role::Editor), ("arjun", Role::Agent)] {
        state
            .auth
            .create_user(name, "", role, PASSWORD)
            .await
            .unwrap();
    }
    let concept: String =
        sqlx::query_scalar("select id from kg_nodes where kind = 'concept' order by id limit 1")
            .fetch_one(pool)
            .await
            .unwrap();
    (
        Client {
            router: aisle::web::app(state),
            cookie: None,
        },
        concept,
    )
}

fn node_uri(id: &str) -> String {
    format!(
        "/kg/node?id={}",
        id.bytes().map(|b| format!("%{b:02X}")).collect::<String>()
    )
}

#[sqlx::test]
async fn pages_need_a_login_and_wrong_passwords_are_limited(pool: PgPool) {
    let (mut c, concept) = setup(&pool).await;
    let (status, headers, _) = c.get("/kg").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/kg/login?next=/kg");
    let (status, _, _) = c
        .post(
            "/kg/node",
            &[
                ("id", &concept),
                ("version", "1"),
                ("label_en", "x"),
                ("csrf", "x"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for _ in 0..5 {
        let (status, _, body) = c
            .post(
                "/kg/login",
                &[("username", "edna"), ("password", "wrong password!")],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("Wrong username or password"));
    }
    let (status, _, body) = c
        .post("/kg/login", &[("username", "edna"), ("password", PASSWORD)])
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits after 5 failures"
    );
    assert!(body.contains("Too many failed logins"));
    // An open redirect is not possible through `next`.
    let (status, headers, _) = c
        .post(
            "/kg/login",
            &[
                ("username", "arjun"),
                ("password", PASSWORD),
                ("next", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/kg");
}

#[sqlx::test]
async fn an_editor_adds_a_synonym_through_the_form(pool: PgPool) {
    let (mut c, concept) = setup(&pool).await;
    c.login("edna").await;
    let (status, _, page) = c.get(&node_uri(&concept)).await;
    assert_eq!(status, StatusCode::OK);
    let (csrf, version) = (field(&page, "csrf"), field(&page, "version"));
    let mut synonyms = textarea(&page, "synonyms_en");
    synonyms.push_str("\nstudy table essentials");
    let pairs = [
        ("csrf", csrf.as_str()),
        ("id", concept.as_str()),
        ("version", version.as_str()),
        ("label_en", &field(&page, "label_en")),
        ("label_zh", &field(&page, "label_zh")),
        ("synonyms_en", &synonyms),
        ("synonyms_zh", &textarea(&page, "synonyms_zh")),
        ("edges", &textarea(&page, "edges")),
    ];
    let (status, headers, body) = c.post("/kg/node", &pairs).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "{}",
        body.lines()
            .filter(|l| l.contains("error"))
            .collect::<String>()
    );
    assert!(
        headers[header::LOCATION]
            .to_str()
            .unwrap()
            .contains("msg=Saved")
    );
    let (_, _, page) = c.get(&node_uri(&concept)).await;
    assert!(textarea(&page, "synonyms_en").contains("study table essentials"));
    assert!(
        page.contains("edna") && page.contains("update"),
        "history shows the change"
    );
    let (_, _, json) = c.get("/api/kg/resolve?q=study%20table%20essentials").await;
    assert!(json.contains(&concept), "{json}");

    // The same form again, on the old version: a conflict that keeps the input.
    let stale = [
        pairs[0],
        pairs[1],
        pairs[2],
        pairs[3],
        pairs[4],
        ("synonyms_en", "my unsaved phrase"),
        pairs[6],
        pairs[7],
    ];
    let (status, _, page) = c.post("/kg/node", &stale).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("changed by someone else"));
    assert!(
        textarea(&page, "synonyms_en").contains("my unsaved phrase"),
        "the editor's input is kept"
    );
    assert!(page.contains("Stored now"));
}

#[sqlx::test]
async fn forms_without_the_csrf_token_and_agents_are_refused(pool: PgPool) {
    let (mut c, concept) = setup(&pool).await;
    let before = aisle::graph::repo::load(&pool).await.unwrap();
    c.login("edna").await;
    let (_, _, page) = c.get(&node_uri(&concept)).await;
    let version = field(&page, "version");
    let pairs = [
        ("id", concept.as_str()),
        ("version", version.as_str()),
        ("label_en", "Hacked"),
    ];
    let (status, _, body) = c.post("/kg/node", &pairs).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("security token"));
    let (status, _, _) = c
        .post(
            "/kg/node",
            &[pairs[0], pairs[1], pairs[2], ("csrf", "0123")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let mut agent = Client {
        router: c.router.clone(),
        cookie: None,
    };
    agent.login("arjun").await;
    let (status, _, page) = agent.get(&node_uri(&concept)).await;
    assert_eq!(status, StatusCode::OK, "agents may look");
    assert!(!page.contains("id=\"save\""), "but get no save button");
    let csrf = field(&page, "csrf");
    let (status, _, body) = agent
        .post("/kg/node", &[pairs[0], pairs[1], pairs[2], ("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("agent role may view"));
    assert_eq!(
        aisle::graph::repo::load(&pool).await.unwrap(),
        before,
        "nothing changed"
    );

    // Logging out ends the session.
    let (status, _, _) = agent.post("/kg/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = agent.get("/kg").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}
