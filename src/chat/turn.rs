//! [`ChatService`]: one shopper message through the whole turn (see the module docs of `chat`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::compose::{self, facts_of};
use super::customer;
use super::grounding::CatalogNames;
use super::reply::{self, Card, IntentView, Lang, Reply, ReplyKind, describe_search, money};
use super::repo::{self, Conversation, StoredMessage};
use super::{ChatError, ChatSettings, refs};
use crate::catalog::orders::{self, OrderView};
use crate::graph::{GraphService, KnowledgeGraph, NodeKind, PolicyFact};
use crate::intent::{Intent, IntentParser, Parse, Slots, Turn};
use crate::llm::{LlmHandle, Role};
use crate::ranking::SearchService;
use crate::support::rules::{self, EscalationSettings, Reason, Signals};

/// What a turn reports as it goes.
#[derive(Debug, Clone)]
pub enum TurnEvent {
    /// The message was understood.
    Intent(Box<IntentView>),
    /// The products of the reply, as soon as ranking is done.
    Cards(Vec<Card>),
    /// The next piece of reply text (already checked).
    Token(String),
    /// The reply was stored.
    Done(Box<TurnOutcome>),
}

/// A finished turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnOutcome {
    pub message_id: Option<i64>,
    pub user_message_id: i64,
    pub reply: Reply,
    /// How the reply came about: path, timings, fallbacks, dropped sentences.
    #[serde(skip)]
    pub trace: Value,
}

/// The conversation service. Cheap to clone.
#[derive(Clone)]
pub struct ChatService {
    pool: PgPool,
    search: SearchService,
    graph: GraphService,
    parser: IntentParser,
    llm: Option<LlmHandle>,
    settings: Arc<ChatSettings>,
    escalation: Arc<EscalationSettings>,
    /// Sessions with a turn in progress (one at a time per session).
    busy: Arc<Mutex<HashSet<Uuid>>>,
    names: Arc<Mutex<Option<NamesCache>>>,
}

struct NamesCache {
    fingerprint: (i64, Option<chrono::DateTime<chrono::Utc>>),
    checked: Instant,
    names: Arc<CatalogNames>,
}

/// Removes a session from the busy set when the turn ends, however it ends.
struct BusyGuard {
    set: Arc<Mutex<HashSet<Uuid>>>,
    id: Uuid,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.id);
        }
    }
}

/// A reply as routed, before its text is final.
struct Draft {
    kind: ReplyKind,
    cards: Vec<Card>,
    /// The templated text (always grounded: written from data).
    text: String,
    /// Whether the LLM may write the text instead (product lists).
    llm_prompt: Option<Vec<crate::llm::ChatMessage>>,
    /// The shopper's words the LLM's text may repeat.
    shopper_words: String,
    /// Numbers the text may state beyond the cards' prices.
    numbers: Vec<f64>,
    chips: Vec<String>,
    escalated: bool,
    notice: Option<String>,
    trace: Value,
}

impl Draft {
    fn new(kind: ReplyKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            cards: Vec::new(),
            text: text.into(),
            llm_prompt: None,
            shopper_words: String::new(),
            numbers: Vec::new(),
            chips: Vec::new(),
            escalated: false,
            notice: None,
            trace: json!({}),
        }
    }
}

const CATALOG_NAMES_TTL: Duration = Duration::from_secs(15);

impl ChatService {
    pub fn new(
        pool: PgPool,
        search: SearchService,
        graph: GraphService,
        parser: IntentParser,
        llm: Option<LlmHandle>,
        settings: ChatSettings,
    ) -> Self {
        Self {
            pool,
            search,
            graph,
            parser,
            llm,
            settings: Arc::new(settings),
            escalation: Arc::default(),
            busy: Arc::default(),
            names: Arc::default(),
        }
    }

