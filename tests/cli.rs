//! The `aisle` binary as users and harnesses run it: batch search on a temporary catalog, imports
//! with reject reports, clear errors, and `serve` on the embedded cluster over real HTTP.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

fn aisle() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aisle"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("AISLE_CONFIG");
    cmd
}

/// The URL of the database behind `pool` (a per-test database on the DATABASE_URL server).
async fn url_of(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("select current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let (base, query) = base
        .split_once('?')
        .map_or((base.as_str(), None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').unwrap();
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// An eval-samples file: its text and its lines as JSON.
fn eval_sample(name: &str) -> (String, Vec<Value>) {
    let samples = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../shared/eval-samples/{name}.sample.jsonl")),
    )
    .unwrap();
    let rows = samples
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (samples, rows)
}

/// Runs `aisle ARGS` with `input` on stdin; its success, stdout as JSON lines, and stderr.
fn run_lines(args: &[&str], extra: &std::path::Path, input: &[u8]) -> (bool, Vec<Value>, String) {
    let mut child = aisle()
        .args(args)
        .arg(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.success(), lines, stderr)
}

#[test]
fn batch_search_answers_every_line_in_order_from_a_temporary_catalog() {
    let csv_path = common::shared_data("flipkart_sample/products.csv");
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let (id_col, name_col) = (col("uniq_id"), col("product_name"));
    let sample: Vec<(String, String)> = reader
        .records()
        .map(|r| r.unwrap())
        .step_by(50)
        .map(|r| (r[id_col].to_owned(), r[name_col].to_owned()))
        .collect();
    let mut input = Vec::new();
    for (i, (_, name)) in sample.iter().enumerate() {
        writeln!(
            input,
            "{}",
            serde_json::json!({"id": format!("q{i}"), "query": name, "limit": 10, "extra": true})
        )
        .unwrap();
    }
    input.extend_from_slice(b"\n{not json}\n");
    input.extend_from_slice(b"{\"id\": \"bad-utf8\", \"query\": \"\xff\"}\n");
    input.extend_from_slice(b"{\"id\": \"empty\", \"query\": \"  \"}\n");

    let (ok, lines, stderr) = run_lines(&["batch", "search", "--catalog"], &csv_path, &input);
    assert!(ok, "{stderr}");
    assert_eq!(
        lines.len(),
        sample.len() + 3,
        "one line out per non-blank line in"
    );
    for (i, (id, name)) in sample.iter().enumerate() {
        let line = &lines[i];
        assert_eq!(line["id"], format!("q{i}"));
        let results = line["results"].as_array().unwrap();
        assert!(!results.is_empty() && results.len() <= 10);
        let top = &results[0];
        let ours = results.iter().find(|r| r["id"] == id.as_str());
        assert!(
            top["id"] == id.as_str() || ours.is_some_and(|r| r["score"] == top["score"]),
            "title {name:?}: expected {id} first, got {results:?}"
        );
        let scores: Vec<f64> = results
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first");
    }
    let n = sample.len();
    assert!(
        lines[n]["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid input line")
    );
    assert!(lines[n + 1]["error"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(lines[n + 2]["id"], "empty");
    assert_eq!(lines[n + 2]["error"], "the query is empty");
    assert!(stderr.contains("1002 products loaded"), "{stderr}");
}

#[sqlx::test]
async fn import_reports_rejects_on_stderr_and_a_summary_on_stdout(pool: PgPool) {
    let url = url_of(&pool).await;
    let rejects = tempfile::NamedTempFile::new().unwrap();
    let out = aisle()
        .env("DATABASE_URL", &url)
        .args(["import", "merchant"])
        .arg(common::fixture("merchant_mixed.tsv"))
        .arg("--rejects")
        .arg(rejects.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("rejected row 3 (line 4): missing id"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rejected row 4 (line 5, id \"FL-4\"): price -5 is negative"),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("11 rows read, 3 inserted, 1 updated, 0 unchanged, 7 rejected"),
        "{stdout}"
    );
    let saved = std::fs::read_to_string(rejects.path()).unwrap();
    assert_eq!(saved.lines().count(), 7);

    let again = aisle()
        .env("DATABASE_URL", &url)
        .args(["import", "merchant", "--json"])
        .arg(common::fixture("merchant_mixed.tsv"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (report["inserted"].as_u64(), report["unchanged"].as_u64()),
        (Some(0), Some(3))
    );
    let products: i64 = sqlx::query_scalar("select count(*) from products")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(products, 3);
}

#[test]
fn failures_are_one_clear_sentence_and_a_non_zero_exit() {
    let out = aisle()
        .args(["import", "flipkart", "/no/such/file.csv"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.trim(),
        "error: /no/such/file.csv is not a readable file"
    );

    let out = aisle().args(["import", "excel", "x"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("possible values: flipkart, merchant, jsonl")
    );

    let out = aisle()
        .env("DATABASE_URL", "mysql://nope")
        .args(["batch", "search"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("must start with postgres://")
    );

    // A directory, or a file of the wrong format, is an error rather than an empty evaluation.
    let dir = tempfile::tempdir().unwrap();
    let out = aisle()
        .args(["eval", "intents", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("is not a file")
    );
    let csv = dir.path().join("other.csv");
    std::fs::write(&csv, "a,b\n1,2\n").unwrap();
    let out = aisle()
        .args([
            "eval",
            "intents",
            csv.to_str().unwrap(),
            "--format",
            "bitext",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("other.csv"), "{stderr}");

    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["import", "--help"],
        &["batch", "search", "--help"],
        &["eval", "ranking", "--help"],
    ] {
        let out = aisle().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_runs_on_the_embedded_cluster_with_the_demo_store_and_stops_cleanly() {
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = aisle()
        .env_remove("DATABASE_URL")
        .env("AISLE__DATABASE__STATE_DIR", state.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let started = Instant::now();
    let addr = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 || started.elapsed() > Duration::from_secs(120)
        {
            let _ = child.kill();
            panic!("serve exited or hung before listening");
        }
        if let Some(rest) = line.strip_prefix("aisle is serving on http://") {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));

    let (status, body) = http_get(&addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(&addr, "/api/search?q=red%20flats&limit=3");
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["results"].as_array().unwrap().len(), 3);
    let (status, html) = http_get(&addr, "/");
    assert_eq!(status, 200);
    assert!(html.contains("data-product-id="));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "serve should exit 0 after SIGTERM, got {exit}"
    );
    assert!(
        !state.path().join("pg/data/postmaster.pid").exists(),
        "the embedded cluster was stopped"
    );
}

#[test]
fn batch_search_from_another_directory_still_has_the_graph() {
    let cwd = tempfile::tempdir().unwrap();
    let mut child = aisle()
        .current_dir(cwd.path())
        .args(["batch", "search", "--catalog"])
        .arg(common::shared_data("flipkart_sample/products.csv"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("{\"id\": \"zh\", \"query\": \"男士手表\"}\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["id"], "zh");
    assert!(
        !line["results"].as_array().unwrap().is_empty(),
        "Chinese reaches the English catalog through the built-in graph: {line}"
    );
}

/// `aisle train ranker` writes the next model version; `aisle eval ranking` (pointed at that
/// folder) reports the learned ranker next to the baselines; imports embed what they load.
#[sqlx::test]
async fn train_writes_a_versioned_ranker_that_eval_then_uses(pool: PgPool) {
    let url = url_of(&pool).await;
    let seeded = aisle()
        .env("DATABASE_URL", &url)
        .args(["seed"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&seeded.stderr);
    assert!(seeded.status.success(), "{stderr}");
    assert!(
        stderr.contains("embeddings: 254 products embedded"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    for expected in [1, 2] {
        let out = aisle()
            .env("DATABASE_URL", &url)
            .args([
                "train",
                "ranker",
                "--queries",
                "eval/queries/demo-train.jsonl",
            ])
            .args(["--epochs", "60", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let last = String::from_utf8(out.stdout).unwrap();
        let summary: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        assert_eq!(summary["version"], expected);
        let report = &summary["training"]["report"];
        assert!(report["train_queries"].as_u64().unwrap() > 30, "{summary}");
        assert!(
            dir.path()
                .join(format!("ranker-v{expected}.safetensors"))
                .is_file()
        );
    }

    // Logged clicks and carts alone are enough to train from.
    let session = common::new_session(&pool).await;
    for (query, product, kind, position) in [
        ("vacuum flask", "AD-KD-0001", "add_to_cart", 2),
        ("vacuum flask", "AD-KD-0002", "click", 4),
        ("red flats", "AD-FW-0001", "click", 3),
        ("dog shampoo", "AD-PS-0002", "add_to_cart", 1),
    ] {
        sqlx::query(
            "insert into feedback_events (conversation_id, kind, product_id, position, query)
             values ($1, $2, $3, $4, $5)",
        )
        .bind(session)
        .bind(kind)
        .bind(product)
        .bind(position)
        .bind(query)
        .execute(&pool)
        .await
        .unwrap();
    }
    let out = aisle()
        .env("DATABASE_URL", &url)
        .args(["train", "ranker", "--feedback", "--epochs", "20", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("0 from files, 3 from feedback"), "{stderr}");
    let last = String::from_utf8(out.stdout).unwrap();
    let summary: Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
    assert_eq!(summary["version"], 3);
    assert_eq!(summary["training"]["feedback"], true);

    let out = aisle()
        .env("DATABASE_URL", &url)
        .env("AISLE__RANKING__MODEL_DIR", dir.path())
        .args(["eval", "ranking", "eval/queries/demo-heldout.jsonl"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["model"]["version"], 3, "{summary}");
    for ranker in ["bm25", "hybrid", "learned"] {
        let ndcg = summary[ranker]["ndcg@10"].as_f64().unwrap();
        assert!(ndcg > 0.0 && ndcg <= 1.0, "{summary}");
    }
}

#[test]
fn batch_parse_answers_every_line_in_order_with_the_contract_shape() {
    let csv_path = common::shared_data("flipkart_sample/products.csv");
    let (samples, rows) = eval_sample("intents");
    let mut input = samples.clone().into_bytes();
    input.extend_from_slice(b"{\"id\": 7, \"text\": \"hello\"}\n{broken\n");
    let (ok, lines, stderr) = run_lines(
        &["batch", "parse", "--llm", "auto", "--catalog"],
        &csv_path,
        &input,
    );
    assert!(ok, "{stderr}");
    assert_eq!(lines.len(), rows.len() + 2);
    let intents = [
        "product_search",
        "product_question",
        "compare",
        "order_status",
        "return_refund",
        "shipping_info",
        "human_agent",
        "greeting",
        "out_of_scope",
    ];
    for (row, line) in rows.iter().zip(&lines) {
        assert_eq!(line["id"], row["id"]);
        assert!(
            intents.contains(&line["intent"].as_str().unwrap()),
            "{line}"
        );
        assert!(line["slots"].is_object(), "{line}");
    }
    let order = lines
        .iter()
        .find(|l| l["slots"]["order_id"] == "OD4412873")
        .unwrap();
    assert_eq!(order["intent"], "order_status");
    assert_eq!(lines[rows.len()]["id"], 7);
    assert_eq!(lines[rows.len()]["intent"], "greeting");
    assert!(
        lines[rows.len() + 1]["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid input line")
    );
}

#[test]
fn batch_chat_answers_every_dialogue_with_the_contract_shape() {
    let csv_path = common::shared_data("flipkart_sample/products.csv");
    let ids: std::collections::HashSet<String> = csv::Reader::from_path(&csv_path)
        .unwrap()
        .records()
        .map(|r| r.unwrap()[0].to_owned())
        .collect();
    let (samples, rows) = eval_sample("dialogues");
    let mut input = samples.clone().into_bytes();
    input.extend_from_slice(
        "{\"id\": \"x\", \"turns\": [\"\", \"running shoes under 1,000 rupees\"]}\n{broken\n"
            .as_bytes(),
    );
    let (ok, lines, stderr) = run_lines(&["batch", "chat", "--catalog"], &csv_path, &input);
    assert!(ok, "{stderr}");
    assert_eq!(lines.len(), rows.len() + 2, "one line out per line in");
    let kinds = [
        "products",
        "answer",
        "policy",
        "clarify",
        "escalation",
        "refusal",
    ];
    for (row, line) in rows.iter().zip(&lines) {
        assert_eq!(line["id"], row["id"]);
        let replies = line["replies"].as_array().unwrap();
        assert_eq!(
            replies.len(),
            row["turns"].as_array().unwrap().len(),
            "{line}"
        );
        for r in replies {
            assert!(kinds.contains(&r["kind"].as_str().unwrap()), "{r}");
            assert!(r["text"].is_string() && r["escalated"].is_boolean(), "{r}");
            assert!(
                r["intent"]["intent"].is_string() && r["intent"]["slots"].is_object(),
                "{r}"
            );
            let budget = r["intent"]["slots"]["max_price"].as_f64();
            for c in r["cards"].as_array().unwrap() {
                assert!(
                    ids.contains(c["id"].as_str().unwrap()),
                    "not a catalog product: {c}"
                );
                for k in ["name", "category", "currency"] {
                    assert!(c[k].is_string(), "{k} missing: {c}");
                }
                assert!(c.as_object().unwrap().contains_key("brand"), "{c}");
                let price = c["price"].as_f64().unwrap();
                assert!(budget.is_none_or(|b| price <= b), "over budget: {c} in {r}");
            }
            if r["kind"] == "escalation" {
                assert!(r["cards"].as_array().unwrap().is_empty());
            }
        }
    }
    // An empty turn gets its place with an error; the next turn is still answered.
    let x = &lines[rows.len()]["replies"];
    assert!(x[0]["error"].as_str().unwrap().contains("empty"), "{x}");
    assert_eq!(x[1]["kind"], "products", "{x}");
    assert!(
        lines[rows.len() + 1]["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid input line")
    );
}

#[test]
fn bench_handoff_delivers_every_message_on_one_and_on_two_instances() {
    // Figures are printed, not judged: this checks the benchmark runs end to end (two servers,
    // the relay, the agent API and the shopper's stream) and reports both setups.
    let out = aisle()
        .args(["bench", "handoff", "--messages", "5", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["messages"], 5);
    for setup in ["same_instance", "across_instances"] {
        let p50 = line[setup]["p50_ms"].as_f64().unwrap();
        assert!(
            p50 > 0.0 && p50 <= line[setup]["max_ms"].as_f64().unwrap(),
            "{line}"
        );
    }
}

#[test]
fn bench_kernels_times_both_paths_on_the_models_weights() {
    // Figures are printed, not judged: the benchmark loads the default GGUF's layer weights and
    // times one decoded token and one short prompt, upstream loop and tiled kernels.
    let out = aisle()
        .args([
            "bench",
            "kernels",
            "--prompt-tokens",
            "8",
            "--runs",
            "1",
            "--threads",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    // SmolLM2-135M: 30 layers of 7 projections, plus the (tied) output head.
    assert_eq!(line["weights"], 211, "{line}");
    let runs = line["runs"].as_array().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r["m"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 8]
    );
    for run in runs {
        assert!(run["upstream_ms"].as_f64().unwrap() > 0.0, "{line}");
        if !line["tiled_kernel"].is_null() {
            assert!(run["tiled_ms"].as_f64().unwrap() > 0.0, "{line}");
        }
    }
    // The attention part reads SmolLM2's geometry from the GGUF and times both kernels.
    let attention = &line["attention"];
    assert_eq!(
        [
            &attention["layers"],
            &attention["heads"],
            &attention["kv_heads"],
            &attention["head_dim"]
        ],
        [30, 9, 3, 64],
        "{line}"
    );
    let cases = attention["runs"].as_array().unwrap();
    let shapes: Vec<(&str, u64, u64)> = cases
        .iter()
        .map(|c| {
            (
                c["case"].as_str().unwrap(),
                c["q_len"].as_u64().unwrap(),
                c["kv_len"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shapes, [("decode", 1, 8), ("prefill", 8, 8)], "{line}");
    for case in cases {
        assert!(case["upstream_ms"].as_f64().unwrap() > 0.0, "{line}");
        assert!(case["patched_ms"].as_f64().unwrap() > 0.0, "{line}");
    }
}
