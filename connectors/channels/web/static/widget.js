/*
 * Switchboard chat widget. One tag on the shop's page:
 *   <script src="https://GATEWAY/channels/<shop>/web/widget.js" data-key="<public key>" async></script>
 * No framework, no build step (ES2017). Everything lives in a Shadow DOM, so the host page's
 * CSS does not reach the widget and the widget's CSS does not reach the page.
 * Bot text is untrusted: it is only ever put into text nodes; links are built as elements
 * and only for http(s) URLs.
 */
(function () {
  "use strict";

  var script = document.currentScript ||
    document.querySelector('script[src*="/web/widget.js"][data-key]');
  if (!script || !script.src) return;
  var src = new URL(script.src, document.baseURI);
  var base = src.origin + src.pathname.replace(/\/widget\.js$/, ""); // …/channels/<shop>/web
  var key = script.getAttribute("data-key") || "";
  var wsBase = base.replace(/^http/, "ws");
  var storeKey = "switchboard:" + base + ":token";
  var openKey = "switchboard:" + base + ":open";
  if (window.__switchboardWidgets && window.__switchboardWidgets[base]) return; // pasted twice
  window.__switchboardWidgets = window.__switchboardWidgets || {};
  window.__switchboardWidgets[base] = true;

  var URL_RE = /\[([^\]\n]{1,200})\]\((https?:\/\/[^\s)]+)\)|(https?:\/\/[^\s<>"']+)/g;
  var TRAILING = /[.,;:!?)\]'"]+$/;
  var MAX_TEXT = 4000;

  // ---- small helpers ------------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        if (name === "text") node.textContent = attrs[name];
        else if (name === "class") node.className = attrs[name];
        else node.setAttribute(name, attrs[name]);
      });
    }
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function safeUrl(value) {
    try {
      var url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(text, href) {
    return el("a", { href: href, target: "_blank", rel: "noopener noreferrer nofollow", text: text });
  }

  // Text with [title](url) and bare URLs made clickable; everything else stays plain text.
  function richText(text) {
    var frag = document.createDocumentFragment();
    var last = 0;
    var match;
    text = String(text || "");
    URL_RE.lastIndex = 0;
    while ((match = URL_RE.exec(text)) !== null) {
      var raw = match[0];
      var title = match[1];
      var href = match[2] || match[3];
      var tail = "";
      if (!title) {
        var trailing = href.match(TRAILING);
        if (trailing) {
          tail = trailing[0];
          href = href.slice(0, href.length - tail.length);
        }
      }
      var safe = safeUrl(href);
      frag.appendChild(document.createTextNode(text.slice(last, match.index)));
      if (safe) frag.appendChild(link(title || href, safe));
      else frag.appendChild(document.createTextNode(title ? raw : href));
      if (tail) frag.appendChild(document.createTextNode(tail));
      last = match.index + raw.length;
    }
    frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }

  function newId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }

  function storage(kind) {
    try {
      var s = window[kind];
      var probe = "switchboard:probe";
      s.setItem(probe, "1");
      s.removeItem(probe);
      return s;
    } catch (e) {
      return null; // private mode or blocked storage: the conversation lasts for this page
    }
  }
  var local = storage("localStorage");
  var session = storage("sessionStorage");
  function getToken() { return local ? local.getItem(storeKey) : null; }
  function setToken(token) { if (local) local.setItem(storeKey, token); }
  function dropToken() { if (local) local.removeItem(storeKey); }

  function validColor(value, fallback) {
    return typeof value === "string" && /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/.test(value) ? value : fallback;
  }

  // ---- the UI -------------------------------------------------------------------------------

  var CSS = [
    ":host{all:initial;}",
    "*{box-sizing:border-box;}",
    ".root{position:fixed;bottom:20px;right:20px;z-index:2147483000;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1b1f24;}",
    ".root.left{right:auto;left:20px;}",
    ".launcher{width:56px;height:56px;border-radius:50%;border:0;cursor:pointer;background:var(--sb-primary);color:var(--sb-text);box-shadow:0 4px 14px rgba(0,0,0,.25);display:flex;align-items:center;justify-content:center;padding:0;}",
    ".launcher svg{width:28px;height:28px;fill:currentColor;}",
    ".launcher:focus-visible,.panel button:focus-visible,.panel input:focus-visible,.panel a:focus-visible{outline:3px solid #ffbf47;outline-offset:2px;}",
    ".panel{position:absolute;bottom:70px;right:0;width:360px;max-width:calc(100vw - 40px);height:520px;max-height:calc(100vh - 110px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden;}",
    ".root.left .panel{right:auto;left:0;}",
    ".panel[hidden]{display:none;}",
    ".header{background:var(--sb-primary);color:var(--sb-text);padding:12px 14px;display:flex;align-items:center;gap:8px;}",
    ".title{font-weight:600;font-size:15px;margin:0;flex:1;}",
    ".status{font-size:12px;opacity:.85;}",
    ".close{background:transparent;border:0;color:inherit;font-size:22px;line-height:1;cursor:pointer;padding:2px 6px;}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f7f9;}",
    ".msg{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;overflow-wrap:anywhere;}",
    ".msg.bot{background:#fff;border:1px solid #e3e6ea;align-self:flex-start;border-bottom-left-radius:4px;}",
    ".msg.visitor{background:var(--sb-primary);color:var(--sb-text);align-self:flex-end;border-bottom-right-radius:4px;}",
    ".msg.visitor a{color:inherit;}",
    ".msg.pending{opacity:.6;}",
    ".msg.notice{align-self:center;background:transparent;color:#5b636d;font-size:12px;text-align:center;}",
    ".msg a{color:#0b57d0;}",
    ".chips{display:flex;flex-wrap:wrap;gap:6px;margin-top:8px;}",
    ".chip{border:1px solid var(--sb-primary);color:var(--sb-primary);background:#fff;border-radius:16px;padding:5px 11px;font:inherit;font-size:13px;cursor:pointer;}",
    ".chip:hover:not([disabled]){background:var(--sb-primary);color:var(--sb-text);}",
    ".chip[disabled]{opacity:.5;cursor:default;}",
    ".sources{margin-top:6px;font-size:12px;color:#5b636d;}",
    // A product under a knowledge answer: picture, name, price, facts and a link button.
    ".cards{display:flex;flex-direction:column;gap:8px;margin-top:8px;white-space:normal;}",
    ".card{display:flex;gap:10px;border:1px solid #e3e6ea;border-radius:10px;padding:8px;background:#fafbfc;}",
    ".card-img{width:72px;height:72px;flex:none;border-radius:6px;object-fit:cover;background:#eef0f3;}",
    ".card-body{display:flex;flex-direction:column;gap:2px;min-width:0;}",
    ".card-title{font-weight:600;}",
    ".card-price{font-weight:600;color:var(--sb-primary);}",
    ".card-fact{font-size:12px;color:#5b636d;}",
    ".msg .card-link{align-self:flex-start;margin-top:4px;padding:4px 10px;border-radius:14px;background:var(--sb-primary);color:var(--sb-text);text-decoration:none;font-size:13px;}",
    ".sources ul{margin:2px 0 0;padding-left:16px;}",
    ".typing{align-self:flex-start;padding:8px 12px;background:#fff;border:1px solid #e3e6ea;border-radius:12px;}",
    ".typing[hidden]{display:none;}",
    ".dot{display:inline-block;width:6px;height:6px;margin:0 2px;border-radius:50%;background:#8a929b;animation:sb-blink 1.2s infinite both;}",
    ".dot:nth-child(2){animation-delay:.2s;}.dot:nth-child(3){animation-delay:.4s;}",
    "@keyframes sb-blink{0%,80%,100%{opacity:.25;}40%{opacity:1;}}",
    "@media (prefers-reduced-motion:reduce){.dot{animation:none;}}",
    ".form{display:flex;gap:6px;padding:10px;border-top:1px solid #e3e6ea;background:#fff;}",
    ".input{flex:1;border:1px solid #c9ced4;border-radius:8px;padding:8px 10px;font:inherit;color:#1b1f24;background:#fff;min-width:0;}",
    ".send{border:0;border-radius:8px;padding:8px 14px;background:var(--sb-primary);color:var(--sb-text);font:inherit;font-weight:600;cursor:pointer;}",
    ".send[disabled]{opacity:.6;cursor:default;}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;}",
    // Phones: the open panel takes the whole screen (a 360 px card with margins leaves no room
    // to read); its height follows the visible viewport, so the input stays above the keyboard.
    "@media (max-width:480px){",
    ".root{bottom:16px;right:16px;}.root.left{left:16px;}",
    ".panel,.root.left .panel{position:fixed;top:0;left:0;right:0;bottom:auto;width:100%;max-width:none;height:100vh;height:100dvh;max-height:none;border-radius:0;box-shadow:none;}",
    ".input{font-size:16px;}", // under 16 px, iOS zooms the page when the input gets focus
    "}"
  ].join("\n");

  var ICON = '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg>';

  var host = el("div", { "data-switchboard-widget": "" });
  var shadow = host.attachShadow({ mode: "open" });
  var style = el("style", { text: CSS });
  var root = el("div", { class: "root" });
  var launcher = el("button", { class: "launcher", type: "button", "aria-label": "Chat with us",
                                "aria-expanded": "false", "aria-controls": "sb-panel" });
  launcher.innerHTML = ICON; // a constant, never data
  var title = el("h2", { class: "title", id: "sb-title", text: "Chat" });
  var status = el("span", { class: "status", role: "status", text: "" });
  var closeBtn = el("button", { class: "close", type: "button", "aria-label": "Close chat", text: "\u00d7" });
  var typing = el("div", { class: "typing", hidden: "" }, [
    el("span", { class: "sr", text: "The assistant is typing" }),
    el("span", { class: "dot", "aria-hidden": "true" }),
    el("span", { class: "dot", "aria-hidden": "true" }),
    el("span", { class: "dot", "aria-hidden": "true" })
  ]);
  // The typing indicator is always the log's last child; messages go in before it.
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions",
                        "aria-label": "Conversation", tabindex: "0" }, [typing]);
  var input = el("input", { class: "input", type: "text", maxlength: String(MAX_TEXT),
                            autocomplete: "off", "aria-label": "Type your message",
                            placeholder: "Type your message\u2026" });
  var send = el("button", { class: "send", type: "submit", text: "Send" });
  var form = el("form", { class: "form" }, [input, send]);
  var panel = el("div", { class: "panel", id: "sb-panel", role: "dialog", "aria-labelledby": "sb-title",
                          hidden: "" }, [
    el("div", { class: "header" }, [title, status, closeBtn]),
    log,
    form
  ]);
  root.appendChild(panel);
  root.appendChild(launcher);
  shadow.appendChild(style);
  shadow.appendChild(root);

  function mount() { (document.body || document.documentElement).appendChild(host); }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  function applyConfig(config) {
    var theme = (config && config.theme) || {};
    root.style.setProperty("--sb-primary", validColor(theme.primary, "#1f6feb"));
    root.style.setProperty("--sb-text", validColor(theme.text, "#ffffff"));
    root.classList.toggle("left", theme.position === "left");
    title.textContent = String(theme.title || (config && config.name) || "Chat").slice(0, 80);
    greeting = config && typeof config.greeting === "string" ? config.greeting : "";
  }
  applyConfig(null);

  // ---- the conversation ---------------------------------------------------------------------

  var greeting = "";
  var configLoaded = null;
  var ws = null;
  var connected = false; // a session frame arrived on the current socket
  var started = false;
  var stopped = false; // the gateway refused this widget key: do not retry
  var attempts = 0;
  var retryTimer = null;
  var lastError = null;
  var restoreNotice = null; // said once the fresh conversation is on screen
  var pending = []; // visitor messages sent but not yet answered: {id, text, payload, node}

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function disableOldChips() {
    var chips = log.querySelectorAll(".chip");
    for (var i = 0; i < chips.length; i++) chips[i].disabled = true;
  }

  function addVisitor(text, extraClass) {
    var node = el("div", { class: "msg visitor" + (extraClass ? " " + extraClass : "") });
    node.appendChild(el("span", { class: "sr", text: "You: " }));
    node.appendChild(richText(text));
    log.insertBefore(node, typing);
    scrollDown();
    return node;
  }

  function addNotice(text) {
    var node = el("div", { class: "msg notice", text: text });
    log.insertBefore(node, typing);
    scrollDown();
  }

  function addBot(message, live) {
    // A person of the shop's team (an agent's reply) is named; the bot is "Assistant".
    var agent = message.agent && typeof message.agent.name === "string" ? message.agent.name.slice(0, 200) : null;
    var node = el("div", { class: agent ? "msg bot agent" : "msg bot" });
    node.appendChild(el("span", { class: "sr", text: (agent || "Assistant") + ": " }));
    if (agent) node.appendChild(el("strong", { class: "who", "aria-hidden": "true", text: agent + ": " }));
    node.appendChild(richText(message.text));
    var buttons = Array.isArray(message.buttons) ? message.buttons : [];
    if (buttons.length) {
      var chips = el("div", { class: "chips", role: "group", "aria-label": "Suggested replies" });
      buttons.forEach(function (button) {
        if (!button || typeof button.title !== "string") return;
        var chip = el("button", { class: "chip", type: "button", text: button.title });
        chip.addEventListener("click", function () {
          var payload = typeof button.payload === "string" ? button.payload : "";
          submit(button.title, payload && payload !== button.title ? payload : null);
          input.focus(); // the chip is now disabled: keep the keyboard in the conversation
        });
        if (!live) chip.disabled = true;
        chips.appendChild(chip);
      });
      node.appendChild(chips);
    }
    var products = Array.isArray(message.products) ? message.products : [];
    if (products.length) {
      var cards = el("div", { class: "cards" });
      products.forEach(function (product) {
        if (product && typeof product.name === "string") cards.appendChild(productCard(product));
      });
      node.appendChild(cards);
    }
    var sources = Array.isArray(message.sources) ? message.sources : [];
    if (sources.length) {
      var list = el("ul");
      sources.forEach(function (source) {
        if (!source) return;
        var label = String(source.title || source.url || "").slice(0, 200);
        var href = source.url ? safeUrl(source.url) : null;
        list.appendChild(el("li", null, [href ? link(label, href) : document.createTextNode(label)]));
      });
      node.appendChild(el("div", { class: "sources" }, [el("span", { text: "Sources:" }), list]));
    }
    log.insertBefore(node, typing);
    scrollDown();
  }

  // A card for one product: its picture (dropped if it does not load), name, price, facts and
  // a "View product" link. Every value is text; links and pictures only from http(s) URLs.
  function productCard(product) {
    var name = String(product.name).slice(0, 200);
    var card = el("div", { class: "card", role: "group", "aria-label": name });
    var image = product.image ? safeUrl(product.image) : null;
    if (image) {
      var picture = el("img", { class: "card-img", src: image, alt: name, loading: "lazy" });
      picture.addEventListener("error", function () { picture.remove(); });
      card.appendChild(picture);
    }
    var body = el("div", { class: "card-body" }, [el("span", { class: "card-title", text: name })]);
    if (typeof product.price === "string" && product.price) {
      body.appendChild(el("span", { class: "card-price", text: product.price.slice(0, 40) }));
    }
    (Array.isArray(product.facts) ? product.facts : []).slice(0, 4).forEach(function (fact) {
      if (typeof fact === "string") body.appendChild(el("span", { class: "card-fact", text: fact.slice(0, 200) }));
    });
    var href = product.url ? safeUrl(product.url) : null;
    if (href) {
      var button = link("View product", href);
      button.className = "card-link";
      button.setAttribute("aria-label", "View " + name);
      body.appendChild(button);
    }
    card.appendChild(body);
    return card;
  }

  function renderHistory(history) {
    // Rebuilt quietly: screen readers hear new messages, not the whole log again.
    log.setAttribute("aria-busy", "true");
    while (log.firstChild && log.firstChild !== typing) log.removeChild(log.firstChild);
    if (typing.parentNode !== log) log.appendChild(typing);
    if (!history.length && greeting) addBot({ text: greeting }, false);
    history.forEach(function (entry, index) {
      if (!entry) return;
      if (entry.from === "visitor") addVisitor(entry.text);
      // Only the last bot message's chips still make sense to click.
      else addBot(entry, index === history.length - 1);
    });
    pending.forEach(function (item) { item.node = addVisitor(item.text, "pending"); });
    log.setAttribute("aria-busy", "false");
    scrollDown();
  }

  function setStatus(text) { status.textContent = text; }

  function transmit(item) {
    var frame = { type: "message", text: item.text, id: item.id };
    if (item.payload) frame.payload = item.payload;
    ws.send(JSON.stringify(frame));
  }

  function submit(text, payload) {
    text = String(text || "").trim();
    if (!text) return;
    if (text.length > MAX_TEXT) text = text.slice(0, MAX_TEXT);
    disableOldChips();
    var item = { id: newId(), text: text, payload: payload, node: null };
    item.node = addVisitor(text, "pending");
    pending.push(item);
    if (connected && ws && ws.readyState === 1) transmit(item);
    else connect(); // sent once the session is back
  }

  function settle(id, duplicate) {
    for (var i = 0; i < pending.length; i++) {
      if (pending[i].id !== id) continue;
      var item = pending.splice(i, 1)[0];
      if (!item.node) return;
      // A resend the gateway had already answered is in the history shown on reconnect.
      if (duplicate && item.shownInHistory) item.node.remove();
      else item.node.classList.remove("pending");
      return;
    }
  }

  var handlers = {
    session: function (frame) {
      connected = true;
      attempts = 0;
      lastError = null;
      setStatus("");
      if (typeof frame.token === "string") setToken(frame.token);
      var history = Array.isArray(frame.history) ? frame.history : [];
      var texts = {};
      history.forEach(function (entry) { if (entry && entry.from === "visitor") texts[entry.text] = true; });
      pending.forEach(function (item) { item.shownInHistory = !!texts[item.text]; });
      renderHistory(history);
      if (restoreNotice) { addNotice(restoreNotice); restoreNotice = null; }
      pending.forEach(transmit);
    },
    typing: function () {
      typing.hidden = false;
      scrollDown();
    },
    bot: function (frame) {
      addBot(frame, true);
    },
    done: function (frame) {
      typing.hidden = true;
      settle(frame.id, frame.duplicate === true);
    },
    error: function (frame) {
      lastError = frame.code;
      if (frame.code === "unavailable") {
        typing.hidden = true;
        addNotice(String(frame.detail || "The assistant is unavailable right now; please try again."));
      } else if (frame.code !== "invalid_token") {
        addNotice(String(frame.detail || "Something went wrong."));
      }
    },
    pong: function () {}
  };

  function onFrame(event) {
    var frame;
    try { frame = JSON.parse(event.data); } catch (e) { return; }
    if (!frame || typeof frame.type !== "string" || !handlers.hasOwnProperty(frame.type)) return;
    handlers[frame.type](frame);
  }

  function onClose(event) {
    var wasConnected = connected;
    connected = false;
    ws = null;
    typing.hidden = true;
    if (event.code === 4403 && lastError === "invalid_token") {
      // The stored conversation is not ours to resume (expired, forged, another shop's).
      dropToken();
      restoreNotice = "Your earlier conversation could not be restored; starting a new one.";
      connect();
      return;
    }
    if (event.code === 4403 || event.code === 4404) {
      stopped = true;
      setStatus("Chat unavailable");
      input.disabled = true;
      send.disabled = true;
      return;
    }
    if (wasConnected) attempts = 0;
    scheduleReconnect();
  }

  function scheduleReconnect() {
    if (retryTimer || stopped) return;
    // Exponential backoff with jitter, 0.5 s up to 30 s, so a restarted gateway is not stormed.
    var delay = Math.min(30000, 500 * Math.pow(2, attempts)) * (0.75 + Math.random() * 0.5);
    attempts += 1;
    setStatus("Reconnecting\u2026");
    retryTimer = setTimeout(function () { retryTimer = null; connect(); }, delay);
  }

  function connect() {
    if (stopped || ws) return;
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = null; }
    lastError = null;
    var socket;
    try {
      socket = new WebSocket(wsBase + "/socket?key=" + encodeURIComponent(key));
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = socket;
    socket.onopen = function () { socket.send(JSON.stringify({ type: "hello", token: getToken() })); };
    socket.onmessage = function (event) { if (ws === socket) onFrame(event); };
    socket.onclose = function (event) { if (ws === socket) onClose(event); };
  }

  function loadConfig() {
    if (!configLoaded) {
      configLoaded = fetch(base + "/config?key=" + encodeURIComponent(key), { credentials: "omit" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(applyConfig)
        .catch(function () { /* the widget still works with the default look */ });
    }
    return configLoaded;
  }

  // On a phone the panel fills the visible viewport: when the on-screen keyboard opens, the
  // visual viewport shrinks (and may scroll) while 100dvh does not follow everywhere, so the
  // panel is fitted to it and the input stays in sight.
  var phone = window.matchMedia ? window.matchMedia("(max-width: 480px)") : null;
  var viewport = window.visualViewport || null;
  function fitToViewport() {
    if (phone && phone.matches && viewport && !panel.hidden) {
      panel.style.height = viewport.height + "px";
      panel.style.top = viewport.offsetTop + "px";
    } else {
      panel.style.height = "";
      panel.style.top = "";
    }
  }
  if (viewport) {
    viewport.addEventListener("resize", fitToViewport);
    viewport.addEventListener("scroll", fitToViewport);
  }
  if (phone && phone.addEventListener) phone.addEventListener("change", fitToViewport);

  function open(restoring) {
    panel.hidden = false;
    fitToViewport();
    launcher.setAttribute("aria-expanded", "true");
    if (session) session.setItem(openKey, "1");
    if (!started) {
      started = true;
      loadConfig().then(function () { connect(); });
    }
    if (!restoring) input.focus(); // a reload must not steal the page's focus
  }

  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    if (session) session.removeItem(openKey);
    launcher.focus();
  }

  launcher.addEventListener("click", function () { if (panel.hidden) open(false); else close(); });
  closeBtn.addEventListener("click", close);
  panel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { event.preventDefault(); close(); }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (input.disabled) return;
    submit(input.value, null);
    input.value = "";
  });
  // Back online after a drop: try now instead of waiting out the backoff.
  window.addEventListener("online", function () { if (started && !ws) connect(); });

  loadConfig();
  if (session && session.getItem(openKey) === "1") open(true);
})();