    /// The service as configured: the intent model, and the LLM when replies or dialogue
    /// understanding use it. A model that fails to load leaves the service on its templates and
    /// the fast path, with a warning: shoppers still get grounded answers.
    pub async fn from_settings(
        settings: &crate::config::Settings,
        pool: PgPool,
        search: SearchService,
        graph: GraphService,
        llm_metrics: crate::llm::LlmMetrics,
    ) -> Result<Self, ChatError> {
        let wanted =
            settings.chat.llm_replies || settings.intent.llm != crate::intent::LlmMode::Never;
        let llm = if wanted {
            match LlmHandle::from_settings(&settings.llm, llm_metrics).await {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "the language model is unavailable; replies are templated and intents come from the fast path");
                    None
                }
            }
        } else {
            None
        };
        let parser =
            IntentParser::from_settings(&settings.intent, search.embedder().cloned(), llm.clone())?;
        Ok(
            Self::new(pool, search, graph, parser, llm, settings.chat.clone())
                .with_escalation(settings.support.escalation.clone()),
        )
    }

    /// This service with other escalation rules.
    pub fn with_escalation(mut self, escalation: EscalationSettings) -> Self {
        self.escalation = Arc::new(escalation);
        self
    }

    /// This service with other chat settings (same engines, same busy set).
    pub fn with_settings(&self, settings: ChatSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            ..self.clone()
        }
    }

    /// The language model, when one is loaded.
    pub fn llm(&self) -> Option<&LlmHandle> {
        self.llm.as_ref()
    }

    pub fn settings(&self) -> &ChatSettings {
        &self.settings
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a conversation. A customer token, when given, must verify.
    pub async fn start(
        &self,
        customer_token: Option<&str>,
        lang: Option<Lang>,
    ) -> Result<Uuid, ChatError> {
        use secrecy::ExposeSecret;
        let customer = match customer_token.map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => {
                let secret = self
                    .settings
                    .customer_token_secret
                    .expose_secret()
                    .as_bytes();
                let id = customer::verify(secret, token, chrono::Utc::now().timestamp())?;
                if !orders::customer_exists(&self.pool, &id).await? {
                    return Err(customer::TokenError::UnknownCustomer.into());
                }
                Some(id)
            }
            None => None,
        };
        Ok(repo::create(&self.pool, customer.as_deref(), lang.map(Lang::as_str)).await?)
    }

    /// A conversation and its messages, oldest first.
    pub async fn history(&self, id: Uuid) -> Result<(Conversation, Vec<StoredMessage>), ChatError> {
        let conv = repo::get(&self.pool, id)
            .await?
            .ok_or(ChatError::UnknownSession(id))?;
        let messages = repo::messages(&self.pool, id, None).await?;
        Ok((conv, messages))
    }

    /// Checks a message before anything is stored: not empty, not too long.
    pub fn validate<'a>(&self, text: &'a str) -> Result<&'a str, ChatError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ChatError::Empty);
        }
        let n = text.chars().count();
        if n > self.settings.max_message_chars {
            return Err(ChatError::TooLong(n, self.settings.max_message_chars));
        }
        Ok(text)
    }

    /// Checks that a turn can start (the session exists, is open and is not mid-turn) and marks
    /// it busy. The web layer calls this before it opens the event stream, so these errors are
    /// plain HTTP statuses.
    pub async fn begin(&self, session: Uuid) -> Result<TurnTicket, ChatError> {
        let conv = repo::get(&self.pool, session)
            .await?
            .ok_or(ChatError::UnknownSession(session))?;
        if conv.state == "closed" {
            return Err(ChatError::Closed);
        }
        let mut busy = self.busy.lock().map_err(|_| ChatError::Busy)?;
        if !busy.insert(session) {
            return Err(ChatError::Busy);
        }
        Ok(TurnTicket {
            conv,
            _guard: BusyGuard {
                set: self.busy.clone(),
                id: session,
            },
        })
    }

    /// Runs one turn, sending [`TurnEvent`]s to `events` as it goes (a closed receiver is fine:
    /// the turn still completes and is stored, without the LLM).
    pub async fn turn(
        &self,
        ticket: TurnTicket,
        text: &str,
        events: &mpsc::Sender<TurnEvent>,
    ) -> Result<TurnOutcome, ChatError> {
        let started = Instant::now();
        let text = self.validate(text)?;
        let conv = &ticket.conv;
        // 1. The message is stored before anything else.
        let user_message_id =
            repo::add_message(&self.pool, conv.id, "user", text, &json!({})).await?;
        // A message with hardly any letters ("800", an order id) keeps the conversation's language.
        let lang = match (
            Lang::detect(text),
            conv.lang.as_deref().and_then(Lang::parse),
        ) {
            (Lang::En, Some(Lang::Zh))
                if text.chars().filter(|c| c.is_alphabetic()).count() < 4 =>
            {
                Lang::Zh
            }
            (l, _) => l,
        };
        if conv.lang.as_deref() != Some(lang.as_str()) {
            repo::set_lang(&self.pool, conv.id, lang.as_str()).await?;
        }

        // While a person has (or is about to take) the chat, the bot says nothing of its own.
        if conv.state == "waiting_for_agent" || conv.state == "agent" {
            let reply = self.silent_reply(conv, lang).await?;
            let _ = events
                .send(TurnEvent::Done(Box::new(TurnOutcome {
                    message_id: None,
                    user_message_id,
                    reply: reply.clone(),
                    trace: json!({"silent": conv.state}),
                })))
                .await;
            return Ok(TurnOutcome {
                message_id: None,
                user_message_id,
                reply,
                trace: json!({"silent": conv.state}),
            });
        }

        // 2. Understanding, in the context of the conversation.
        let earlier = repo::messages(
            &self.pool,
            conv.id,
            Some(self.settings.history_turns as i64 + 1),
        )
        .await?;
        let earlier: Vec<&StoredMessage> =
            earlier.iter().filter(|m| m.id != user_message_id).collect();
        let history = turns_of(&earlier);
        let shown = last_cards(&earlier);
        // The order the bot's previous reply asked an email for, if it did.
        let asked_email_for = earlier
            .iter()
            .rev()
            .find(|m| m.role == "assistant")
            .and_then(|m| m.meta.pointer("/trace/route"))
            .filter(|r| r["verify"] == "need_email")
            .and_then(|r| r["order"].as_str())
            .map(str::to_owned);
        let graph = self.graph.current();
        let parse = self.parser.parse(&graph, &history, text, None).await?;
        let understood_ms = started.elapsed().as_millis() as u64;
        let intent = IntentView {
            intent: parse.intent,
            slots: parse.slots.clone(),
        };
        let _ = events
            .send(TurnEvent::Intent(Box::new(intent.clone())))
            .await;
        repo::merge_meta(
            &self.pool,
            user_message_id,
            &json!({"intent": parse.intent, "slots": parse.slots, "path": parse.path,
                    "confidence": parse.confidence}),
        )
        .await?;

        // 3. Route, unless the message goes to a person: asked for one, frustrated, a
        // sensitive topic, an unsure service question (support::rules). An answer that would be
        // the bot's latest failure in a row goes to a person instead.
        let order_value = if rules::mentions_damage(text) {
            self.order_value(conv, &parse.slots).await?
        } else {
            None
        };
        let signals = Signals {
            text,
            intent: parse.intent,
            confidence: parse.confidence,
            order_value,
        };
        let mut draft = match rules::check(&signals, &self.escalation) {
            Some(reason) => self.escalate(conv, &reason, lang).await?,
            None => {
                self.route(
                    conv,
                    &graph,
                    &parse,
                    text,
                    lang,
                    &shown,
                    &history,
                    asked_email_for.as_deref(),
                )
                .await?
            }
        };
        if !draft.escalated {
            let (run, rephrased) = self.failure_run(conv.id, &earlier, text).await?;
            let fails = draft.kind == ReplyKind::Clarify;
            if let Some(reason) = rules::repeated_failure(run, fails, rephrased, &self.escalation) {
                draft = self.escalate(conv, &reason, lang).await?;
            }
        }
        let cards_ms = started.elapsed().as_millis() as u64;
        if !draft.cards.is_empty() {
            let _ = events.send(TurnEvent::Cards(draft.cards.clone())).await;
        }

        // 4–5. Text. The template's line goes out at once; when the LLM may write, its sentences
        // follow, each checked before it is sent. A slow, busy or failing model leaves the
        // template's line as the whole text.
        let first_token_ms = Some(started.elapsed().as_millis() as u64);
        let _ = events.send(TurnEvent::Token(draft.text.clone())).await;
        let mut source = "template";
        let mut fallback: Option<String> = None;
        let mut dropped = Vec::new();
        let mut streamed = String::new();
        let mut llm_first_ms: Option<u64> = None;
        let llm_wanted = self.settings.llm_replies
            && self
                .settings
                .llm_languages
                .iter()
                .any(|l| l == lang.as_str())
            && !events.is_closed();
        if let (Some(llm), Some(prompt), true) = (&self.llm, draft.llm_prompt.take(), llm_wanted) {
            let facts = facts_of(&draft.cards, draft.numbers.clone());
            let names = self.catalog_names().await?;
            let pattern = compose::reply_pattern(&draft.cards, lang, &draft.shopper_words);
            let c = compose::stream_checked(
                llm,
                prompt,
                pattern,
                self.settings.reply_max_tokens,
                Duration::from_millis(self.settings.reply_timeout_ms),
                &facts,
                &names,
                events,
                |sentence| TurnEvent::Token(format!(" {sentence}")),
            )
            .await;
            dropped = c.dropped;
            llm_first_ms = c
                .first_sentence_at
                .map(|t| t.saturating_duration_since(started).as_millis() as u64);
            if !c.text.is_empty() {
                streamed = format!(" {}", c.text);
            }
            match (c.error, streamed.is_empty()) {
                (Some(e), _) => fallback = Some(e.to_string()),
                (None, true) => {
                    fallback = Some("the model's text was empty after the check".into())
                }
                (None, false) => source = "llm",
            }
        }
        let text_out = format!("{}{streamed}", draft.text);

        let state = if draft.escalated {
            "waiting_for_agent".to_owned()
        } else {
            conv.state.clone()
        };
        let reply = Reply {
            text: text_out.trim().to_owned(),
            kind: draft.kind,
            cards: draft.cards,
            escalated: draft.escalated,
            intent,
            chips: draft.chips,
            state,
            notice: draft.notice,
        };
        let trace = json!({
            "path": parse.path,
            "confidence": parse.confidence,
            "llm_note": parse.llm_note,
            "route": draft.trace,
            "text_source": source,
            "fallback": fallback,
            "dropped": dropped,
            "ms": {"understood": understood_ms, "cards": cards_ms, "first_token": first_token_ms,
                   "llm_first_sentence": llm_first_ms,
                   "total": started.elapsed().as_millis() as u64},
        });
        // 6. Store the reply with its cards and the parse.
        let message_id = repo::add_message(
            &self.pool,
            conv.id,
            "assistant",
            &reply.text,
            &json!({"kind": reply.kind, "cards": reply.cards, "intent": reply.intent,
                    "escalated": reply.escalated, "chips": reply.chips, "trace": trace}),
        )
        .await?;
        let outcome = TurnOutcome {
            message_id: Some(message_id),
            user_message_id,
            reply,
            trace,
        };
        let _ = events
            .send(TurnEvent::Done(Box::new(outcome.clone())))
            .await;
        Ok(outcome)
    }

    /// The reply while a person has the chat: no words of the bot's own, a status notice at most.
    async fn silent_reply(&self, conv: &Conversation, lang: Lang) -> Result<Reply, ChatError> {
        let notice = if conv.state == "waiting_for_agent" {
            let pos = repo::queue_position(&self.pool, conv.id)
                .await?
                .unwrap_or(1);
            match lang {
                Lang::En => format!(
                    "You're number {pos} in the queue for a person. They will see everything you write here."
                ),
                Lang::Zh => {
                    format!("您在人工客服队列中排第{pos}位，客服会看到您在这里写的所有内容。")
                }
            }
        } else {
            lang.pick(
                "A person from our team has this chat and will reply here.",
                "人工客服正在处理您的对话，会在这里回复您。",
            )
            .to_owned()
        };
        Ok(Reply {
            text: String::new(),
            kind: ReplyKind::Escalation,
            cards: Vec::new(),
            escalated: true,
            intent: IntentView {
                intent: Intent::HumanAgent,
                slots: Slots::default(),
            },
            chips: Vec::new(),
            state: conv.state.clone(),
            notice: Some(notice),
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn route(
        &self,
        conv: &Conversation,
        graph: &KnowledgeGraph,
        parse: &Parse,
        text: &str,
        lang: Lang,
        shown: &[Card],
        history: &[Turn],
        asked_email_for: Option<&str>,
    ) -> Result<Draft, ChatError> {
        let slots = &parse.slots;
        let draft = match parse.intent {
            Intent::ProductSearch => self.search(conv, graph, slots, text, lang, history).await?,
            Intent::Compare => {
                if shown.len() < 2 {
                    self.search(conv, graph, slots, text, lang, history).await?
                } else {
                    compare(text, shown, lang)
                }
            }
            Intent::ProductQuestion => {
                if shown.is_empty() {
                    self.search(conv, graph, slots, text, lang, history).await?
                } else {
                    self.product_question(graph, text, shown, lang).await?
                }
            }
            Intent::OrderStatus => {
                self.order_status(conv, slots, text, lang, asked_email_for)
                    .await?
            }
            Intent::ReturnRefund | Intent::ShippingInfo => {
                policy_answer(graph, parse.intent, text, shown, lang)
            }
            Intent::HumanAgent => self.escalate(conv, &Reason::Asked, lang).await?,
            Intent::Greeting => {
                let mut d = Draft::new(
                    ReplyKind::Answer,
                    lang.pick(
                        "Hi! I can help you find products, check on an order, or answer questions about returns and delivery. What are you looking for?",
                        "您好！我可以帮您找商品、查询订单，或者解答退货和配送方面的问题。请问您想找什么？",
                    ),
                );
                d.chips = starter_chips(lang);
                d
            }
            Intent::OutOfScope => {
                let mut d = Draft::new(
                    ReplyKind::Refusal,
                    lang.pick(
                        "Sorry, I can't help with that. I can help you shop here: finding products, your own orders, returns and delivery.",
                        "抱歉，这个我帮不了您。我可以帮您在本店购物：找商品、查询您自己的订单、退货和配送。",
                    ),
                );
                d.chips = starter_chips(lang);
                d.trace = json!({"refused": true});
                d
            }
        };
        Ok(draft)
    }

    async fn search(
        &self,
        conv: &Conversation,
        graph: &KnowledgeGraph,
        slots: &Slots,
        text: &str,
        lang: Lang,
        history: &[Turn],
    ) -> Result<Draft, ChatError> {
        // Too vague to rank well: no product type, brand, facet or use the graph knows.
        let named = graph.resolve_any(text).iter().any(|m| {
            m.nodes.iter().any(|n| {
                matches!(
                    n.kind,
                    NodeKind::Category | NodeKind::Brand | NodeKind::Concept | NodeKind::Attribute
                )
            })
        });
        let stated = slots.category.is_some()
            || slots.brand.is_some()
            || slots.color.is_some()
            || slots.material.is_some()
            || slots.occasion.is_some();
        if !named && !stated && content_words(text) < 2 {
            let mut d = Draft::new(
                ReplyKind::Clarify,
                lang.pick(
                    "Happy to help! What kind of product are you looking for, and who is it for?",
                    "很乐意帮忙！请问您想找哪类商品？是给谁买的？",
                ),
            );
            d.chips = self.category_chips(lang).await?;
            d.trace = json!({"clarify": "no product type, brand, facet or occasion in the message or the conversation"});
            return Ok(d);
        }
        // The query: what the dialogue has established, then the message in its own words.
        let mut words: Vec<&str> = Vec::new();
        for v in [
            &slots.color,
            &slots.material,
            &slots.brand,
            &slots.occasion,
            &slots.gender,
            &slots.category,
        ]
        .into_iter()
        .flatten()
        {
            if !text.to_lowercase().contains(&v.to_lowercase()) {
                words.push(v);
            }
        }
        let query = if words.is_empty() {
            text.to_owned()
        } else {
            format!("{} {text}", words.join(" "))
        };
        let query: String = query
            .chars()
            .take(crate::ranking::MAX_QUERY_CHARS)
            .collect();
        let store_currency = "INR";
        // A budget in another currency cannot be compared with the catalog's prices.
        let foreign = slots
            .currency
            .as_deref()
            .is_some_and(|c| c != store_currency);
        let (min_price, max_price) = if foreign {
            (None, None)
        } else {
            (slots.min_price, slots.max_price)
        };
        let affinity = crate::ranking::feedback::affinity(&self.pool, conv.id)
            .await
            .unwrap_or_default();
        let results = {
            let search = self.search.clone();
            let graph = self.graph.current();
            let limit = self.settings.cards * 3;
            let query = query.clone();
            tokio::task::spawn_blocking(move || {
                search.search_in_dialogue(&graph, &query, limit, &affinity, min_price, max_price)
            })
            .await
            .map_err(|e| ChatError::Internal(format!("the search task failed: {e}")))?
        };
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, query = %query, "search failed in a chat turn");
                Vec::new()
            }
        };
        // The budget is a hard filter, whatever the ranker did.
        let within = |p: f64| min_price.is_none_or(|m| p >= m) && max_price.is_none_or(|m| p <= m);
        let mut results: Vec<_> = results.into_iter().filter(|r| within(r.price)).collect();
        // The product type the dialogue settled on: results of that category (or below it) go
        // first, and others only when none is left ("red ballet flats" shows no red saree).
        let mut category_filter = "none";
        if let Some(category) = slots.category.as_deref() {
            let wanted: HashSet<String> = graph
                .resolve_any(category)
                .iter()
                .flat_map(|m| m.nodes.iter())
                .filter(|n| n.kind == NodeKind::Category)
                .map(|n| n.id.clone())
                .collect();
            if !wanted.is_empty() {
                let (of_type, other): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| {
                    graph
                        .facets(&r.id)
                        .is_some_and(|f| f.categories.iter().any(|c| wanted.contains(*c)))
                });
                category_filter = if of_type.is_empty() {
                    "relaxed: no result of the type"
                } else {
                    "applied"
                };
                results = if of_type.is_empty() { other } else { of_type };
            }
        }
        results.truncate(self.settings.cards);
        let ids: Vec<String> = results.iter().map(|r| r.id.clone()).collect();
        let (mut cards, _) = Card::for_ids(&self.pool, &ids).await?;
        for c in &mut cards {
            if let Some(r) = results.iter().find(|r| r.id == c.id) {
                c.why = r.why.clone();
            }
        }
        let mut desc_slots = slots.clone();
        if foreign {
            desc_slots.min_price = None;
            desc_slots.max_price = None;
        }
        let desc = describe_search(&desc_slots, lang, store_currency);
        let mut numbers: Vec<f64> = [slots.min_price, slots.max_price]
            .into_iter()
            .flatten()
            .collect();
        numbers.push(cards.len() as f64);
        if cards.is_empty() {
            let mut d = Draft::new(
                ReplyKind::Clarify,
                match lang {
                    Lang::En => format!(
                        "I couldn't find {desc} in our catalog. Would a different budget, colour or type help?"
                    ),
                    Lang::Zh => format!(
                        "没有找到符合条件的商品（{desc}）。要不要换个预算、颜色或品类试试？"
                    ),
                },
            );
            d.chips = self.category_chips(lang).await?;
            d.chips.push(reply::human_chip(lang));
            d.trace = json!({"query": query, "results": 0, "min_price": min_price, "max_price": max_price});
            return Ok(d);
        }
        let mut head = match lang {
            Lang::En if cards.len() == 1 => format!("Here is 1 option: {desc}."),
            Lang::En => format!("Here are {} options: {desc}.", cards.len()),
            Lang::Zh => format!("为您找到{}件商品：{desc}。", cards.len()),
        };
        if foreign {
            head.push_str(lang.pick(
                " Prices here are in rupees, so I couldn't apply a budget in another currency.",
                " 本店以卢比标价，无法按其他货币的预算筛选。",
            ));
        }
        let mut d = Draft::new(ReplyKind::Products, head);
        let shopper = last_user_words(history, text);
        d.llm_prompt = Some(compose::product_prompt(&shopper, &cards, lang));
        d.shopper_words = shopper;
        d.chips = reply::price_chips(&cards, lang);
        d.chips
            .push(lang.pick("Compare the first two", "比较前两个").to_owned());
        d.numbers = numbers;
        d.trace = json!({"query": query, "results": cards.len(), "min_price": min_price,
                         "max_price": max_price, "category_filter": category_filter});
        d.cards = cards;
        Ok(d)
    }

    async fn category_chips(&self, lang: Lang) -> Result<Vec<String>, ChatError> {
        let roots = crate::catalog::repo::top_categories(&self.pool).await?;
        let graph = self.graph.current();
        Ok(roots
            .into_iter()
            .take(4)
            .map(|(root, _)| {
                if lang == Lang::Zh {
                    // The category's Chinese label, when the graph has one.
                    if let Some(zh) = graph
                        .resolve_any(&root)
                        .first()
                        .and_then(|m| m.nodes.first())
                        .and_then(|n| n.label_zh.clone())
                    {
                        return zh;
                    }
                }
                root
            })
            .collect())
    }

    async fn product_question(
        &self,
        graph: &KnowledgeGraph,
        text: &str,
        shown: &[Card],
        lang: Lang,
    ) -> Result<Draft, ChatError> {
        let picked = refs::resolve(text, shown);
        let card = match (picked.first(), shown.len()) {
            (Some(&i), _) => &shown[i],
            (None, 1) => &shown[0],
            (None, _) => {
                let mut d = Draft::new(
                    ReplyKind::Clarify,
                    lang.pick(
                        "Which one do you mean? You can say \"the first one\", \"the second one\", and so on.",
                        "您指的是哪一个？可以说“第一个”“第二个”等。",
                    ),
                );
                d.chips = (1..=shown.len().min(3))
                    .map(|i| match lang {
                        Lang::En => {
                            ["The first one", "The second one", "The third one"][i - 1].to_owned()
                        }
                        Lang::Zh => ["第一个", "第二个", "第三个"][i - 1].to_owned(),
                    })
                    .collect();
                d.trace =
                    json!({"clarify": "the question does not say which shown product it is about"});
                return Ok(d);
            }
        };
        let Some(product) = crate::catalog::repo::get_product(&self.pool, &card.id).await? else {
            return Ok(Draft::new(
                ReplyKind::Answer,
                lang.pick(
                    "Sorry, that product is no longer in our catalog.",
                    "抱歉，该商品已不在本店目录中。",
                ),
            ));
        };
        let fresh = Card {
            why: card.why.clone(),
            ..Card::from_product(&product, 1)
        };
        let lower = text.to_lowercase();
        // Specifications the question names come first; otherwise a few of them.
        let mut specs: Vec<(String, String)> = product
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        specs.sort_by_key(|(k, _)| !lower.contains(&k.to_lowercase()));
        let asked: Vec<&(String, String)> = specs
            .iter()
            .filter(|(k, _)| lower.contains(&k.to_lowercase()))
            .collect();
        let asked_any = !asked.is_empty();
        let shown_specs: Vec<&(String, String)> = if asked_any {
            asked
        } else {
            specs.iter().take(5).collect()
        };
        let listed: Vec<String> = shown_specs
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let name = fresh.name_in(lang).to_owned();
        let stock = match (fresh.in_stock, lang) {
            (true, Lang::En) => "in stock",
            (false, Lang::En) => "out of stock",
            (true, Lang::Zh) => "有货",
            (false, Lang::Zh) => "缺货",
        };
        let mut text_out = match lang {
            Lang::En => format!("{name} costs {} and is {stock}.", fresh.price_text),
            Lang::Zh => format!("{name}售价{}，目前{stock}。", fresh.price_text),
        };
        if let Some(b) = &product.brand {
            text_out.push_str(&match lang {
                Lang::En => format!(" Brand: {b}."),
                Lang::Zh => format!(" 品牌：{b}。"),
            });
        }
        if !listed.is_empty() {
            text_out.push_str(&match lang {
                Lang::En => format!(" Details: {}.", listed.join("; ")),
                Lang::Zh => format!(" 参数：{}。", listed.join("；")),
            });
        } else if !product.description.trim().is_empty() {
            let desc: String = product.description.chars().take(240).collect();
            text_out.push(' ');
            text_out.push_str(desc.trim());
        }
        // A question about returns or warranty gets this product's own policy.
        if let Some(facts) = graph.facts(&product.id) {
            let wants = |words: &[&str]| words.iter().any(|w| lower.contains(w));
            let kind = if wants(&["return", "refund", "exchange", "退", "换"]) {
                Some("returns")
            } else if wants(&["warranty", "guarantee", "保修", "质保"]) {
                Some("warranty")
            } else {
                None
            };
            if let Some(p) = kind.and_then(|k| facts.policies.iter().find(|p| p.kind == k)) {
                text_out.push(' ');
                text_out.push_str(&policy_text(p, lang));
            }
        }
        if !asked_any && !specs.is_empty() && question_is_specific(&lower) {
            text_out.push_str(lang.pick(
                " I don't have more detail than this in the catalog; a person from our team can check for you.",
                " 目录中没有更多信息了；可以转人工客服帮您确认。",
            ));
        }
        let mut d = Draft::new(ReplyKind::Answer, text_out);
        d.chips = vec![reply::human_chip(lang)];
        d.trace = json!({"product": product.id, "specs_asked": asked_any});
        d.cards = vec![fresh];
        Ok(d)
    }

    async fn order_status(
        &self,
        conv: &Conversation,
        slots: &Slots,
        text: &str,
        lang: Lang,
        asked_email_for: Option<&str>,
    ) -> Result<Draft, ChatError> {
        let order_id = slots.order_id.as_deref();
        let email = customer::email_in(text);
        // A logged-in customer (signed token): their own orders only.
        if let Some(customer_id) = conv.customer_id.as_deref() {
            if let Some(id) = order_id {
                return Ok(
                    match orders::order_of_customer(&self.pool, customer_id, id).await? {
                        Some(o) => order_draft(&o, lang, "customer_token"),
                        None => Draft::new(
                            ReplyKind::Answer,
                            match lang {
                                Lang::En => format!(
                                    "I can't find an order {id} on your account. Please check the number in your order confirmation."
                                ),
                                Lang::Zh => format!(
                                    "您的账户下没有找到订单{id}，请核对订单确认邮件中的订单号。"
                                ),
                            },
                        ),
                    },
                );
            }
            let recent = orders::recent_orders(&self.pool, customer_id, 3).await?;
            return Ok(match recent.split_first() {
                Some((latest, others)) => {
                    let mut d = order_draft(latest, lang, "customer_token");
                    d.chips = others.iter().map(|o| o.id.clone()).collect();
                    d
                }
                None => Draft::new(
                    ReplyKind::Answer,
                    lang.pick(
                        "I don't see any orders on your account yet.",
                        "您的账户下还没有订单。",
                    ),
                ),
            });
        }
        // A guest: an order proved in this conversation, or proof now.
        if let Some(id) = order_id {
            let proved = conv
                .verified_orders
                .iter()
                .any(|v| v.eq_ignore_ascii_case(id));
            if proved && let Some(o) = orders::order_by_verified_id(&self.pool, id).await? {
                return Ok(order_draft(&o, lang, "proved_earlier"));
            }
            // The email proves the order stated with it: in this message, or the one the bot
            // just asked an email for. An order id carried from further back proves nothing.
            let stated_now = text.to_uppercase().contains(&id.to_uppercase());
            if let Some(email) = email.filter(|_| stated_now || asked_email_for == Some(id)) {
                if conv.verify_failures >= self.settings.max_verify_failures {
                    let mut d = Draft::new(
                        ReplyKind::Answer,
                        lang.pick(
                            "That's too many attempts for me to check orders in this chat. A person from our team can help you.",
                            "本次对话中核对订单的尝试次数过多，我无法继续核对。可以转人工客服为您处理。",
                        ),
                    );
                    d.chips = vec![reply::human_chip(lang)];
                    d.trace = json!({"verify": "locked"});
                    return Ok(d);
                }
                return Ok(
                    match orders::order_by_email(&self.pool, id, &email).await? {
                        Some(o) => {
                            repo::add_verified_order(&self.pool, conv.id, &o.id).await?;
                            order_draft(&o, lang, "order_id_and_email")
                        }
                        None => {
                            repo::add_verify_failure(&self.pool, conv.id).await?;
                            let mut d = Draft::new(
                            ReplyKind::Answer,
                            lang.pick(
                                "I couldn't match that order number with that email address. Please check both and try again.",
                                "订单号和邮箱无法匹配，请核对后再试。",
                            ),
                        );
                            d.trace = json!({"verify": "failed"});
                            d
                        }
                    },
                );
            }
            let mut d = Draft::new(
                ReplyKind::Answer,
                match lang {
                    Lang::En => format!(
                        "To show you order {id}, I need the email address on the account it was placed with."
                    ),
                    Lang::Zh => format!("为了查看订单{id}，请提供下单账户的邮箱地址。"),
                },
            );
            d.trace = json!({"verify": "need_email", "order": id});
            return Ok(d);
        }
        let mut d = Draft::new(
            ReplyKind::Answer,
            lang.pick(
                "I can check that for you. Please send your order number (for example ORD-123456) and the email address you ordered with.",
                "我可以帮您查询。请发送您的订单号（例如 ORD-123456）和下单时使用的邮箱地址。",
            ),
        );
        d.chips = vec![reply::human_chip(lang)];
        d.trace = json!({"verify": "need_order_and_email"});
        Ok(d)
    }

    async fn escalate(
        &self,
        conv: &Conversation,
        reason: &Reason,
        lang: Lang,
    ) -> Result<Draft, ChatError> {
        let rule = serde_json::to_value(reason).unwrap_or(Value::Null);
        let state = repo::escalate(&self.pool, conv.id, &reason.describe(), &rule).await?;
        let pos = repo::queue_position(&self.pool, conv.id)
            .await?
            .unwrap_or(1);
        let why = match (reason, lang) {
            (Reason::Asked, _) => "",
            (Reason::Frustration { .. } | Reason::RepeatedFailure { .. }, Lang::En) => {
                "Sorry I haven't been more helpful. "
            }
            (Reason::Frustration { .. } | Reason::RepeatedFailure { .. }, Lang::Zh) => {
                "抱歉没能帮上忙。"
            }
            (Reason::Sensitive { .. }, Lang::En) => "This needs a person from our team. ",
            (Reason::Sensitive { .. }, Lang::Zh) => "这个问题需要人工客服处理。",
            (Reason::LowConfidence { .. }, Lang::En) => "I want to get this right for you. ",
            (Reason::LowConfidence { .. }, Lang::Zh) => "为了准确处理您的问题，",
        };
        let mut d = Draft::new(
            ReplyKind::Escalation,
            match lang {
                Lang::En => format!(
                    "{why}I'm handing this chat to a person from our team. You're number {pos} in the queue, and they'll see our conversation so far."
                ),
                Lang::Zh => format!(
                    "{why}正在为您转接人工客服。您在队列中排第{pos}位，客服会看到我们之前的对话。"
                ),
            },
        );
        d.escalated = true;
        d.numbers = vec![pos as f64];
        d.notice = Some(
            lang.pick("Waiting for a person to join…", "正在为您转接人工客服…")
                .to_owned(),
        );
        d.trace = json!({"escalation": reason.describe(), "rule": rule, "state": state});
        Ok(d)
    }

    /// How many of the bot's replies in a row, ending with the latest, failed: a clarifying
    /// question (which includes "nothing found"), a thumbs down, or (the latest only) a reply the
    /// shopper's new message rephrases their way around. A person's message ends the run. Also
    /// returns whether `text` rephrases the shopper's previous message.
    async fn failure_run(
        &self,
        conversation: Uuid,
        earlier: &[&StoredMessage],
        text: &str,
    ) -> Result<(usize, bool), ChatError> {
        let rephrased = earlier
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .is_some_and(|m| rules::rephrases(&m.text, text));
        let down = repo::thumbs_down(&self.pool, conversation).await?;
        let mut run = 0;
        for m in earlier.iter().rev() {
            match m.role.as_str() {
                "user" => continue,
                "assistant" => {
                    let failed = m.kind.as_deref() == Some("clarify")
                        || down.contains(&m.id)
                        || (run == 0 && rephrased);
                    if !failed {
                        break;
                    }
                    run += 1;
                }
                _ => break,
            }
        }
        Ok((run, rephrased))
    }

    /// The value of the order the conversation is about, when the shopper may see it: the order
    /// named in the message (or proved earlier), else a logged-in customer's latest.
    async fn order_value(
        &self,
        conv: &Conversation,
        slots: &Slots,
    ) -> Result<Option<f64>, ChatError> {
        use rust_decimal::prelude::ToPrimitive;
        let named = slots
            .order_id
            .clone()
            .or_else(|| conv.verified_orders.last().cloned());
        let order = match (&conv.customer_id, named) {
            (Some(c), Some(id)) => orders::order_of_customer(&self.pool, c, &id).await?,
            (Some(c), None) => orders::recent_orders(&self.pool, c, 1).await?.pop(),
            (None, Some(id))
                if conv
                    .verified_orders
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(&id)) =>
            {
                orders::order_by_verified_id(&self.pool, &id).await?
            }
            (None, _) => None,
        };
        Ok(order.and_then(|o| o.total.to_f64()))
    }

    /// The catalog's product names and brands, rebuilt when the catalog changes.
    async fn catalog_names(&self) -> Result<Arc<CatalogNames>, ChatError> {
        if let Ok(guard) = self.names.lock()
            && let Some(c) = guard.as_ref()
            && c.checked.elapsed() < CATALOG_NAMES_TTL
        {
            return Ok(c.names.clone());
        }
        let fingerprint = crate::catalog::repo::fingerprint(&self.pool).await?;
        if let Ok(mut guard) = self.names.lock()
            && let Some(c) = guard.as_mut()
            && c.fingerprint == fingerprint
        {
            c.checked = Instant::now();
            return Ok(c.names.clone());
        }
        let rows: Vec<(String, Option<String>, Option<String>)> =
            sqlx::query_as("select title, title_zh, brand from products")
                .fetch_all(&self.pool)
                .await?;
        let names = Arc::new(CatalogNames::new(
            rows.into_iter()
                .flat_map(|(t, z, b)| [Some(t), z, b])
                .flatten(),
        ));
        if let Ok(mut guard) = self.names.lock() {
            *guard = Some(NamesCache {
                fingerprint,
                checked: Instant::now(),
                names: names.clone(),
            });
        }
        Ok(names)
    }
}

