//! `aisle batch chat` (one fresh conversation per input line) and `aisle chat` (a terminal REPL),
//! both through the same turn pipeline as the web service.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::batch::Catalog;
use crate::chat::{ChatService, TurnEvent};
use crate::config::Settings;

#[derive(Args)]
pub struct ChatArgs {
    /// A Flipkart CSV to answer from, loaded into a temporary database.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Templated reply text only (the LLM still helps understand messages per intent.llm).
    #[arg(long)]
    pub templated: bool,
}

async fn open(settings: &Settings, args: &ChatArgs) -> anyhow::Result<(Catalog, ChatService)> {
    let mut settings = settings.clone();
    if args.templated {
        settings.chat.llm_replies = false;
    }
    let catalog = Catalog::open(&settings, args.catalog.as_deref()).await?;
    let chat = ChatService::from_settings(
        &settings,
        catalog.db.pool.clone(),
        catalog.search.clone(),
        catalog.graph.clone(),
        crate::llm::LlmMetrics::default(),
    )
    .await;
    match chat {
        Ok(chat) => Ok((catalog, chat)),
        Err(e) => {
            catalog.close().await?;
            Err(e).context("starting the conversation service")
        }
    }
}

#[derive(Deserialize)]
struct ChatLine {
    id: Value,
    turns: Vec<String>,
}

/// Runs one turn, draining its events (so the LLM writes the text as it would for a widget).
async fn one_turn(
    chat: &ChatService,
    session: uuid::Uuid,
    text: &str,
    mut on_event: impl FnMut(&TurnEvent),
) -> Result<crate::chat::TurnOutcome, crate::chat::ChatError> {
    let ticket = chat.begin(session).await?;
    let (tx, mut rx) = mpsc::channel(64);
    let turn = chat.turn(ticket, text, &tx);
    tokio::pin!(turn);
    loop {
        tokio::select! {
            biased;
            Some(e) = rx.recv() => on_event(&e),
            result = &mut turn => {
                while let Ok(e) = rx.try_recv() {
                    on_event(&e);
                }
                return result;
            }
        }
    }
}

/// One `aisle batch chat` answer.
pub async fn chat_line(chat: &ChatService, line: &str) -> Value {
    let input: ChatLine = match serde_json::from_str(line) {
        Ok(i) => i,
        Err(e) => {
            let id = super::batch::error_line(line, "")["id"].clone();
            return json!({"id": id, "replies": [], "error": format!("invalid input line: {e}")});
        }
    };
    let session = match chat.start(None, None).await {
        Ok(s) => s,
        Err(e) => return json!({"id": input.id, "replies": [], "error": e.to_string()}),
    };
    let mut replies = Vec::with_capacity(input.turns.len());
    for text in &input.turns {
        match one_turn(chat, session, text, |_| {}).await {
            Ok(outcome) => replies.push(json!(outcome.reply)),
            // A turn that cannot be answered (empty, too long) still gets its place in the list.
            Err(e) => replies.push(json!({"text": "", "kind": "refusal", "cards": [],
                                          "escalated": false, "error": e.to_string()})),
        }
    }
    json!({"id": input.id, "replies": replies})
}

pub async fn batch(settings: Settings, args: ChatArgs) -> anyhow::Result<()> {
    let (catalog, chat) = open(&settings, &args).await?;
    let result = super::batch::answer_lines(
        async |line: &str| chat_line(&chat, line).await,
        |error| json!({"id": null, "replies": [], "error": error}),
    )
    .await;
    catalog.close().await?;
    result
}

/// The terminal REPL: type a message, see cards and the streamed reply.
pub async fn repl(settings: Settings, args: ChatArgs) -> anyhow::Result<()> {
    let (catalog, chat) = open(&settings, &args).await?;
    let result = repl_loop(&chat).await;
    catalog.close().await?;
    result
}

