/* aisle chat widget: embeddable shopping assistant.
 * One self-contained IIFE, no dependencies. Every piece of server, model, agent, product or user
 * text reaches the DOM through textContent / createTextNode / setAttribute only. */
(function () {
  'use strict';
  if (window.aisleWidget) return; // embedded twice: keep the first

  // ---------- configuration ----------
  const script = document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-endpoint]') ||
    document.querySelector('script[src*="widget.js"]');
  const ds = (script && script.dataset) || {};
  const endpoint = (function () {
    let base = ds.endpoint;
    if (!base && script && script.src) {
      try { base = new URL(script.src, location.href).origin; } catch (_) { /* fall through */ }
    }
    return String(base || location.origin).replace(/\/+$/, '');
  })();
  const lang = ds.lang === 'en' || ds.lang === 'zh' ? ds.lang
    : /^zh/i.test(navigator.language || '') ? 'zh' : 'en';
  const customerToken = ds.customerToken || undefined;
  const MAX_LEN = 1000;
  const COUNTER_FROM = 800; // show the character counter once the text gets this long
  const POLL_MS = 4000; // fallback when the push stream cannot be used: poll the history
  const LINGER_MS = 2500; // the push stream stays this long after a person lets the chat go
  const SESSION_KEY = 'aisle.session:' + endpoint;
  const OPEN_KEY = 'aisle.open:' + endpoint;

  const STRINGS = {
    en: {
      title: 'Shopping assistant',
      openLabel: 'Open shopping assistant',
      closeLabel: 'Close shopping assistant',
      state: {
        bot: 'Ask about products, orders or returns',
        waiting_for_agent: 'Waiting for a person',
        agent: "You're chatting with a person",
        closed: 'This chat is closed',
      },
      waitingN: "Waiting for a person — you're number {n} in the queue",
      withAgent: "You're chatting with {name}",
      newChat: 'Start a new chat',
      newChatFailed: "Couldn't start a new chat. Please try again.",
      inputLabel: 'Your message',
      placeholder: 'Ask me anything…',
      send: 'Send',
      typing: 'Assistant is typing',
      greeting: 'Hi! I can help you find products, track an order or answer questions about returns. What are you looking for?',
      chips: ['Gifts under ₹1,000', 'Where is my order?', 'Return policy', 'Talk to a human'],
      chipsLabel: 'Suggested replies',
      cardsLabel: 'Suggested products',
      why: 'Why?',
      whyTitle: 'Why this was suggested',
      outOfStock: 'Out of stock',
      up: 'Helpful',
      down: 'Not helpful',
      agentName: 'Agent',
      expired: 'Your previous chat expired, so a new one was started.',
      network: "Couldn't reach the assistant. Check your connection and try again.",
      failed: 'Something went wrong (error {status}). Please try again.',
      interrupted: 'The reply was interrupted. Please try again.',
      restoreFailed: "Couldn't load your earlier messages.",
      feedbackFailed: "Couldn't save your feedback.",
      counter: '{n} characters left',
    },
    zh: {
      title: '购物助手',
      openLabel: '打开购物助手',
      closeLabel: '关闭购物助手',
      state: {
        bot: '商品、订单、退换货，随时问我',
        waiting_for_agent: '正在等待人工客服',
        agent: '人工客服为您服务中',
        closed: '对话已结束',
      },
      waitingN: '正在等待人工客服，您排在第{n}位',
      withAgent: '{name} 正在为您服务',
      newChat: '开始新对话',
      newChatFailed: '无法开始新对话，请重试。',
      inputLabel: '输入消息',
      placeholder: '想找点什么？',
      send: '发送',
      typing: '助手正在输入',
      greeting: '您好！我可以帮您找商品、查订单，或解答退换货问题。想找点什么？',
      chips: ['1000元以内的礼物', '我的订单到哪了？', '退货政策', '转人工'],
      chipsLabel: '快捷回复',
      cardsLabel: '推荐商品',
      why: '推荐理由',
      whyTitle: '为什么推荐',
      outOfStock: '缺货',
      up: '有帮助',
      down: '没帮助',
      agentName: '客服',
      expired: '之前的对话已过期，已为您开始新的对话。',
      network: '无法连接购物助手，请检查网络后重试。',
      failed: '出错了（错误 {status}），请重试。',
      interrupted: '回复中断了，请重试。',
      restoreFailed: '无法加载之前的消息。',
      feedbackFailed: '反馈未能保存。',
      counter: '还可输入 {n} 个字符',
    },
  };
  const t = STRINGS[lang];
  const fmt = (s, vars) => s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));

  // Storage can throw (sandboxed iframes, some private modes); the widget must work regardless.
  const store = {
    get(area, k) { try { return window[area].getItem(k); } catch (_) { return null; } },
    set(area, k, v) { try { window[area].setItem(k, v); } catch (_) { /* ignore */ } },
    del(area, k) { try { window[area].removeItem(k); } catch (_) { /* ignore */ } },
  };

  // ---------- state ----------
  let sessionId = store.get('localStorage', SESSION_KEY);
  let convState = 'bot';
  let busy = false;
  let gen = 0; // bumped on each send (and new chat) so a stale history response is dropped
  let maxSeenId = 0;
  const seen = new Set(); // server message ids already on screen
  let booted = null;
  let pollTimer = 0;
  let agentName = null; // the person handling the chat, when the server named one
  let queuePos = null; // place in the queue while waiting for a person
  let stream = null; // the push stream (EventSource) while a person has or is about to take the chat
  let lingerTimer = 0;
  let pushBroken = false; // the push stream failed for good for this session: poll instead
  let catchUpPending = false; // a history catch-up waits for the current send to finish
  let pending = []; // own messages on screen that the server has not numbered yet
  let lastUserText = ''; // the shopper's latest message: the query that assistant cards answer
  let lastQuietNotice = ''; // the last notice of a reply sent while a person has the chat
  let uid = 0;
  let stick = true; // keep the log pinned to the bottom unless the user scrolled up
  let typingEl = null;
  let ui = null;

  // ---------- small DOM helpers ----------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c != null) node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    return node;
  }
  const SVG_NS = 'http://www.w3.org/2000/svg';
  function icon(d, cls) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', 'aisle-icon' + (cls ? ' ' + cls : ''));
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    svg.appendChild(path);
    return svg;
  }
  const ICON_CHAT = 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H10l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z';
  const ICON_CLOSE = 'M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6 10.6 12 5 6.4z';
  const ICON_THUMB = 'M2 10h4v11H2zm6 11h9.3a2 2 0 0 0 2-1.6l1.5-7.2A2 2 0 0 0 18.8 10H14l.9-4.3a1.8 1.8 0 0 0-3.2-1.5L8 9.5z';

  // Only http(s) URLs, relative ones resolved against the endpoint; anything else is dropped.
  function safeUrl(u) {
    if (typeof u !== 'string' || !u.trim()) return null;
    try {
      const url = new URL(u.trim(), endpoint + '/');
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (_) { return null; }
  }
  const api = (path) => endpoint + path;
  const str = (v) => (typeof v === 'string' ? v : v == null ? '' : String(v));

  // Error bodies may be {"error": "text"} or {"error": {"code", "message"}}.
  function errorText(body) {
    if (!body || typeof body !== 'object') return '';
    const e = body.error;
    if (typeof e === 'string') return e;
    if (e && typeof e.message === 'string') return e.message;
    return typeof body.message === 'string' ? body.message : '';
  }
  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function httpError(res) {
    let msg = '';
    try { msg = errorText(await res.json()); } catch (_) { /* not JSON */ }
    return new HttpError(res.status, msg || fmt(t.failed, { status: res.status }));
  }

  // ---------- building the UI ----------
  function build() {
    const root = el('div', { id: 'aisle-widget', class: 'aisle-root', lang: lang === 'zh' ? 'zh-CN' : 'en' });
    // Hidden until the stylesheet arrives, so the host page never flashes an unstyled widget.
    root.style.display = 'none';
    const reveal = () => { root.style.display = ''; };
    const href = endpoint + '/static/widget.css';
    let link = Array.from(document.querySelectorAll('link[rel="stylesheet"]')).find((l) => l.href === href);
    if (link) reveal();
    else {
      link = el('link', { rel: 'stylesheet', href });
      link.addEventListener('load', reveal);
      link.addEventListener('error', reveal);
      (document.head || document.documentElement).appendChild(link);
      setTimeout(reveal, 3000); // never stay invisible because of a slow stylesheet
    }

    const launcher = el('button', {
      type: 'button', class: 'aisle-launcher', 'data-testid': 'aisle-launcher',
      'aria-label': t.openLabel, 'aria-expanded': 'false', 'aria-controls': 'aisle-panel',
    }, icon(ICON_CHAT, 'aisle-icon-chat'), icon(ICON_CLOSE, 'aisle-icon-x'));

    const titleId = 'aisle-title';
    const status = el('p', { class: 'aisle-status', id: 'aisle-status', 'data-testid': 'aisle-status', 'aria-live': 'polite' });
    const closeBtn = el('button', { type: 'button', class: 'aisle-close', 'aria-label': t.closeLabel }, icon(ICON_CLOSE));
    const header = el('div', { class: 'aisle-header' },
      el('div', { class: 'aisle-heading' }, el('h2', { class: 'aisle-title', id: titleId, text: t.title }), status),
      closeBtn);
    const log = el('div', { class: 'aisle-log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-labelledby': titleId, tabindex: '0' });
    const chips = el('div', { class: 'aisle-chips', role: 'group', 'aria-label': t.chipsLabel, hidden: true });
    const input = el('textarea', {
      id: 'aisle-input', class: 'aisle-input', 'data-testid': 'aisle-input', rows: '1',
      maxlength: String(MAX_LEN), placeholder: t.placeholder, 'aria-describedby': 'aisle-counter', autocomplete: 'off',
    });
    const counter = el('span', { class: 'aisle-counter', id: 'aisle-counter', hidden: true });
    const sendBtn = el('button', { type: 'submit', class: 'aisle-send', 'data-testid': 'aisle-send', text: t.send });
    const form = el('form', { class: 'aisle-form', novalidate: true },
      el('label', { class: 'aisle-sr', for: 'aisle-input', text: t.inputLabel }),
      input, counter, sendBtn);
    // Shown once the chat is closed: the input is disabled and this starts over.
    const newChatBtn = el('button', { type: 'button', class: 'aisle-new-chat', 'data-testid': 'aisle-new-chat', text: t.newChat });
    const closedBar = el('div', { class: 'aisle-closed-bar', hidden: true }, newChatBtn);
    const panel = el('div', {
      id: 'aisle-panel', class: 'aisle-panel', 'data-testid': 'aisle-panel',
      role: 'dialog', 'aria-label': t.title, 'aria-describedby': 'aisle-status', hidden: true,
    }, header, log, chips, closedBar, form);

    root.append(panel, launcher);
    document.body.appendChild(root);
    ui = { root, launcher, panel, status, closeBtn, log, chips, input, counter, sendBtn, form, closedBar, newChatBtn };

    launcher.addEventListener('click', () => (panel.hidden ? open() : close(true)));
    closeBtn.addEventListener('click', () => close(true));
    panel.addEventListener('keydown', onPanelKey);
    log.addEventListener('scroll', () => { stick = log.scrollHeight - log.scrollTop - log.clientHeight < 40; });
    form.addEventListener('submit', (e) => { e.preventDefault(); submitInput(); });
    input.addEventListener('keydown', (e) => {
      // Enter sends, Shift+Enter is a newline; never send while an IME is composing (zh input).
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        submitInput();
      }
    });
    input.addEventListener('input', onInput);
    newChatBtn.addEventListener('click', () => { newChat(); });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) schedulePoll(); });
    setState('bot');
    if (store.get('sessionStorage', OPEN_KEY) === '1') open(false);
    else if (sessionId) boot(); // a returning shopper: restore now so a person's replies are not missed
  }

  function onPanelKey(e) {
    if (e.key !== 'Escape' || e.isComposing) return;
    // An open "Why?" popover closes first; a second Escape closes the panel.
    const card = e.target.closest && e.target.closest('.aisle-card');
    const whyBtn = card && card.querySelector('.aisle-why[aria-expanded="true"]');
    e.preventDefault();
    if (whyBtn) { toggleWhy(whyBtn, false); whyBtn.focus(); return; }
    close(true);
  }

  function onInput() {
    const { input, counter } = ui;
    if (input.value.length > MAX_LEN) input.value = input.value.slice(0, MAX_LEN);
    const n = input.value.length;
    counter.hidden = n < COUNTER_FROM;
    counter.textContent = n + '/' + MAX_LEN;
    counter.setAttribute('aria-label', fmt(t.counter, { n: MAX_LEN - n }));
    counter.classList.toggle('aisle-counter--full', n >= MAX_LEN - 20);
    // Grow the textarea with its content, up to the CSS max-height.
    input.style.height = 'auto';
    input.style.height = input.scrollHeight + 'px';
  }

  function open(focus = true) {
    if (!ui) init();
    if (!ui) return; // called before <body> exists
    const { panel, launcher, root, input } = ui;
    panel.hidden = false;
    root.dataset.open = 'true';
    delete root.dataset.unread;
    launcher.setAttribute('aria-expanded', 'true');
    launcher.setAttribute('aria-label', t.closeLabel);
    store.set('sessionStorage', OPEN_KEY, '1');
    boot();
    scrollDown(true);
    if (focus) requestAnimationFrame(() => focusTarget().focus());
  }

  function close(returnFocus) {
    if (!ui) return;
    const { panel, launcher, root } = ui;
    const hadFocus = panel.contains(document.activeElement);
    panel.hidden = true;
    root.dataset.open = 'false';
    launcher.setAttribute('aria-expanded', 'false');
    launcher.setAttribute('aria-label', t.openLabel);
    store.set('sessionStorage', OPEN_KEY, '0');
    if (returnFocus === true || hadFocus) launcher.focus();
  }

  function scrollDown(force) {
    if (force) stick = true;
    if (stick && ui) ui.log.scrollTop = ui.log.scrollHeight;
  }
  function append(node) {
    ui.log.insertBefore(node, typingEl && typingEl.parentNode === ui.log ? typingEl : null);
    scrollDown();
  }

  // Where focus goes in the panel: the input, or the "new chat" button once the chat is closed.
  function focusTarget() {
    if (convState === 'closed' && !ui.closedBar.hidden) return ui.newChatBtn;
    return ui.input.disabled ? ui.closeBtn : ui.input;
  }

  const STATES = ['bot', 'waiting_for_agent', 'agent', 'closed'];
  const withPerson = (s) => s === 'waiting_for_agent' || s === 'agent';

  // `info` (history, the push stream's state event) may carry agent_name and queue_position;
  // a change of state without them forgets the old ones.
  // `full`: the info is a whole history just fetched, so there is nothing to catch up on.
  function setState(state, info, full) {
    const prev = convState;
    if (typeof state === 'string' && STATES.includes(state)) convState = state;
    const has = (k) => info && typeof info === 'object' && Object.prototype.hasOwnProperty.call(info, k);
    if (has('agent_name')) agentName = typeof info.agent_name === 'string' && info.agent_name.trim() ? info.agent_name.trim() : null;
    else if (convState !== prev) agentName = null;
    if (has('queue_position')) {
      const n = Number(info.queue_position);
      queuePos = info.queue_position != null && Number.isInteger(n) && n > 0 ? n : null;
    } else if (convState !== prev) queuePos = null;
    if (convState !== prev) lastQuietNotice = '';
    ui.root.dataset.state = convState;
    ui.status.textContent = statusText();
    if (convState === 'closed') setChips([]);
    syncControls();
    if (withPerson(convState)) {
      clearTimeout(lingerTimer);
      lingerTimer = 0;
      openStream();
    } else if (full) stopStream(); // a whole history was just shown: nothing can be missing
    else if ((stream || withPerson(prev)) && !lingerTimer) {
      // Leaving a person's hands: the "back with the assistant" / "closed" notice may follow the
      // state event, so keep listening a moment, then stop and fetch whatever is still missing.
      lingerTimer = setTimeout(() => {
        lingerTimer = 0;
        if (withPerson(convState)) return;
        stopStream();
        catchUp();
      }, stream ? LINGER_MS : 0);
    }
    schedulePoll();
  }

  function statusText() {
    if (convState === 'waiting_for_agent') return queuePos != null ? fmt(t.waitingN, { n: queuePos }) : t.state.waiting_for_agent;
    if (convState === 'agent') return agentName ? fmt(t.withAgent, { name: agentName }) : t.state.agent;
    return t.state[convState] || t.state.bot;
  }

  // The input is off while a reply streams in and for good once the chat is closed.
  function syncControls() {
    const closed = convState === 'closed';
    const off = busy || closed;
    const hadFocus = document.activeElement === ui.input;
    ui.input.disabled = off;
    ui.sendBtn.disabled = off;
    ui.closedBar.hidden = !closed;
    ui.newChatBtn.disabled = closed && busy;
    if (closed && hadFocus && !ui.panel.hidden) ui.newChatBtn.focus();
  }

  function setBusy(on) {
    busy = on;
    syncControls();
    ui.log.setAttribute('aria-busy', on ? 'true' : 'false');
    // Disabling the input (or removing the clicked chip) dropped focus to <body>: bring it back.
    const a = document.activeElement;
    if (!on && !ui.panel.hidden && (!a || a === document.body || a === ui.input)) focusTarget().focus();
  }

  function showTyping() {
    hideTyping();
    typingEl = el('div', { class: 'aisle-typing', 'data-testid': 'aisle-typing', role: 'status', 'aria-label': t.typing },
      el('span', { class: 'aisle-dot' }), el('span', { class: 'aisle-dot' }), el('span', { class: 'aisle-dot' }));
    ui.log.appendChild(typingEl);
    scrollDown();
  }
  function hideTyping() {
    if (typingEl) typingEl.remove();
    typingEl = null;
  }

  // ---------- messages ----------
  // A message is {el, textEl, cardsEl, actionsEl, id, query}; assistant bubbles hold cards and thumbs.
  function addMessage(role, text, opts = {}) {
    const r = ['user', 'assistant', 'agent', 'system'].includes(role) ? role : 'system';
    const node = el('div', { class: 'aisle-msg aisle-msg--' + r, 'data-testid': 'aisle-msg', 'data-role': r });
    const msg = { el: node, role: r, id: null, query: opts.query || '', cards: [] };
    // A person's messages carry their name above the text, outside .aisle-text, so the text
    // element still holds exactly the message.
    if (r === 'agent') {
      const sender = str(opts.sender).trim() || t.agentName;
      node.setAttribute('data-sender', sender);
      node.appendChild(el('div', { class: 'aisle-sender', text: sender }));
    }
    msg.textEl = el('div', { class: 'aisle-text' });
    msg.textEl.textContent = str(text);
    node.appendChild(msg.textEl);
    if (opts.id != null) setMessageId(msg, opts.id);
    append(node);
    return msg;
  }
  function setMessageId(msg, id) {
    const n = Number(id);
    if (!Number.isFinite(n)) return;
    if (pending.length) pending = pending.filter((p) => p !== msg);
    msg.id = n;
    msg.el.dataset.messageId = String(n);
    seen.add(n);
    if (n > maxSeenId) maxSeenId = n;
  }
  function notice(text, kind) {
    const m = addMessage('system', text);
    m.el.classList.add('aisle-notice');
    if (kind === 'error') m.el.classList.add('aisle-notice--error');
    return m;
  }
  function appendText(msg, piece) {
    // One growing text node: cheaper than re-setting textContent for every token.
    if (!msg.stream) { msg.stream = document.createTextNode(''); msg.textEl.appendChild(msg.stream); }
    msg.stream.appendData(piece);
    scrollDown();
  }
  function setText(msg, text) {
    msg.stream = null;
    msg.textEl.textContent = str(text);
    scrollDown();
  }

  function addThumbs(msg) {
    if (msg.id == null || msg.actionsEl) return;
    const up = el('button', { type: 'button', class: 'aisle-thumb aisle-thumb--up', 'data-testid': 'aisle-up', 'aria-label': t.up, 'aria-pressed': 'false', title: t.up }, icon(ICON_THUMB));
    const down = el('button', { type: 'button', class: 'aisle-thumb aisle-thumb--down', 'data-testid': 'aisle-down', 'aria-label': t.down, 'aria-pressed': 'false', title: t.down }, icon(ICON_THUMB));
    const vote = (btn, kind) => {
      btn.setAttribute('aria-pressed', 'true');
      up.disabled = down.disabled = true;
      feedback({ kind, message_id: msg.id }).then((ok) => {
        if (ok) return;
        // Not recorded: let the shopper try again.
        btn.setAttribute('aria-pressed', 'false');
        up.disabled = down.disabled = false;
        notice(t.feedbackFailed, 'error');
      });
    };
    up.addEventListener('click', () => vote(up, 'up'));
    down.addEventListener('click', () => vote(down, 'down'));
    msg.actionsEl = el('div', { class: 'aisle-actions' }, up, down);
    msg.el.appendChild(msg.actionsEl);
  }

  // ---------- product cards ----------
  function setCards(msg, cards) {
    const list = Array.isArray(cards) ? cards.filter((c) => c && typeof c === 'object') : [];
    msg.cards = list;
    if (msg.cardsEl) msg.cardsEl.remove();
    msg.cardsEl = null;
    if (!list.length) return;
    msg.cardsEl = el('div', { class: 'aisle-cards', role: 'list', 'aria-label': t.cardsLabel });
    list.forEach((c, i) => msg.cardsEl.appendChild(card(c, i, msg)));
    // Cards sit after the text and before the thumbs.
    msg.el.insertBefore(msg.cardsEl, msg.actionsEl || null);
    scrollDown();
  }
  const sameCards = (a, b) => a.length === b.length && a.every((c, i) => str(c.id) === str(b[i] && b[i].id));

  function placeholder(name) {
    const first = Array.from(name.trim())[0] || '?';
    return el('div', { class: 'aisle-ph', 'aria-hidden': 'true', text: first.toUpperCase() });
  }

  function card(c, index, msg) {
    const name = str(lang === 'zh' && c.name_zh ? c.name_zh : c.name) || str(c.id);
    const position = Number.isInteger(c.position) && c.position > 0 ? c.position : index + 1;
    const href = safeUrl(c.url);
    const img = safeUrl(c.image);
    const box = el('div', { class: 'aisle-card' + (c.in_stock === false ? ' aisle-card--out' : ''), role: 'listitem', 'data-testid': 'aisle-card', 'data-product-id': str(c.id) });

    const media = el('div', { class: 'aisle-media' });
    if (img) {
      const im = el('img', { src: img, alt: name, loading: 'lazy', decoding: 'async' });
      im.addEventListener('error', () => im.replaceWith(placeholder(name)), { once: true });
      im.addEventListener('load', () => scrollDown(), { once: true });
      media.appendChild(im);
    } else media.appendChild(placeholder(name));
    if (c.in_stock === false) media.appendChild(el('span', { class: 'aisle-badge', text: t.outOfStock }));

    let price = str(c.price_text);
    if (!price && typeof c.price === 'number') {
      try { price = new Intl.NumberFormat(lang === 'zh' ? 'zh-CN' : 'en-IN', { style: 'currency', currency: str(c.currency) || 'INR' }).format(c.price); }
      catch (_) { price = String(c.price); }
    }
    const body = el('div', { class: 'aisle-card-body' },
      el('span', { class: 'aisle-card-name', text: name }),
      c.brand ? el('span', { class: 'aisle-card-brand', text: str(c.brand) }) : null,
      price ? el('span', { class: 'aisle-card-price', text: price }) : null);

    // The link wraps picture and text; the "Why?" button sits outside it (no nested controls).
    const main = href ? el('a', { class: 'aisle-card-link', href, title: str(c.category) || null }, media, body)
      : el('div', { class: 'aisle-card-link' }, media, body);
    box.appendChild(main);
    if (href) {
      const onClick = (e) => {
        if (e.type === 'auxclick' && e.button !== 1) return;
        feedback({ kind: 'click', product_id: str(c.id), position, message_id: msg.id, query: msg.query || undefined }, true);
      };
      main.addEventListener('click', onClick); // navigation proceeds normally
      main.addEventListener('auxclick', onClick);
    }

    const why = Array.isArray(c.why) ? c.why.map(str).filter(Boolean) : [];
    if (why.length) {
      const popId = 'aisle-why-' + ++uid;
      const btn = el('button', { type: 'button', class: 'aisle-why', 'aria-expanded': 'false', 'aria-controls': popId, 'aria-describedby': popId, text: t.why });
      const pop = el('div', { class: 'aisle-why-pop', id: popId, role: 'tooltip', hidden: true },
        el('p', { class: 'aisle-why-title', text: t.whyTitle }),
        el('ul', null, ...why.map((w) => el('li', { text: w }))));
      btn.addEventListener('click', () => toggleWhy(btn));
      box.append(btn, pop);
    }
    return box;
  }

  function toggleWhy(btn, force) {
    const pop = document.getElementById(btn.getAttribute('aria-controls'));
    const show = force === undefined ? btn.getAttribute('aria-expanded') !== 'true' : force;
    btn.setAttribute('aria-expanded', show ? 'true' : 'false');
    if (pop) pop.hidden = !show;
  }

  // ---------- chips ----------
  function setChips(list) {
    const { chips } = ui;
    chips.textContent = '';
    const items = (Array.isArray(list) ? list : []).map(str).filter((s) => s.trim());
    for (const text of items) {
      const b = el('button', { type: 'button', class: 'aisle-chip', 'data-testid': 'aisle-chip', text });
      b.addEventListener('click', () => send(text));
      chips.appendChild(b);
    }
    chips.hidden = !items.length;
  }

  // ---------- server calls ----------
  function forgetSession() {
    stopStream();
    sessionId = null;
    pushBroken = false;
    store.del('localStorage', SESSION_KEY);
  }

  async function ensureSession() {
    if (sessionId) return sessionId;
    const res = await fetch(api('/api/chat/sessions'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ lang, customer_token: customerToken }),
    });
    if (!res.ok) throw await httpError(res);
    const body = await res.json();
    if (!body || typeof body.session_id !== 'string') throw new HttpError(res.status, fmt(t.failed, { status: res.status }));
    sessionId = body.session_id;
    store.set('localStorage', SESSION_KEY, sessionId);
    return sessionId;
  }

  async function postMessage(text) {
    const id = await ensureSession();
    return fetch(api('/api/chat/sessions/' + encodeURIComponent(id) + '/messages'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify({ text }),
    });
  }

  async function fetchHistory() {
    const res = await fetch(api('/api/chat/sessions/' + encodeURIComponent(sessionId) + '/messages'), { headers: { Accept: 'application/json' } });
    if (!res.ok) throw await httpError(res);
    return res.json();
  }

  // Resolves true when the server recorded it. Clicks use keepalive so they survive navigation.
  function feedback(fields, keepalive) {
    if (!sessionId) return Promise.resolve(false);
    const body = { session_id: sessionId, kind: fields.kind };
    for (const k of ['message_id', 'product_id', 'position', 'query']) if (fields[k] != null) body[k] = fields[k];
    return fetch(api('/api/feedback'), {
      method: 'POST', keepalive: !!keepalive,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    }).then((r) => r.ok, () => false);
  }

  // ---------- SSE parsing (fetch + ReadableStream; EventSource cannot POST) ----------
  function sseParser(onEvent) {
    let buf = '';
    let name = '';
    let data = [];
    function line(l) {
      if (l === '') { // blank line: dispatch the block
        if (data.length) {
          let payload = null;
          try { payload = JSON.parse(data.join('\n')); } catch (_) { payload = { text: data.join('\n') }; }
          onEvent(name || 'message', payload || {});
        }
        name = '';
        data = [];
        return;
      }
      if (l[0] === ':') return; // comment / keep-alive
      const c = l.indexOf(':');
      const field = c < 0 ? l : l.slice(0, c);
      let value = c < 0 ? '' : l.slice(c + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    return {
      push(chunk) {
        buf += chunk;
        const re = /\r\n|\r|\n/g;
        let start = 0;
        let m;
        while ((m = re.exec(buf))) {
          // A lone "\r" at the very end may be half of "\r\n": wait for the next chunk.
          if (m[0] === '\r' && m.index === buf.length - 1) break;
          line(buf.slice(start, m.index));
          start = re.lastIndex;
        }
        buf = buf.slice(start);
      },
      end() {
        if (buf) line(buf.replace(/\r$/, ''));
        buf = '';
        line('');
      },
    };
  }

  async function readReply(res, userMsg) {
    let bubble = null;
    let finished = false;
    let errored = false;
    let intent = '';
    // The bubble (and the end of the typing dots) waits for the first cards or token event.
    const ensureBubble = () => {
      if (!bubble) {
        hideTyping();
        bubble = addMessage('assistant', '', { query: userMsg.query });
        if (intent) bubble.el.dataset.intent = intent;
      }
      return bubble;
    };
    const onEvent = (name, data) => {
      if (name === 'intent') {
        intent = str(data && data.intent); // kept on the bubble as data-intent, for debugging
      } else if (name === 'cards') {
        setCards(ensureBubble(), data.cards);
      } else if (name === 'token') {
        if (typeof data.text === 'string') appendText(ensureBubble(), data.text);
      } else if (name === 'done') {
        finished = true;
        const reply = (data && data.reply) || {};
        const hasText = typeof reply.text === 'string' && reply.text !== '';
        const hasCards = Array.isArray(reply.cards) && reply.cards.length > 0;
        // While a person has the chat the reply is only a notice: no (empty) bubble at all.
        if (!bubble && !hasText && !hasCards) finishQuiet(data || {}, userMsg);
        else finishReply(ensureBubble(), data, userMsg);
      } else if (name === 'error') {
        errored = true;
        hideTyping();
        notice(errorText(data) || fmt(t.failed, { status: data.status || '?' }), 'error');
      }
    };
    const type = res.headers.get('content-type') || '';
    if (!type.includes('text/event-stream') && type.includes('json')) {
      onEvent('done', await res.json()); // tolerate a plain JSON reply
    } else {
      const parser = sseParser(onEvent);
      const dec = new TextDecoder();
      if (res.body && res.body.getReader) {
        const reader = res.body.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(dec.decode(value, { stream: true }));
          if (finished) { reader.cancel().catch(() => {}); break; } // nothing follows "done"
        }
        parser.push(dec.decode());
      } else parser.push(await res.text());
      parser.end();
    }
    hideTyping();
    if (!finished) {
      if (bubble) bubble.el.classList.add('aisle-msg--incomplete');
      if (!errored) notice(t.interrupted, 'error');
    }
  }

  function finishReply(bubble, data, userMsg) {
    const reply = (data && data.reply) || {};
    // The final text replaces the streamed one: the server may have dropped unverified sentences.
    if (typeof reply.text === 'string') setText(bubble, reply.text);
    if (Array.isArray(reply.cards) && !sameCards(bubble.cards, reply.cards)) setCards(bubble, reply.cards);
    if (data.message_id != null) setMessageId(bubble, data.message_id);
    if (data.user_message_id != null) setMessageId(userMsg, data.user_message_id);
    if (reply.kind) bubble.el.dataset.kind = str(reply.kind);
    if (reply.escalated) bubble.el.dataset.escalated = 'true';
    // Nothing to show (e.g. the message went to a person): keep the element for tests, hide it.
    if (!bubble.textEl.textContent && !bubble.cards.length) bubble.el.hidden = true;
    else addThumbs(bubble);
    if (reply.notice) notice(str(reply.notice));
    setChips(reply.chips);
    if (reply.state) setState(reply.state);
    bubble.el.dataset.done = 'true';
  }

  // A reply without words of its own (a person has the chat): the shopper's message gets its id,
  // the notice is shown, but the same notice is not repeated after every message.
  function finishQuiet(data, userMsg) {
    const reply = (data && data.reply) || {};
    if (data.user_message_id != null) setMessageId(userMsg, data.user_message_id);
    setChips(reply.chips);
    if (reply.state) setState(reply.state);
    const text = str(reply.notice).trim();
    const quiet = withPerson(convState);
    if (text && !(quiet && text === lastQuietNotice)) notice(text);
    if (quiet && text) lastQuietNotice = text;
  }

  // ---------- sending ----------
  function submitInput() {
    const text = ui.input.value;
    if (!text.trim() || busy) return;
    ui.input.value = '';
    onInput();
    send(text, true);
  }

  async function send(raw, fromInput) {
    if (!ui) init();
    if (!ui) return false;
    const text = str(raw).trim().slice(0, MAX_LEN);
    if (!text || busy || convState === 'closed') return false;
    busy = true; // claim before any await so two quick sends cannot interleave
    await boot();
    if (convState === 'closed') { busy = false; return false; } // restored as closed: start a new chat first
    gen++;
    setBusy(true);
    setChips([]);
    const userMsg = addMessage('user', text, { query: text });
    lastUserText = text;
    pending.push(userMsg); // the push stream may echo it before the reply says its id
    scrollDown(true);
    showTyping();
    let ok = false;
    try {
      let res = await postMessage(text);
      if (res.status === 404) { // the stored session is gone: start a new one once
        forgetSession();
        notice(t.expired);
        res = await postMessage(text);
      }
      if (!res.ok) throw await httpError(res);
      await readReply(res, userMsg);
      ok = true;
    } catch (e) {
      hideTyping();
      userMsg.el.classList.add('aisle-msg--failed');
      if (e instanceof HttpError) pending = pending.filter((p) => p !== userMsg); // refused: not stored
      notice(e instanceof HttpError ? e.message : t.network, 'error');
      // Give the text back so the shopper can retry without retyping.
      if (fromInput && !ui.input.value) { ui.input.value = text; onInput(); }
    } finally {
      hideTyping();
      setBusy(false);
      if (catchUpPending) catchUp();
    }
    return ok;
  }

  // ---------- history ----------
  // Renders one stored message unless it is already on screen.
  function renderStored(m) {
    if (!m || typeof m !== 'object' || seen.has(Number(m.id))) return null;
    const role = str(m.role);
    if (role === 'user') {
      lastUserText = str(m.text);
      return addMessage('user', m.text, { id: m.id });
    }
    if (role === 'system') {
      const n = notice(str(m.text));
      if (m.id != null) setMessageId(n, m.id);
      return n;
    }
    const agent = role === 'agent';
    const msg = addMessage(agent ? 'agent' : 'assistant', m.text, { id: m.id, query: lastUserText, sender: agent ? m.agent_name : null });
    if (Array.isArray(m.cards) && m.cards.length) setCards(msg, m.cards);
    if (m.kind) msg.el.dataset.kind = str(m.kind);
    if (!agent) addThumbs(msg); // thumbs rate the assistant, not a person
    msg.el.dataset.done = 'true';
    return msg;
  }

  // A message from the push stream or a poll: skip what is on screen, and recognise the shopper's
  // own messages (sent from this page, not numbered yet) instead of showing them twice.
  const norm = (s) => str(s).replace(/\s+/g, ' ').trim();
  function ingest(m) {
    if (!m || typeof m !== 'object' || m.id == null) return;
    const id = Number(m.id);
    if (!Number.isFinite(id) || seen.has(id)) return;
    if (str(m.role) === 'user') {
      const mine = pending.find((p) => norm(p.textEl.textContent) === norm(m.text));
      if (mine) {
        mine.el.classList.remove('aisle-msg--failed'); // it did arrive after all
        setMessageId(mine, id);
        return;
      }
    }
    renderStored(m);
    if (ui.panel.hidden && str(m.role) !== 'user') ui.root.dataset.unread = 'true';
  }

  function greet() {
    const g = addMessage('assistant', t.greeting);
    g.el.classList.add('aisle-greeting');
    g.el.dataset.greeting = 'true';
    setChips(t.chips);
  }

  function boot() {
    if (!booted) booted = restore();
    return booted;
  }
  async function restore() {
    if (!sessionId) { greet(); return; }
    try {
      const body = await fetchHistory();
      const msgs = Array.isArray(body && body.messages) ? body.messages : [];
      if (!msgs.length) greet();
      for (const m of msgs) renderStored(m);
      setState(body.state, body, true);
      scrollDown(true);
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) { forgetSession(); greet(); return; }
      greet();
      notice(t.restoreFailed, 'error');
    }
  }

  // Fetches the history and shows what is new; the answer is dropped if a send started meanwhile.
  async function syncHistory() {
    const started = gen;
    const sid = sessionId;
    if (!sid) return;
    try {
      const body = await fetchHistory();
      if (started !== gen || busy || sid !== sessionId) return;
      for (const m of (Array.isArray(body.messages) ? body.messages : [])) {
        if (m && Number(m.id) > maxSeenId) ingest(m);
      }
      setState(body.state, body, true);
    } catch (_) { /* transient: the next poll or event tries again */ }
  }

  // After the chat leaves a person's hands: pick up what the stream had no time to deliver.
  function catchUp() {
    if (!sessionId) return;
    if (busy) { catchUpPending = true; return; } // after the current send
    catchUpPending = false;
    syncHistory();
  }

  // ---------- push stream (while a person has, or is about to take, the chat) ----------
  const canPush = () => typeof window.EventSource === 'function';
  function openStream() {
    if (stream || pushBroken || !sessionId || !canPush()) return;
    const sid = sessionId;
    let es;
    try {
      es = new EventSource(api('/api/chat/sessions/' + encodeURIComponent(sid) + '/events?after=' + maxSeenId));
    } catch (_) { pushBroken = true; return; }
    stream = es;
    const live = () => stream === es && sessionId === sid;
    const parse = (e) => { try { return JSON.parse(e.data); } catch (_) { return null; } };
    es.addEventListener('message', (e) => {
      if (!live()) return;
      const m = parse(e);
      if (m && typeof m === 'object' && m.id == null && e.lastEventId) m.id = e.lastEventId;
      ingest(m);
    });
    es.addEventListener('state', (e) => {
      if (!live()) return;
      const d = parse(e);
      if (d && typeof d === 'object') setState(d.state, d);
    });
    es.addEventListener('error', () => {
      if (!live()) return;
      // CONNECTING: the browser reconnects by itself, resuming after Last-Event-ID.
      // CLOSED: it gave up for good (an HTTP error, not an event stream): poll instead.
      if (es.readyState === 2) {
        const lingering = !withPerson(convState);
        stopStream();
        pushBroken = true;
        if (lingering) catchUp();
        schedulePoll();
      }
    });
  }
  function stopStream() {
    clearTimeout(lingerTimer);
    lingerTimer = 0;
    if (stream) stream.close();
    stream = null;
  }

  // The fallback: without a working push stream, the history is fetched every few seconds.
  function schedulePoll() {
    clearTimeout(pollTimer);
    if (!sessionId || !withPerson(convState)) return;
    if (stream || (!pushBroken && canPush())) return; // messages are pushed
    pollTimer = setTimeout(poll, POLL_MS);
  }
  async function poll() {
    if (busy || document.hidden || !sessionId) { schedulePoll(); return; }
    await syncHistory();
    schedulePoll();
  }

  // ---------- a new chat after a closed one ----------
  async function newChat() {
    if (busy || !ui) return;
    busy = true;
    setBusy(true);
    stopStream();
    clearTimeout(pollTimer);
    const old = sessionId;
    forgetSession();
    try {
      await ensureSession();
    } catch (e) {
      // Keep showing (and remembering) the closed chat; the button stays for another try.
      sessionId = old;
      if (old) store.set('localStorage', SESSION_KEY, old);
      notice(e instanceof HttpError ? e.message : t.newChatFailed, 'error');
      setBusy(false);
      return;
    }
    gen++;
    hideTyping();
    ui.log.textContent = '';
    seen.clear();
    maxSeenId = 0;
    pending = [];
    lastUserText = '';
    catchUpPending = false;
    booted = Promise.resolve();
    delete ui.root.dataset.unread;
    setState('bot', { agent_name: null, queue_position: null });
    greet();
    scrollDown(true);
    setBusy(false);
  }

  // ---------- start ----------
  function init() {
    if (ui || !document.body) return;
    if (document.getElementById('aisle-widget')) return;
    build();
  }

  window.aisleWidget = {
    open() { open(true); },
    close() { close(false); },
    send(text) {
      if (!ui) init();
      if (ui && ui.panel.hidden) open(false);
      return send(text, false);
    },
  };
  if (document.body) init();
  else document.addEventListener('DOMContentLoaded', init, { once: true });
})();