/// Permission to run one turn of a session (it is busy until this is dropped).
pub struct TurnTicket {
    conv: Conversation,
    _guard: BusyGuard,
}

impl TurnTicket {
    pub fn conversation(&self) -> &Conversation {
        &self.conv
    }
}

/// The conversation as dialogue understanding reads it: assistant turns that showed cards list
/// them with their prices, as a shopper saw them.
fn turns_of(messages: &[&StoredMessage]) -> Vec<Turn> {
    messages
        .iter()
        .filter_map(|m| {
            let role = match m.role.as_str() {
                "user" => Role::User,
                "assistant" | "agent" => Role::Assistant,
                _ => return None,
            };
            let mut text = m.text.clone();
            for c in &m.cards {
                text.push_str(&format!("\n{}. {} {}", c.position, c.name, c.price_text));
            }
            Some(Turn { role, text })
        })
        .collect()
}

/// The cards of the latest assistant message that showed any.
fn last_cards(messages: &[&StoredMessage]) -> Vec<Card> {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "assistant" && !m.cards.is_empty())
        .map(|m| m.cards.clone())
        .unwrap_or_default()
}

/// The shopper's request for the prompt: this message, after the previous one when it refines it.
fn last_user_words(history: &[Turn], text: &str) -> String {
    match history.iter().rev().find(|t| t.role == Role::User) {
        Some(prev) if text.chars().count() < 40 => format!("{} / {text}", prev.text),
        _ => text.to_owned(),
    }
}