async fn repl_loop(chat: &ChatService) -> anyhow::Result<()> {
    let session = chat.start(None, None).await?;
    eprintln!("aisle chat (session {session}). Type a message; Ctrl-D ends.");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        eprint!("you> ");
        let _ = std::io::stderr().flush();
        let Some(line) = lines.next_line().await.context("reading stdin")? else {
            break;
        };
        if line.trim().is_empty() {
            continue;
        }
        let mut out = std::io::stdout();
        let result = one_turn(chat, session, &line, |e| {
            match e {
                TurnEvent::Cards(cards) => {
                    for c in cards {
                        let _ = writeln!(
                            out,
                            "  [{}] {} — {} ({})",
                            c.position, c.name, c.price_text, c.id
                        );
                    }
                    let _ = write!(out, "aisle> ");
                }
                TurnEvent::Token(t) => {
                    let _ = write!(out, "{t}");
                }
                TurnEvent::Done(o) => {
                    if let Some(n) = &o.reply.notice {
                        let _ = write!(out, "({n})");
                    }
                    let _ = writeln!(out);
                    if !o.reply.chips.is_empty() {
                        let _ = writeln!(out, "  suggestions: {}", o.reply.chips.join(" | "));
                    }
                }
                TurnEvent::Intent(_) => {}
            }
            let _ = out.flush();
        })
        .await;
        if let Err(e) = result {
            eprintln!("error: {e}");
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct ChatBenchArgs {
    /// JSON Lines of dialogues, `{"id","turns":["..."]}` (the batch chat input).
    #[arg(long, default_value = "bench/dialogues.jsonl")]
    pub dialogues: PathBuf,
    /// A Flipkart CSV to answer from, loaded into a temporary database.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Times through the dialogues per mode.
    #[arg(long, default_value_t = 1)]
    pub passes: usize,
    /// Only the templated mode (no LLM text).
    #[arg(long)]
    pub templated: bool,
}

/// `aisle bench chat`: time to the `cards` event, to the first text, and to the first sentence
/// the LLM wrote, per turn, with templated replies (the baseline) and with LLM replies, in one run,
/// after an unmeasured warm-up pass.
pub async fn bench(settings: Settings, args: ChatBenchArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.dialogues)
        .with_context(|| format!("reading {}", args.dialogues.display()))?;
    let dialogues: Vec<ChatLine> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not batch chat input", args.dialogues.display()))?;
    let modes: &[bool] = if args.templated {
        &[false]
    } else {
        &[false, true]
    };
    let open_args = ChatArgs {
        catalog: args.catalog.clone(),
        templated: false,
    };
    let (catalog, chat) = open(&settings, &open_args).await?;
    let mut rows = Vec::new();
    let result: anyhow::Result<()> = async {
        // One unmeasured pass first, so both modes meet the same warm caches (query vectors,
        // the catalog's names, the model's pages).
        let warm = {
            let mut s = settings.chat.clone();
            s.llm_replies = false;
            chat.with_settings(s)
        };
        for d in &dialogues {
            let session = warm.start(None, None).await?;
            for t in &d.turns {
                let _ = one_turn(&warm, session, t, |_| {}).await;
            }
        }
        for &llm in modes {
            let mut s = settings.chat.clone();
            s.llm_replies = llm;
            let chat = chat.with_settings(s);
            let (mut cards, mut first, mut sentence, mut total) = (vec![], vec![], vec![], vec![]);
            let mut fallbacks = 0usize;
            for _ in 0..args.passes.max(1) {
                for d in &dialogues {
                    let session = chat.start(None, None).await?;
                    for t in &d.turns {
                        let Ok(o) = one_turn(&chat, session, t, |_| {}).await else {
                            continue;
                        };
                        let ms = |k: &str| o.trace.pointer(&format!("/ms/{k}")).and_then(Value::as_f64);
                        if !o.reply.cards.is_empty() {
                            cards.extend(ms("cards"));
                        }
                        first.extend(ms("first_token"));
                        sentence.extend(ms("llm_first_sentence"));
                        total.extend(ms("total"));
                        if o.trace["fallback"].is_string() {
                            fallbacks += 1;
                        }
                    }
                }
            }
            let mode = if llm { "llm" } else { "templated" };
            let row = json!({
                "mode": mode, "turns": total.len(), "llm_fallbacks": fallbacks,
                "cards": super::bench::percentiles(cards), "first_token": super::bench::percentiles(first),
                "llm_first_sentence": super::bench::percentiles(sentence), "total": super::bench::percentiles(total),
            });
            eprintln!(
                "{mode:>9}: cards p50 {} / p95 {} ms, first text p50 {} / p95 {} ms, LLM first sentence p50 {} / p95 {} ms, turn p50 {} / p95 {} ms, {fallbacks} fallbacks",
                row["cards"]["p50_ms"], row["cards"]["p95_ms"], row["first_token"]["p50_ms"], row["first_token"]["p95_ms"],
                row["llm_first_sentence"]["p50_ms"], row["llm_first_sentence"]["p95_ms"], row["total"]["p50_ms"], row["total"]["p95_ms"],
            );
            rows.push(row);
        }
        Ok(())
    }
    .await;
    catalog.close().await?;
    result?;
    println!(
        "{}",
        json!({"bench": "chat", "dialogues": dialogues.len(), "llm": chat.llm().map(|l| l.describe()), "modes": rows})
    );
    Ok(())
}

#[derive(Args)]
pub struct EvalDialoguesArgs {
    /// JSON Lines `{"id","lang"?,"turns":[...],"must":["check", "tN:check", ...]}`.
    pub file: PathBuf,
    /// A Flipkart CSV to answer from, loaded into a temporary database.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Templated reply text only.
    #[arg(long)]
    pub templated: bool,
    /// Also print each dialogue's replies and check results.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Deserialize)]
struct Dialogue {
    id: Value,
    turns: Vec<String>,
    #[serde(default)]
    must: Vec<String>,
}

/// Whether one check holds for a dialogue's replies (the checks of eval-samples/README.md). An
/// unknown check is an error, not a pass.
fn check_one(
    check: &str,
    replies: &[crate::chat::Reply],
    names: &crate::chat::grounding::CatalogNames,
) -> Result<bool, String> {
    let (target, check) = match check.split_once(':') {
        Some((t, c)) if t.starts_with('t') && t[1..].parse::<usize>().is_ok() => {
            let n: usize = t[1..].parse().unwrap_or(0);
            (replies.get(n.wrapping_sub(1)), c)
        }
        _ => (replies.last(), check),
    };
    let Some(r) = target else {
        return Err(format!("no reply for {check}"));
    };
    let cards = &r.cards;
    Ok(match check {
        "products_shown" => !cards.is_empty(),
        "no_products" => cards.is_empty(),
        "escalated" => replies.iter().any(|r| r.escalated),
        "answers_policy" => {
            cards.is_empty()
                && matches!(
                    r.kind,
                    crate::chat::ReplyKind::Answer | crate::chat::ReplyKind::Policy
                )
        }
        "refused" => r.kind == crate::chat::ReplyKind::Refusal,
        "no_unknown_products" => {
            let facts = crate::chat::compose::facts_of(cards, Vec::new());
            // Names outside the cards and invented model numbers; figures are not this check's.
            crate::chat::grounding::check(&r.text, &facts, names)
                .dropped
                .iter()
                .all(|d| matches!(d.violation, crate::chat::grounding::Violation::Number(_)))
        }
        c if c.starts_with("reply_lang=") => {
            let want = &c["reply_lang=".len()..];
            crate::chat::reply::Lang::detect(&r.text).as_str() == want
        }
        c if c.starts_with("category~") => {
            let x = c["category~".len()..].to_lowercase();
            cards.iter().all(|k| {
                k.category.to_lowercase().contains(&x) || k.name.to_lowercase().contains(&x)
            })
        }
        c if c.starts_with("max_price<=") => {
            let n: f64 = c["max_price<=".len()..]
                .trim()
                .parse()
                .map_err(|_| format!("bad check {c}"))?;
            cards.iter().all(|k| k.price <= n)
        }
        c if c.starts_with("brand=") => {
            let b = c["brand=".len()..].to_lowercase();
            cards
                .iter()
                .all(|k| k.brand.as_deref().is_some_and(|x| x.to_lowercase() == b))
        }
        other => return Err(format!("unknown check {other:?}")),
    })
}

/// `aisle eval dialogues`: runs each dialogue through the pipeline and checks its `must` list.
pub async fn eval(settings: Settings, args: EvalDialoguesArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let dialogues: Vec<Dialogue> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .with_context(|| format!("{} line {}", args.file.display(), i + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    if dialogues.is_empty() {
        anyhow::bail!("{} holds no dialogues", args.file.display());
    }
    let open_args = ChatArgs {
        catalog: args.catalog.clone(),
        templated: args.templated,
    };
    let (catalog, chat) = open(&settings, &open_args).await?;
    let result: anyhow::Result<Value> = async {
        let rows: Vec<(String, Option<String>, Option<String>)> =
            sqlx::query_as("select title, title_zh, brand from products")
                .fetch_all(&catalog.db.pool)
                .await?;
        let names = crate::chat::grounding::CatalogNames::new(
            rows.into_iter().flat_map(|(t, z, b)| [Some(t), z, b]).flatten(),
        );
        let (mut checks, mut passed, mut dialogues_passed) = (0usize, 0usize, 0usize);
        let mut by_check: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
        for d in &dialogues {
            let session = chat.start(None, None).await?;
            let mut replies = Vec::new();
            for t in &d.turns {
                match one_turn(&chat, session, t, |_| {}).await {
                    Ok(o) => replies.push(o.reply),
                    Err(e) => eprintln!("dialogue {}: turn {t:?} failed: {e}", d.id),
                }
            }
            let mut all = true;
            let mut results = Vec::new();
            for c in &d.must {
                let ok = check_one(c, &replies, &names).unwrap_or_else(|e| {
                    eprintln!("dialogue {}: {e}", d.id);
                    false
                });
                let key = c.split_once(':').filter(|(t, _)| t.starts_with('t')).map_or(c.as_str(), |(_, k)| k);
                let key = key.split(['~', '<', '=']).next().unwrap_or(key).to_owned();
                let e = by_check.entry(key).or_default();
                e.0 += 1;
                e.1 += usize::from(ok);
                checks += 1;
                passed += usize::from(ok);
                all &= ok;
                results.push(json!({"check": c, "ok": ok}));
            }
            dialogues_passed += usize::from(all);
            if args.verbose {
                println!("{}", json!({"id": d.id, "ok": all, "checks": results, "replies": replies}));
            }
        }
        Ok(json!({
            "file": args.file.display().to_string(), "dialogues": dialogues.len(),
            "dialogues_passed": dialogues_passed, "checks": checks, "checks_passed": passed,
            "by_check": by_check.into_iter().map(|(k, (n, ok))| (k, json!({"n": n, "passed": ok}))).collect::<serde_json::Map<_, _>>(),
        }))
    }
    .await;
    catalog.close().await?;
    println!("{}", result?);
    Ok(())
}
