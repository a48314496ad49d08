// The support agents' dashboard (/agent): the queue, one open conversation (transcript, reply,
// canned replies, product cards), its summary, facts, customer and internal notes, hand-back and
// close. Live updates come from /agent/api/events as wake-ups; every wake-up is followed by a
// refetch. No framework; shopper- and agent-supplied text is only ever set as text, never as HTML.
(function () {
  "use strict";

  const LOGIN = "/kg/login?next=/agent";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const CSRF = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const IS_ADMIN = document.body.dataset.agentRole === "admin";

  const $ = (sel) => document.querySelector(sel);
  const tid = (id) => document.querySelector('[data-testid="' + id + '"]');

  const ui = {
    error: tid("agent-error"),
    info: $("#ag-info"),
    live: $("#ag-live"),
    queueList: $("#ag-queue-list"),
    queueEmpty: $("#ag-queue-empty"),
    queueCount: $("#ag-queue-count"),
    placeholder: $("#ag-placeholder"),
    conv: $("#ag-conv"),
    side: $("#ag-side"),
    reason: $("#ag-conv-reason"),
    meta: $("#ag-conv-meta"),
    transcript: tid("agent-transcript"),
    replyForm: $("#ag-reply-form"),
    reply: tid("agent-reply-input"),
    send: tid("agent-send"),
    canned: tid("agent-canned"),
    cannedAdmin: $("#ag-canned-admin"),
    cannedForm: $("#ag-canned-form"),
    cannedList: $("#ag-canned-list"),
    productSearch: tid("agent-product-search"),
    productResults: $("#ag-product-results"),
    summary: tid("agent-summary"),
    quote: document.getElementById("ag-quote"),
    facts: tid("agent-facts"),
    customer: $("#ag-customer"),
    orders: $("#ag-orders"),
    noteList: $("#ag-note-list"),
    noteForm: $("#ag-note-form"),
    noteInput: tid("agent-note-input"),
    noteAdd: tid("agent-note-add"),
    handback: tid("agent-handback"),
    resolution: tid("agent-resolution"),
    close: tid("agent-close"),
  };

  // The open conversation: its id, the largest message id shown, the ids shown (dedupe), its state.
  let open = null;
  let canned = [];

  // ---------- small helpers ----------

  // Builds an element; string/number children become text nodes (never parsed as HTML).
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "className") node.className = v;
        else if (k === "dataset") Object.assign(node.dataset, v);
        else if (k === "text") node.textContent = String(v);
        else node.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  // Only relative paths and http(s) URLs are used as links or image sources.
  function safeUrl(u) {
    if (typeof u !== "string" || !u) return null;
    if (u.startsWith("/") && !u.startsWith("//")) return u;
    try {
      const parsed = new URL(u, location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function hhmm(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return "";
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function ago(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return "";
    const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return d.toLocaleDateString();
  }

  // "42s", "3m 05s", "1h 02m".
  function duration(secs) {
    secs = Math.max(0, Math.floor(secs));
    const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
    const two = (n) => String(n).padStart(2, "0");
    if (h) return h + "h " + two(m) + "m";
    if (m) return m + "m " + two(s) + "s";
    return s + "s";
  }

  function showError(msg) {
    ui.error.textContent = msg;
    ui.error.hidden = false;
  }

  function clearError() {
    ui.error.textContent = "";
    ui.error.hidden = true;
  }

  let infoTimer = 0;
  function showInfo(msg) {
    ui.info.textContent = msg;
    ui.info.hidden = false;
    clearTimeout(infoTimer);
    infoTimer = setTimeout(() => { ui.info.hidden = true; }, 6000);
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // A 401 navigates away; this error is then swallowed rather than shown.
  class Redirecting extends Error {}

  async function api(method, path, body) {
    const opts = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method === "POST") {
      opts.headers["Content-Type"] = "application/json";
      opts.headers["X-CSRF-Token"] = CSRF;
      opts.body = JSON.stringify(body || {});
    }
    let r;
    try {
      r = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, "network", "Network error: the server could not be reached.");
    }
    if (r.status === 401) {
      location.href = LOGIN;
      throw new Redirecting("login");
    }
    let data = null;
    try {
      data = await r.json();
    } catch (e) {
      data = null;
    }
    if (!r.ok) {
      const err = data && data.error;
      throw new ApiError(r.status, err && err.code, (err && err.message) || "Request failed (HTTP " + r.status + ").");
    }
    return data || {};
  }

  // Shows an API error in the status area (a pending login redirect shows nothing).
  function report(e) {
    if (e instanceof Redirecting) return;
    showError(e && e.message ? e.message : String(e));
  }

  // Wraps an async refresh so overlapping calls coalesce: one run at a time, at most one queued.
  function coalesced(fn) {
    let running = null, again = false;
    const run = async () => {
      if (running) { again = true; return running; }
      running = (async () => {
        try {
          do { again = false; await fn(); } while (again);
        } finally {
          running = null;
        }
      })();
      return running;
    };
    return run;
  }

  // ---------- shared renderers ----------

  function renderCard(card) {
    const href = safeUrl(card.url);
    const img = safeUrl(card.image);
    const body = el("div", { className: "ag-card-body" },
      el("span", { className: "ag-card-name", text: card.name || "" }),
      el("span", { className: "ag-card-price", text: card.price_text || "" }),
      card.in_stock === false ? el("span", { className: "ag-card-stock", text: "out of stock" }) : null);
    const pic = img
      ? el("img", { src: img, alt: "", loading: "lazy" })
      : el("span", { className: "ag-card-ph", text: (card.name || "?").charAt(0) });
    const inner = href
      ? el("a", { href, target: "_blank", rel: "noopener" }, pic, body)
      : el("div", null, pic, body);
    return el("div", { className: "ag-card", dataset: { productId: String(card.id || "") } }, inner);
  }

  // facts: {intents, products, order_ids, messages} as <dt>/<dd> pairs (into a <dl>) or one line.
  function factRows(facts) {
    const f = facts || {};
    const rows = [];
    if (typeof f.messages === "number") rows.push(["Messages", String(f.messages)]);
    if (f.intents && f.intents.length) rows.push(["Intents", f.intents.join(", ")]);
    if (f.products && f.products.length) rows.push(["Products", f.products.join(", ")]);
    if (f.order_ids && f.order_ids.length) rows.push(["Orders", f.order_ids.join(", ")]);
    return rows;
  }

  // ---------- queue ----------

  function queueItem(c) {
    const waiting = c.state === "waiting_for_agent";
    const base = Date.now() - (Number(c.wait_secs) || 0) * 1000;
    const wait = el("span", { className: "ag-wait", dataset: { since: String(base) } },
      duration((Date.now() - base) / 1000));
    const head = el("div", { className: "ag-q-head" },
      el("span", { className: "ag-q-reason", text: c.reason || "escalated" }),
      wait);
    const tags = el("div", { className: "ag-q-tags" });
    if (c.lang) tags.appendChild(el("span", { className: "ag-tag", text: c.lang === "zh" ? "中文" : c.lang.toUpperCase() }));
    if (waiting) {
      tags.appendChild(el("span", { className: "ag-tag ag-tag-wait", text: c.queue_position != null ? "#" + c.queue_position + " waiting" : "waiting" }));
    } else if (c.mine) {
      tags.appendChild(el("span", { className: "ag-tag ag-tag-mine", text: "yours" }));
    } else if (c.assigned_agent) {
      tags.appendChild(el("span", { className: "ag-tag", text: "with " + c.assigned_agent.display_name }));
    }
    const summary = el("p", { className: "ag-q-summary" + (c.summary ? "" : " ag-pending"), text: c.summary || "summarising…" });
    const facts = factRows(c.facts).map((r) => r[0].toLowerCase() + ": " + r[1]).join(" · ");
    const li = el("li", {
      className: "ag-q-item" + (c.mine ? " ag-mine" : "") + (open && open.id === c.id ? " ag-open" : ""),
      "data-testid": "agent-queue-item",
      "data-id": c.id,
      "data-state": c.state,
      dataset: { mine: c.mine ? "true" : "false" },
    }, head, tags, summary,
      // Beside a model's summary, the shopper's own words.
      c.quote && c.quote !== c.summary ? el("p", { className: "ag-q-quote", text: c.quote }) : null,
      facts ? el("p", { className: "ag-q-facts", text: facts }) : null);
    if (waiting) {
      const btn = el("button", { type: "button", "data-testid": "agent-claim" }, "Claim");
      btn.addEventListener("click", (ev) => { ev.stopPropagation(); claim(c.id, btn); });
      li.appendChild(btn);
    }
    if (c.mine) {
      li.tabIndex = 0;
      li.addEventListener("click", () => openConversation(c.id));
      li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openConversation(c.id); });
    }
    return li;
  }

  const refreshQueue = coalesced(async () => {
    let data;
    try {
      data = await api("GET", "/agent/api/queue");
    } catch (e) {
      report(e);
      return;
    }
    const list = data.conversations || [];
    ui.queueList.replaceChildren(...list.map(queueItem));
    ui.queueEmpty.hidden = list.length > 0;
    const waiting = list.filter((c) => c.state === "waiting_for_agent").length;
    ui.queueCount.textContent = waiting ? "(" + waiting + " waiting)" : "";
  });

  async function claim(id, btn) {
    clearError();
    btn.disabled = true;
    try {
      await api("POST", "/agent/api/conversations/" + encodeURIComponent(id) + "/claim", {});
    } catch (e) {
      report(e);
      btn.disabled = false;
      refreshQueue();
      return;
    }
    refreshQueue();
    openConversation(id);
  }

  // Counts the wait times up once a second.
  setInterval(() => {
    const now = Date.now();
    ui.queueList.querySelectorAll(".ag-wait").forEach((w) => {
      w.textContent = duration((now - Number(w.dataset.since)) / 1000);
    });
  }, 1000);

  // ---------- the open conversation ----------

  const ROLE_LABEL = { user: "Shopper", assistant: "Assistant", agent: "Agent", system: "" };

  function messageNode(m) {
    const who = m.role === "agent" ? (m.agent_name || "Agent") : ROLE_LABEL[m.role];
    const node = el("div", {
      className: "ag-msg ag-msg-" + (m.role || "unknown"),
      "data-testid": "agent-msg",
      "data-role": m.role,
      "data-id": m.id,
    });
    if (m.role !== "system") {
      node.appendChild(el("div", { className: "ag-msg-head" },
        el("span", { className: "ag-msg-who", text: who || m.role || "" }),
        el("time", { datetime: m.created_at, text: hhmm(m.created_at) })));
    }
    if (m.text) node.appendChild(el("div", { className: "ag-msg-text", text: m.text }));
    if (m.cards && m.cards.length) {
      node.appendChild(el("div", { className: "ag-cards" }, ...m.cards.map(renderCard)));
    }
    return node;
  }

  function nearBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  }

  // Appends messages not shown yet (by id), oldest first.
  function appendMessages(messages, forceScroll) {
    const stick = forceScroll || nearBottom(ui.transcript);
    for (const m of messages || []) {
      if (open.seen.has(m.id)) continue;
      open.seen.add(m.id);
      if (typeof m.id === "number" && m.id > open.lastId) open.lastId = m.id;
      ui.transcript.appendChild(messageNode(m));
    }
    if (stick) ui.transcript.scrollTop = ui.transcript.scrollHeight;
  }

  function renderNotes(notes) {
    ui.noteList.replaceChildren(...(notes || []).map((n) => el("li", {
      className: "ag-note", "data-testid": "agent-note", "data-id": n.id,
    },
    el("div", { className: "ag-note-head" },
      el("span", { className: "ag-note-author", text: n.author || "" }),
      el("time", { datetime: n.created_at, title: hhmm(n.created_at), text: ago(n.created_at) })),
    el("div", { className: "ag-note-text", text: n.text || "" }))));
    if (!notes || !notes.length) ui.noteList.appendChild(el("li", { className: "ag-empty", text: "No notes yet." }));
  }

  const STATE_LABEL = { bot: "with the assistant", waiting_for_agent: "waiting for an agent", agent: "with an agent", closed: "closed" };

  // Everything except the transcript, from a conversation GET.
  function renderDetails(data) {
    const c = data.conversation || {};
    open.state = c.state;
    ui.reason.textContent = c.reason || "Escalated conversation";
    const bits = [STATE_LABEL[c.state] || c.state];
    if (c.assigned_agent && c.state === "agent") bits[0] = "with " + c.assigned_agent.display_name;
    if (c.lang) bits.push(c.lang === "zh" ? "中文" : c.lang.toUpperCase());
    if (c.escalated_at) bits.push("escalated " + ago(c.escalated_at));
    if (c.claimed_at) bits.push("claimed " + hhmm(c.claimed_at));
    if (c.resolution) bits.push("resolution: " + c.resolution);
    ui.meta.textContent = bits.join(" · ");

    ui.summary.textContent = data.summary || "summarising…";
    ui.summary.classList.toggle("ag-pending", !data.summary);
    ui.quote.textContent = data.quote && data.quote !== data.summary ? data.quote : "";
    ui.quote.hidden = !ui.quote.textContent;

    const rows = factRows(data.facts);
    ui.facts.replaceChildren();
    for (const [k, v] of rows) ui.facts.append(el("dt", { text: k }), el("dd", { text: v }));
    if (!rows.length) ui.facts.appendChild(el("dd", { className: "ag-empty", text: "No facts yet." }));

    ui.customer.textContent = c.customer
      ? (c.customer.name || "Customer") + " (" + c.customer.id + ")"
      : "Not identified";
    const orders = c.verified_orders || [];
    ui.orders.replaceChildren(...orders.map((o) => el("li", { text: o })));
    if (!orders.length) ui.orders.appendChild(el("li", { className: "ag-empty", text: "none" }));

    renderNotes(data.notes);

    // Replying and finishing only make sense while the agent has the chat.
    const active = c.state === "agent";
    for (const b of [ui.reply, ui.send, ui.handback, ui.close, ui.resolution]) b.disabled = !active;
    ui.productResults.querySelectorAll('[data-testid="agent-send-card"]').forEach((b) => { b.disabled = !active; });
  }

  function markOpenInQueue() {
    ui.queueList.querySelectorAll('[data-testid="agent-queue-item"]').forEach((li) => {
      li.classList.toggle("ag-open", !!open && li.getAttribute("data-id") === open.id);
    });
  }

  function closeView() {
    open = null;
    ui.conv.hidden = true;
    ui.side.hidden = true;
    ui.placeholder.hidden = false;
    ui.transcript.replaceChildren();
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
    markOpenInQueue();
  }

  // Loads a conversation in full and shows it. quiet: restoring from #hash or a background resync,
  // so a conversation that is no longer ours just closes instead of raising an error.
  async function openConversation(id, quiet) {
    const switching = !open || open.id !== id;
    if (switching) {
      open = { id, lastId: 0, seen: new Set(), state: null };
      ui.transcript.replaceChildren();
      ui.reply.value = "";
    }
    const mine = open;
    let data;
    try {
      data = await api("GET", "/agent/api/conversations/" + encodeURIComponent(id));
    } catch (e) {
      if (open !== mine) return;
      const gone = e instanceof ApiError && (e.status === 403 || e.status === 404);
      if (quiet && !gone && !switching) { report(e); return; } // keep the view on a passing failure
      const wasShown = !ui.conv.hidden && !switching;
      closeView();
      if (!quiet) report(e);
      else if (wasShown) showInfo("That conversation is no longer assigned to you.");
      return;
    }
    if (open !== mine) return; // another conversation was opened meanwhile
    // A full reload replaces the transcript.
    open.seen = new Set();
    open.lastId = 0;
    ui.transcript.replaceChildren();
    appendMessages(data.messages, true);
    renderDetails(data);
    ui.placeholder.hidden = true;
    ui.conv.hidden = false;
    ui.side.hidden = false;
    history.replaceState(null, "", "#c=" + encodeURIComponent(id));
    markOpenInQueue();
    if (switching) ui.reply.focus();
  }

  // Fetches what is new in the open conversation (messages after the last one, all notes, state).
  const refreshOpen = coalesced(async () => {
    if (!open) return;
    const mine = open;
    let data;
    try {
      data = await api("GET", "/agent/api/conversations/" + encodeURIComponent(mine.id) + "?after=" + mine.lastId);
    } catch (e) {
      if (open !== mine) return;
      if (e instanceof ApiError && (e.status === 403 || e.status === 404)) {
        closeView();
        showInfo("That conversation is no longer assigned to you.");
        return;
      }
      report(e);
      return;
    }
    if (open !== mine) return;
    appendMessages(data.messages, false);
    renderDetails(data);
  });

  // ---------- actions on the open conversation ----------

  async function postMessage(text, productIds, btn) {
    if (!open) { showError("Open a conversation first."); return false; }
    clearError();
    const mine = open;
    if (btn) btn.disabled = true;
    try {
      const data = await api("POST", "/agent/api/conversations/" + encodeURIComponent(mine.id) + "/messages",
        { text, product_ids: productIds });
      if (open === mine && data.message) appendMessages([data.message], true);
      return true;
    } catch (e) {
      report(e);
      return false;
    } finally {
      if (btn) btn.disabled = !open || open.state !== "agent";
    }
  }

  async function sendReply() {
    const text = ui.reply.value.trim();
    if (!text || ui.send.disabled) return;
    if (await postMessage(text, [], ui.send)) {
      ui.reply.value = "";
      ui.reply.focus();
    }
  }

  ui.replyForm.addEventListener("submit", (ev) => { ev.preventDefault(); sendReply(); });
  ui.reply.addEventListener("keydown", (ev) => {
    // Enter sends; Shift+Enter is a new line; Enter while an IME is composing is left alone.
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
      ev.preventDefault();
      sendReply();
    }
  });

  ui.noteForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = ui.noteInput.value.trim();
    if (!text || !open) return;
    clearError();
    const mine = open;
    ui.noteAdd.disabled = true;
    try {
      await api("POST", "/agent/api/conversations/" + encodeURIComponent(mine.id) + "/notes", { text });
      ui.noteInput.value = "";
      if (open === mine) refreshOpen();
    } catch (e) {
      report(e);
    } finally {
      ui.noteAdd.disabled = false;
    }
  });

  // Hand-back and close end this agent's part: the view closes and the queue refreshes.
  async function finish(action, body, btn, done) {
    if (!open) return;
    clearError();
    const mine = open;
    btn.disabled = true;
    try {
      await api("POST", "/agent/api/conversations/" + encodeURIComponent(mine.id) + "/" + action, body);
    } catch (e) {
      report(e);
      btn.disabled = false;
      return;
    }
    btn.disabled = false;
    if (open === mine) closeView();
    showInfo(done);
    refreshQueue();
  }

  ui.handback.addEventListener("click", () =>
    finish("handback", {}, ui.handback, "Handed back to the shop assistant."));
  ui.close.addEventListener("click", () => {
    const resolution = ui.resolution.value;
    finish("close", { resolution }, ui.close, "Chat closed (" + resolution + ").");
  });

  // ---------- canned replies ----------

  const LANG_GROUP = { en: "English", zh: "中文" };

  function renderCanned() {
    const first = ui.canned.options[0];
    ui.canned.replaceChildren(first);
    const groups = new Map();
    for (const c of canned) {
      const label = LANG_GROUP[c.lang] || "Any language";
      if (!groups.has(label)) groups.set(label, el("optgroup", { label }));
      groups.get(label).appendChild(el("option", { value: c.id, text: c.title || "(untitled)" }));
    }
    for (const g of groups.values()) ui.canned.appendChild(g);
    ui.canned.value = "";

    if (!IS_ADMIN) return;
    ui.cannedList.replaceChildren(...canned.map((c) => {
      const del = el("button", { type: "button", className: "danger" }, "Delete");
      del.addEventListener("click", () => deleteCanned(c.id, del));
      return el("li", { "data-id": c.id },
        el("div", { className: "ag-canned-item" },
          el("strong", { text: c.title || "" }),
          c.lang ? el("span", { className: "ag-tag", text: c.lang }) : null),
        el("div", { className: "ag-canned-text", text: c.text || "" }),
        del);
    }));
  }

  const loadCanned = coalesced(async () => {
    try {
      const data = await api("GET", "/agent/api/canned");
      canned = data.canned || [];
      renderCanned();
    } catch (e) {
      report(e);
    }
  });

  // Choosing a canned reply inserts its text at the cursor; it is not sent.
  ui.canned.addEventListener("change", () => {
    const c = canned.find((x) => String(x.id) === ui.canned.value);
    ui.canned.value = "";
    if (!c || ui.reply.disabled) return;
    const box = ui.reply;
    const start = box.selectionStart ?? box.value.length;
    const end = box.selectionEnd ?? box.value.length;
    const before = box.value.slice(0, start);
    const sep = before && !/\s$/.test(before) ? " " : "";
    box.setRangeText(sep + c.text, start, end, "end");
    box.focus();
  });

  async function deleteCanned(id, btn) {
    clearError();
    btn.disabled = true;
    try {
      await api("POST", "/agent/api/canned/" + encodeURIComponent(id) + "/delete", {});
      loadCanned();
    } catch (e) {
      report(e);
      btn.disabled = false;
    }
  }

  if (IS_ADMIN) {
    ui.cannedAdmin.hidden = false;
    ui.cannedForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = ui.cannedForm.elements;
      const body = { title: f.title.value.trim(), text: f.text.value.trim(), lang: f.lang.value };
      if (!body.title || !body.text) return;
      clearError();
      try {
        await api("POST", "/agent/api/canned", body);
        f.title.value = "";
        f.text.value = "";
        showInfo("Canned reply added.");
        loadCanned();
      } catch (e) {
        report(e);
      }
    });
  }

  // ---------- product search ----------

  let searchSeq = 0;
  async function searchProducts() {
    const q = ui.productSearch.value.trim();
    const seq = ++searchSeq;
    if (!q) { ui.productResults.replaceChildren(); return; }
    let data;
    try {
      data = await api("GET", "/agent/api/products?q=" + encodeURIComponent(q));
    } catch (e) {
      if (seq === searchSeq) report(e);
      return;
    }
    if (seq !== searchSeq) return; // a newer search has started
    const products = data.products || [];
    ui.productResults.replaceChildren(...products.map((p) => {
      const btn = el("button", { type: "button", "data-testid": "agent-send-card" }, "Send card");
      btn.disabled = !open || open.state !== "agent";
      // Sends the card with whatever is in the reply box (may be empty).
      btn.addEventListener("click", async () => {
        if (await postMessage(ui.reply.value.trim(), [p.id], btn)) ui.reply.value = "";
      });
      return el("li", { "data-testid": "agent-product-result", "data-id": p.id }, renderCard(p), btn);
    }));
    if (!products.length) ui.productResults.appendChild(el("li", { className: "ag-empty", text: "No products match." }));
  }

  let searchTimer = 0;
  ui.productSearch.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchProducts, 300);
  });
  ui.productSearch.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      clearTimeout(searchTimer);
      searchProducts();
    }
  });

  // ---------- live updates ----------

  function refreshAll() {
    refreshQueue();
    loadCanned();
    if (open) openConversation(open.id, true);
  }

  function parse(ev) {
    try { return JSON.parse(ev.data || "{}"); } catch (e) { return {}; }
  }

  let source = null;
  let hadError = false;
  let retryTimer = 0;

  function connect() {
    source = new EventSource("/agent/api/events");
    source.addEventListener("open", () => {
      ui.live.textContent = "live";
      ui.live.classList.add("ag-on");
      // After a dropped connection, wake-ups may have been missed.
      if (hadError) { hadError = false; refreshAll(); }
    });
    source.addEventListener("error", () => {
      hadError = true;
      ui.live.textContent = "reconnecting…";
      ui.live.classList.remove("ag-on");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. a 401 or a server error): check the session, retry later.
        refreshQueue();
        clearTimeout(retryTimer);
        retryTimer = setTimeout(connect, 5000);
      }
    });
    source.addEventListener("queue", () => refreshQueue());
    source.addEventListener("conversation", (ev) => {
      const d = parse(ev);
      refreshQueue();
      if (open && d.conversation_id === open.id) refreshOpen();
    });
    source.addEventListener("resync", () => refreshAll());
  }

  // ---------- start ----------

  refreshQueue();
  loadCanned();
  const m = /^#c=(.+)$/.exec(location.hash);
  if (m) openConversation(decodeURIComponent(m[1]), true);
  if (window.EventSource) connect();
  else setInterval(refreshAll, 10000); // no EventSource: poll instead
}());