/// Words that carry meaning (not greetings, pronouns or fillers); CJK characters count in pairs.
fn content_words(text: &str) -> usize {
    const FILLER: &[&str] = &[
        "i",
        "me",
        "my",
        "want",
        "need",
        "looking",
        "for",
        "to",
        "buy",
        "a",
        "an",
        "the",
        "some",
        "something",
        "anything",
        "show",
        "please",
        "can",
        "you",
        "help",
        "find",
        "get",
        "nice",
        "good",
        "thing",
        "things",
        "stuff",
        "product",
        "products",
        "item",
        "items",
        "hi",
        "hello",
        "what",
        "do",
        "have",
        "is",
        "are",
        "there",
        "any",
        "recommend",
        "suggest",
        "me.",
        "it",
    ];
    let latin = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !w.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)))
        .filter(|w| !FILLER.contains(w))
        .count();
    const ZH_FILLER: &str = "我想要买找一个些东西点推荐什么有吗呢的给帮看请你好";
    let cjk = text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c) && !ZH_FILLER.contains(*c))
        .count();
    latin + cjk / 2
}

/// Whether a question asks about a specific property (so "no detail" deserves a word).
fn question_is_specific(lower: &str) -> bool {
    [
        "waterproof",
        "size",
        "battery",
        "material",
        "fabric",
        "weight",
        "dimension",
        "colour",
        "color",
        "防水",
        "尺码",
        "材质",
        "电池",
        "重量",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

fn compare(text: &str, shown: &[Card], lang: Lang) -> Draft {
    let mut picked = refs::resolve(text, shown);
    if picked.len() < 2 {
        picked = (0..shown.len().min(3)).collect();
    }
    let cards: Vec<Card> = picked
        .iter()
        .enumerate()
        .map(|(i, &p)| Card {
            position: i + 1,
            ..shown[p].clone()
        })
        .collect();
    let mut lines: Vec<String> = cards
        .iter()
        .map(|c| {
            let brand = c.brand.as_deref().unwrap_or("");
            let leaf = c.category.rsplit(" > ").next().unwrap_or("");
            match lang {
                Lang::En => format!(
                    "{}: {}{}{}",
                    c.name_in(lang),
                    c.price_text,
                    if brand.is_empty() {
                        String::new()
                    } else {
                        format!(", by {brand}")
                    },
                    if leaf.is_empty() {
                        String::new()
                    } else {
                        format!(", {leaf}")
                    }
                ),
                Lang::Zh => format!(
                    "{}：{}{}",
                    c.name_in(lang),
                    c.price_text,
                    if brand.is_empty() {
                        String::new()
                    } else {
                        format!("，品牌{brand}")
                    }
                ),
            }
        })
        .collect();
    let cheapest = cards.iter().min_by(|a, b| a.price.total_cmp(&b.price));
    let dearest = cards.iter().max_by(|a, b| a.price.total_cmp(&b.price));
    let mut numbers = Vec::new();
    if let (Some(lo), Some(hi)) = (cheapest, dearest)
        && hi.price > lo.price
    {
        let diff = hi.price - lo.price;
        numbers.push(diff);
        lines.push(match lang {
            Lang::En => format!(
                "{} is the cheapest, {} less than {}.",
                lo.name_in(lang),
                money(diff, &lo.currency),
                hi.name_in(lang)
            ),
            Lang::Zh => format!(
                "{}最便宜，比{}便宜{}。",
                lo.name_in(lang),
                hi.name_in(lang),
                money(diff, &lo.currency)
            ),
        });
    }
    let head = lang.pick("Side by side:", "对比如下：");
    let mut d = Draft::new(ReplyKind::Products, format!("{head}\n{}", lines.join("\n")));
    d.numbers = numbers;
    d.trace = json!({"compared": cards.iter().map(|c| c.id.clone()).collect::<Vec<_>>()});
    d.cards = cards;
    d
}

/// A policy quoted in the shopper's language: its label, then its own text.
fn policy_text(p: &PolicyFact, lang: Lang) -> String {
    match (lang, &p.text_zh) {
        (Lang::Zh, Some(zh)) => format!("{}：{zh}", p.label_zh.as_deref().unwrap_or(&p.label_en)),
        _ => format!("{}: {}", p.label_en, p.text_en),
    }
}

/// The numbers a policy states (days, fees), which its quoted text may repeat.
fn policy_numbers(p: &PolicyFact) -> Vec<f64> {
    p.facts
        .as_object()
        .map(|o| o.values().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn policy_answer(
    graph: &KnowledgeGraph,
    intent: Intent,
    text: &str,
    shown: &[Card],
    lang: Lang,
) -> Draft {
    let kinds: &[&str] = if intent == Intent::ShippingInfo {
        &["shipping"]
    } else {
        &["returns", "payment", "warranty"]
    };
    // 1. A policy the message names (labels and synonyms, EN and ZH).
    let named: Vec<PolicyFact> = graph
        .resolve_any(text)
        .iter()
        .flat_map(|m| m.nodes.iter())
        .filter(|n| n.kind == NodeKind::Policy)
        .filter_map(|n| graph.policy(&n.id))
        .collect();
    let mut chosen = named
        .iter()
        .find(|p| kinds.contains(&p.kind.as_str()))
        .or(named.first())
        .cloned();
    let mut why = "named in the message";
    // 2. The policy of a product the message points at.
    if chosen.is_none()
        && let Some(&i) = refs::resolve(text, shown).first()
        && let Some(f) = graph.facts(&shown[i].id)
    {
        chosen = f
            .policies
            .into_iter()
            .find(|p| kinds.contains(&p.kind.as_str()));
        why = "applies to the product the shopper pointed at";
    }
    let all: Vec<PolicyFact> = graph
        .policies()
        .into_iter()
        .filter(|p| kinds.contains(&p.kind.as_str()))
        .collect();
    // 3. The general policy of the kind (the first store-wide one).
    if chosen.is_none() {
        let store_wide: Vec<String> = graph.store_policies().into_iter().map(|p| p.id).collect();
        chosen = all
            .iter()
            .find(|p| p.kind == kinds[0] && store_wide.contains(&p.id))
            .or_else(|| all.iter().find(|p| p.kind == kinds[0]))
            .cloned();
        why = "the store-wide policy of the kind asked about";
    }
    let Some(policy) = chosen else {
        let mut d = Draft::new(
            ReplyKind::Policy,
            lang.pick(
                "I don't have a written policy on that. A person from our team can answer it.",
                "我这里没有这方面的书面政策，可以转人工客服为您解答。",
            ),
        );
        d.chips = vec![reply::human_chip(lang)];
        return d;
    };
    let mut d = Draft::new(ReplyKind::Policy, policy_text(&policy, lang));
    d.numbers = policy_numbers(&policy);
    d.chips = all
        .iter()
        .filter(|p| p.id != policy.id)
        .take(3)
        .map(|p| match lang {
            Lang::Zh => p.label_zh.clone().unwrap_or_else(|| p.label_en.clone()),
            Lang::En => p.label_en.clone(),
        })
        .collect();
    d.trace = json!({"policy": policy.id, "why": why});
    d
}

fn order_draft(o: &OrderView, lang: Lang, proof: &str) -> Draft {
    let date = |d: chrono::NaiveDate| match lang {
        Lang::En => d.format("%-d %b %Y").to_string(),
        Lang::Zh => d.format("%Y年%-m月%-d日").to_string(),
    };
    let items: Vec<String> = o
        .lines
        .iter()
        .map(|l| {
            if l.quantity > 1 {
                format!("{} × {}", l.title, l.quantity)
            } else {
                l.title.clone()
            }
        })
        .collect();
    let last = o.history.last();
    let when = last.map(|h| date(h.at.date_naive()));
    let note = last.and_then(|h| h.note.clone());
    let status_en = o.status.replace('_', " ");
    let status_zh = match o.status.as_str() {
        "placed" => "已下单",
        "packed" => "已打包",
        "shipped" => "已发货",
        "out_for_delivery" => "派送中",
        "delivered" => "已签收",
        "cancelled" => "已取消",
        "return_requested" => "已申请退货",
        "returned" => "已退货",
        "refunded" => "已退款",
        _ => "处理中",
    };
    let mut text = match lang {
        Lang::En => format!(
            "Order {} ({}): {status_en}{}.",
            o.id,
            items.join(", "),
            when.as_ref()
                .map(|w| format!(" on {w}"))
                .unwrap_or_default()
        ),
        Lang::Zh => format!(
            "订单{}（{}）：{}{status_zh}。",
            o.id,
            items.join("、"),
            when.as_ref().map(|w| format!("{w} ")).unwrap_or_default()
        ),
    };
    if let Some(n) = note {
        text.push_str(&match lang {
            Lang::En => format!(" Note: {n}."),
            Lang::Zh => format!(" 备注：{n}。"),
        });
    }
    let moving = matches!(
        o.status.as_str(),
        "placed" | "packed" | "shipped" | "out_for_delivery"
    );
    if moving {
        if let (Some(c), Some(t)) = (&o.carrier, &o.tracking_number) {
            text.push_str(&match lang {
                Lang::En => format!(" Carrier: {c}, tracking number {t}."),
                Lang::Zh => format!(" 承运商：{c}，运单号{t}。"),
            });
        }
        if let Some(d) = o.expected_delivery {
            text.push_str(&match lang {
                Lang::En => format!(" Expected by {}.", date(d)),
                Lang::Zh => format!(" 预计{}送达。", date(d)),
            });
        }
    }
    let mut d = Draft::new(ReplyKind::Answer, text);
    d.chips = vec![
        lang.pick("Return policy", "退货政策").to_owned(),
        reply::human_chip(lang),
    ];
    d.trace = json!({"order": o.id, "proof": proof});
    d
}

fn starter_chips(lang: Lang) -> Vec<String> {
    match lang {
        Lang::En => vec![
            "Gifts under ₹1,000".into(),
            "Where is my order?".into(),
            "Return policy".into(),
            "Talk to a human".into(),
        ],
        Lang::Zh => vec![
            "1000元以内的礼物".into(),
            "我的订单到哪了？".into(),
            "退货政策".into(),
            "转人工".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vague_messages_have_few_content_words() {
        assert_eq!(content_words("I want to buy something"), 0);
        assert_eq!(content_words("show me something nice"), 0);
        assert!(content_words("waterproof hiking boots") >= 2);
        assert_eq!(content_words("我想买点东西"), 0);
        assert!(content_words("蓝牙耳机") >= 2);
    }
}
