// The agents' inbox: the queue of conversations handed to a person, one thread at a time, and
// what an agent does with it (claim, reply, note, transfer, resolve), live.
//
// The queue is the admin API's conversation list in the states `queued` (oldest first: they
// waited longest) and `assigned`; each item's `handoff` says why, since when, what the bot knew
// and who has it. Live events come over one EventSource on /api/v1/events (server-sent events
// of the principal's shop, the visitor's id replaced by the opaque conversation id). They are a
// notification, not a record: the page reloads what an event touches from the API, and reloads
// the queue whenever the stream (re)connects, so a lost event costs nothing but a moment.
//
// Keys (none while typing in a field): j/k next/previous, c claim, r reply, n note, t transfer,
// e resolve, m sound, ? help. The queue is a WAI-ARIA listbox (selection follows focus); a
// polite live region announces new escalations and visitors' messages; the unread count shows
// in the header and the document's title, with a short beep (WebAudio, mutable) and a flash.

import { api, ApiError, el, say, setCsrf } from "./api.js";
import { logIn, logOut } from "./session.js";
import { transcriptNodes } from "./inbox-transcript.js";
import { authorName, words } from "./timeline.js";
import { guardLeaving, mayLogOut, trackUnsaved } from "./unsaved.js";

const $ = (id) => document.getElementById(id);
const TITLE = "Inbox · Switchboard";
const MUTED_KEY = "switchboard.inbox.muted";
const PAGE_SIZE = 200; // the API's largest page: a shop's open handoffs fit in one
const RECENT = 200; // messages of a thread shown at first (the API's default)
const WHOLE = 1000; // "Show older messages": as many as the API gives at once
const RELOAD_DELAY_MS = 150; // events arriving together cause one reload, not one each
const CHANNELS = { web: "Web chat", rest: "API", sms: "SMS", whatsapp: "WhatsApp",
  email: "Email" };
const LIVE_KINDS = ["handoff.requested", "handoff.claimed", "handoff.transferred",
  "handoff.resolved", "satisfaction.given", "message.visitor", "message.agent",
  "message.delivery", "note.added"];

const state = {
  session: null,
  items: new Map(), // conversation id -> list item (with its handoff)
  order: [], // conversation ids as listed
  fetchedAt: 0, // Date.now() when the queue was read (waiting times tick from there)
  selected: null, // conversation id
  limit: RECENT, // how many of its latest messages the thread shows
  thread: null, // the selected conversation's transcript as the API answered it
  unread: new Map(), // conversation id -> new escalations and visitors' messages not yet seen
  agents: [], // the people a conversation can be transferred to
  source: null,
  retry: 0,
  retryTimer: null,
  queueTimer: null,
  threadTimer: null,
  queueSeq: 0,
  threadSeq: 0,
  loading: false, // the selected conversation's thread has not shown yet
  early: null, // keys pressed for it meanwhile: { keys: [...], typed: "" } (see pageKeys)
  muted: localStorage.getItem(MUTED_KEY) === "1",
  audio: null,
};

// ---------------------------------------------------------------------------------------------
// Session

async function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  guardLeaving(() => state.session !== null);
  trackUnsaved(() => [[$("reply-text"), "a reply not sent"], [$("note-text"), "a note not added"]]
    .filter(([box]) => box.value.trim()).map(([, what]) => what));
  $("mute").addEventListener("click", toggleMute);
  $("help-open").addEventListener("click", showHelp);
  $("claim").addEventListener("click", claim);
  $("transfer").addEventListener("click", transfer);
  $("resolve").addEventListener("click", resolve);
  $("reply-form").addEventListener("submit", reply);
  $("note-form").addEventListener("submit", note);
  for (const box of [$("reply-text"), $("note-text")]) box.addEventListener("keydown", boxKeys);
  $("queue").addEventListener("keydown", listKeys);
  document.addEventListener("keydown", pageKeys);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.selected) markRead(state.selected);
  });
  window.addEventListener("hashchange", () => {
    const id = fromHash();
    if (id && id !== state.selected && state.session) select(id);
  });
  setInterval(tick, 1000);
  showMute();
  try {
    entered(await api("GET", "/session"));
  } catch {
    showLogin();
  }
}

function showLogin(message = "") {
  state.session = null;
  disconnect();
  for (const id of ["app", "who", "logout", "mute", "help-open", "owner-link", "forbidden",
    "unread"]) $(id).hidden = true;
  $("login").hidden = false;
  setLive("Offline", false);
  say($("login-error"), message, message ? "error" : "");
  $("login-email").focus();
}

function login(event) {
  return logIn(event, entered);
}

async function logout() {
  if (!mayLogOut()) return; // a reply or note being written stays
  disconnect();
  await logOut();
  state.unread.clear();
  showUnread();
  showLogin();
}

function roleOf(session) {
  return session.role || (session.shop && session.shop.role) || "";
}

function myId() {
  const user = state.session && state.session.user;
  return user ? String(user.id) : "";
}

function entered(session) {
  if (session.csrf_token) setCsrf(session.csrf_token);
  const role = roleOf(session);
  const user = session.user || {};
  const shop = session.shop || {};
  $("who").textContent = [user.name || user.email, shop.name || shop.slug, role]
    .filter(Boolean).join(" · ");
  $("login").hidden = true;
  for (const id of ["who", "logout", "owner-link"]) $(id).hidden = false;
  if (role !== "agent" && role !== "owner") {
    state.session = null;
    $("forbidden").hidden = false;
    return;
  }
  state.session = session;
  for (const id of ["app", "mute", "help-open"]) $(id).hidden = false;
  connect();
  loadAgents();
  loadQueue().then(() => {
    const wanted = fromHash();
    if (wanted) select(wanted, { focus: false });
  });
}

/** A 401 means the session ended (expired, logged out elsewhere): back to the login form. */
function failed(node, error) {
  if (error instanceof ApiError && error.status === 401) {
    showLogin("Your session ended; please log in again.");
    return true;
  }
  say(node, error.detail || String(error), "error");
  return false;
}

// ---------------------------------------------------------------------------------------------
// The queue (a listbox: one option per conversation)

function handoffOf(item) {
  return (item && item.handoff) || {};
}

/** How long the visitor has waited for a person: ticking while nobody took the conversation
 * (from the API's count, so the browser's clock does not matter), else as the API said. */
function waitingSeconds(item) {
  const handoff = handoffOf(item);
  if (typeof handoff.waiting_seconds !== "number") return null;
  const ticking = (handoff.status || "queued") === "queued";
  return handoff.waiting_seconds + (ticking ? (Date.now() - state.fetchedAt) / 1000 : 0);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} days`;
}

function channelName(channel) {
  return CHANNELS[channel] || channel || "";
}

/** A card's main line: what the visitor last wrote (the API's last_visitor_message), not
 * the conversation's last message, which is usually the bot's own "I've asked a person from
 * our team..." or an agent's reply; what they said when handed over when that has no text. A
 * visitor's message heard live reloads the queue, so this is always the stored record. */
function visitorText(item) {
  const said = item.last_visitor_message;
  return (said && said.text) || handoffOf(item).visitor_said || "";
}

/** What the bot already knows: intent, order number, the question it could not answer, and
 * what the visitor said when they were handed over (unless that is the question, or `shown`:
 * the card's main line already). */
function summaryText(handoff, shown = "") {
  const summary = handoff.summary || {};
  const said = handoff.visitor_said && handoff.visitor_said !== summary.question
    && handoff.visitor_said !== shown ? `said: “${handoff.visitor_said}”` : "";
  return [summary.intent ? `intent: ${words(summary.intent)}` : "",
    summary.order_number ? `order ${summary.order_number}` : "",
    summary.question ? `unanswered: “${summary.question}”` : "", said]
    .filter(Boolean).join(" · ");
}

function ownerText(handoff) {
  const assignee = handoff.assignee;
  if (handoff.status === "resolved") return "Resolved";
  if (!assignee) return "Waiting for an agent";
  return assignee.id === myId() ? "Yours" : `Taken by ${assignee.name || assignee.id}`;
}

/** Someone else holds it: nobody can claim it (409, owners too). */
function takenByOther(handoff) {
  return !!handoff && handoff.status === "assigned" && !!handoff.assignee
    && handoff.assignee.id !== myId();
}

/** Someone else holds it and the caller is no owner: the API refuses their reply, transfer
 * and resolve (409), so the page offers none of them, only reading and internal notes. */
function heldByOther(handoff) {
  return takenByOther(handoff) && roleOf(state.session || {}) !== "owner";
}

async function loadQueue() {
  const seq = ++state.queueSeq;
  const status = $("queue-status");
  try {
    // Oldest request first: whoever waited longest is served first.
    const pages = await Promise.all(["queued", "assigned"].map((wanted) => api("GET",
      "/conversations", { query: { state: wanted, sort: "waiting", page_size: PAGE_SIZE } })));
    if (seq !== state.queueSeq) return; // a newer load is under way
    state.fetchedAt = Date.now();
    const [queued, assigned] = pages.map((page) => (page.items || []).filter((i) => i.id));
    const before = state.items;
    state.items = new Map([...queued, ...assigned].map((item) => [item.id, item]));
    state.order = [...state.items.keys()];
    // A conversation that left the queue (resolved) has nothing unread any more; one an event
    // announced that this answer does not list yet keeps its count.
    for (const id of [...state.unread.keys()]) {
      if (before.has(id) && !state.items.has(id)) state.unread.delete(id);
    }
    renderQueue();
    showUnread();
    say(status, state.order.length
      ? `${queued.length} waiting, ${assigned.length} taken.` : "No conversation is waiting.");
    if (state.selected && state.items.has(state.selected)) showActions();
  } catch (error) {
    if (seq === state.queueSeq) failed(status, error);
  }
}

function scheduleQueue() {
  clearTimeout(state.queueTimer);
  state.queueTimer = setTimeout(loadQueue, RELOAD_DELAY_MS);
}

function optionId(id) {
  return `opt-${id}`;
}

function renderQueue() {
  const list = $("queue");
  const options = state.order.map((id) => {
    const item = state.items.get(id);
    const handoff = handoffOf(item);
    const unread = state.unread.get(id) || 0;
    const said = visitorText(item);
    const option = el("li", {
      role: "option", id: optionId(id), "data-id": id,
      "aria-selected": String(id === state.selected),
      class: ["conversation", handoff.status || "queued", unread ? "has-unread" : ""]
        .filter(Boolean).join(" "),
    },
    el("div", { class: "line" },
      el("span", { class: "channel" }, channelName(item.channel)),
      el("span", { class: "visitor" }, item.visitor || ""),
      el("span", { class: "wait", "data-id": id }, duration(waitingSeconds(item))),
      unread ? el("span", { class: "new" }, `${unread} new`) : null),
    el("div", { class: "last" }, said || "(no text)"),
    summaryText(handoff, said)
      ? el("div", { class: "summary" }, summaryText(handoff, said)) : null,
    el("div", { class: "owner" }, ownerText(handoff)));
    option.addEventListener("click", () => select(id));
    return option;
  });
  list.replaceChildren(...options);
  if (!options.length) list.append(el("li", { class: "empty", role: "presentation" },
    "Nobody is waiting. New conversations appear here by themselves."));
  if (state.selected && state.items.has(state.selected)) {
    list.setAttribute("aria-activedescendant", optionId(state.selected));
  } else {
    list.removeAttribute("aria-activedescendant");
  }
}

/** Waiting times tick every second (from the queue's answer, not the browser's clock). */
function tick() {
  for (const node of document.querySelectorAll("#queue .wait")) {
    node.textContent = duration(waitingSeconds(state.items.get(node.dataset.id)));
  }
  const item = state.selected && state.items.get(state.selected);
  if (item) $("thread-facts").textContent = threadFacts(item, state.thread);
}

function move(step) {
  if (!state.order.length) return;
  // Focus on the listbox: a screen reader says the option aria-activedescendant names.
  if (document.activeElement !== $("queue")) $("queue").focus({ preventScroll: true });
  const at = state.order.indexOf(state.selected);
  const next = at < 0 ? (step > 0 ? 0 : state.order.length - 1)
    : Math.min(state.order.length - 1, Math.max(0, at + step));
  if (state.order[next] !== state.selected) select(state.order[next], { focus: false });
}

function listKeys(event) {
  const steps = { ArrowDown: 1, ArrowUp: -1 };
  if (event.key in steps) {
    event.preventDefault();
    move(steps[event.key]);
  } else if (event.key === "Home" || event.key === "End") {
    event.preventDefault();
    const id = event.key === "Home" ? state.order[0] : state.order[state.order.length - 1];
    if (id) select(id, { focus: false });
  }
}

function fromHash() {
  const id = decodeURIComponent(window.location.hash.slice(1));
  return /^c_[A-Za-z0-9_-]+$/.test(id) ? id : null;
}

function select(id, { focus = false } = {}) {
  state.selected = id;
  if (fromHash() !== id) history.replaceState(null, "", `#${id}`);
  for (const option of $("queue").querySelectorAll('[role="option"]')) {
    option.setAttribute("aria-selected", String(option.dataset.id === id));
  }
  const option = $(optionId(id));
  if (option) {
    $("queue").setAttribute("aria-activedescendant", option.id);
    option.scrollIntoView({ block: "nearest" });
  }
  markRead(id);
  state.thread = null;
  state.loading = true;
  state.early = null;
  state.limit = RECENT;
  const item = state.items.get(id);
  $("thread-title").textContent = item
    ? [channelName(item.channel), item.visitor].filter(Boolean).join(" · ") : "Conversation";
  $("thread-facts").textContent = item ? threadFacts(item, null) : "";
  $("transcript").replaceChildren(el("li", { class: "event" }, "Loading…"));
  say($("thread-status"), "");
  showActions();
  loadThread(id).then(() => { if (focus) $("thread-title").focus(); });
}

// ---------------------------------------------------------------------------------------------
// Unread count and cues

function markRead(id) {
  if (!state.unread.has(id)) return;
  state.unread.delete(id);
  const option = $(optionId(id));
  if (option) {
    option.classList.remove("has-unread", "flash");
    const badge = option.querySelector(".new");
    if (badge) badge.remove();
  }
  showUnread();
}

function showUnread() {
  let total = 0;
  for (const count of state.unread.values()) total += count;
  $("unread-count").textContent = String(total);
  $("unread").hidden = total === 0;
  document.title = total ? `(${total}) ${TITLE}` : TITLE;
}

function bump(id) {
  state.unread.set(id, (state.unread.get(id) || 0) + 1);
  showUnread();
  const option = $(optionId(id));
  if (option) {
    option.classList.add("has-unread");
    option.classList.remove("flash");
    void option.offsetWidth; // restart the flash animation
    option.classList.add("flash");
  }
  $("unread").classList.remove("flash");
  void $("unread").offsetWidth;
  $("unread").classList.add("flash");
}

function announce(text) {
  // A log region: each addition is read out once; old lines are dropped to keep it short.
  const region = $("announce");
  region.append(el("p", {}, text));
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

function beep() {
  if (state.muted) return;
  try {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!state.audio) state.audio = new Context();
    const audio = state.audio;
    if (audio.state === "suspended") audio.resume().catch(() => {});
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    const now = audio.currentTime;
    tone.type = "sine";
    tone.frequency.setValueAtTime(880, now);
    tone.frequency.setValueAtTime(660, now + 0.12);
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.2, now + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.3);
    tone.connect(gain).connect(audio.destination);
    tone.start(now);
    tone.stop(now + 0.32);
  } catch {
    // No audio output (or the browser refuses it): the visible cue remains.
  }
}

function showMute() {
  // A toggle button: its name stays, aria-pressed says whether it is on.
  $("mute").setAttribute("aria-pressed", String(state.muted));
  $("mute").title = state.muted ? "New messages are silent (m)" : "New messages beep (m)";
}

function toggleMute() {
  state.muted = !state.muted;
  localStorage.setItem(MUTED_KEY, state.muted ? "1" : "0");
  showMute();
}

// ---------------------------------------------------------------------------------------------
// Live events

function setLive(text, up) {
  $("live").textContent = text;
  $("live").classList.toggle("up", up);
}

function disconnect() {
  clearTimeout(state.retryTimer);
  if (state.source) state.source.close();
  state.source = null;
}

function connect() {
  disconnect();
  const source = new EventSource("/api/v1/events");
  state.source = source;
  source.addEventListener("open", () => {
    state.retry = 0;
    setLive("Live", true);
    // Whatever happened while the stream was down (or before it opened) is read again.
    loadQueue();
    if (state.selected) scheduleThread();
  });
  source.addEventListener("error", () => {
    if (state.source !== source) return;
    setLive("Reconnecting…", false);
    // The browser retries by itself after a network error; a refused stream (the session
    // ended, the server restarted into a 5xx) is closed and ours to retry.
    if (source.readyState === EventSource.CLOSED) reconnectLater();
  });
  for (const kind of LIVE_KINDS) {
    source.addEventListener(kind, (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      onLive(kind, message || {});
    });
  }
}

function reconnectLater() {
  disconnect();
  const delay = Math.min(30_000, 1000 * 2 ** state.retry++);
  state.retryTimer = setTimeout(async () => {
    try {
      await api("GET", "/session");
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        showLogin("Your session ended; please log in again.");
        return;
      }
    }
    if (state.session) connect();
  }, delay);
}

/** An event's fields: the stream sends them flat ({conversation_id, visitor, channel, text,
 * ...}); a nested `data` is read too. */
function fieldsOf(message) {
  const nested = message.data && typeof message.data === "object" ? message.data : {};
  return { ...message, ...nested };
}

function labelOf(id, data) {
  const item = state.items.get(id);
  const channel = channelName((item && item.channel) || data.channel);
  const visitor = (item && item.visitor) || data.visitor || "";
  return [channel, visitor].filter(Boolean).join(" ") || "a conversation";
}

function onLive(kind, message) {
  const data = fieldsOf(message);
  const id = data.conversation_id || null;
  const seen = id === state.selected && document.visibilityState === "visible";
  switch (kind) {
    case "handoff.requested":
      if (id) bump(id);
      beep();
      announce(`New conversation waiting: ${labelOf(id, data)}.`);
      scheduleQueue();
      break;
    case "message.visitor":
      if (id && !seen) bump(id);
      beep();
      announce(`New message in ${labelOf(id, data)}${data.text ? `: ${data.text}` : "."}`);
      scheduleQueue();
      break;
    case "handoff.transferred": {
      const to = data.assignee || {};
      if (id && to.id && to.id === myId() && !seen) {
        bump(id);
        beep();
        announce(`A conversation was transferred to you: ${labelOf(id, data)}.`);
      }
      scheduleQueue();
      break;
    }
    case "handoff.claimed":
    case "handoff.resolved":
    case "message.agent":
      scheduleQueue();
      break;
    default:
      break;
  }
  if (id && id === state.selected) scheduleThread();
}

// ---------------------------------------------------------------------------------------------
// One thread: transcript, notes and what happened to its handoffs, in time order

function scheduleThread() {
  clearTimeout(state.threadTimer);
  state.threadTimer = setTimeout(() => { if (state.selected) loadThread(state.selected); },
    RELOAD_DELAY_MS);
}

function currentHandoff() {
  const item = state.items.get(state.selected);
  if (item && item.handoff) return item.handoff;
  const handoffs = (state.thread && state.thread.handoffs) || [];
  return handoffs.length ? handoffs[handoffs.length - 1] : null;
}

function threadFacts(item, thread) {
  const handoff = (item && item.handoff) || currentHandoff() || {};
  const status = handoff.status || (thread && thread.state) || "";
  const where = { queued: `waiting ${duration(waitingSeconds(item))}`,
    assigned: ownerText(handoff) }[status] || status;
  return [where, handoff.reason ? `reason: ${words(handoff.reason)}` : "",
    summaryText(handoff)].filter(Boolean).join(" · ");
}

async function loadThread(id) {
  const seq = ++state.threadSeq;
  try {
    const thread = await api("GET", `/conversations/${encodeURIComponent(id)}`,
      { query: { limit: state.limit } });
    if (seq !== state.threadSeq || id !== state.selected) return;
    state.thread = thread;
    state.loading = false;
    const item = state.items.get(id) || {};
    $("thread-title").textContent = [channelName(thread.channel || item.channel),
      thread.visitor || item.visitor].filter(Boolean).join(" · ") || "Conversation";
    $("thread-facts").textContent = threadFacts(state.items.get(id), thread);
    renderTranscript(thread);
    showActions();
    if (state.early) await replayEarly(state.early);
  } catch (error) {
    if (seq !== state.threadSeq) return;
    state.loading = false;
    state.early = null;
    $("thread-title").textContent = "Conversation";
    $("thread-actions").hidden = true;
    $("held").hidden = true;
    $("composer").hidden = true;
    failed($("thread-status"), error);
  }
}

function renderTranscript(thread) {
  const list = $("transcript");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const nodes = transcriptNodes(thread);
  if (thread.older_than && state.limit < WHOLE) {
    nodes.unshift(el("li", { class: "event" }, el("button", { type: "button",
      class: "secondary small", onclick: () => {
        state.limit = WHOLE;
        loadThread(state.selected);
      } }, "Show older messages")));
  }
  list.replaceChildren(...nodes);
  if (!nodes.length) list.append(el("li", { class: "event" }, "No messages yet."));
  if (atBottom || list.dataset.shown !== thread.id) list.scrollTop = list.scrollHeight;
  list.dataset.shown = thread.id || "";
}

function showActions() {
  const handoff = currentHandoff();
  const open = !!handoff && (handoff.status === "queued" || handoff.status === "assigned");
  const held = open && heldByOther(handoff);
  $("thread-actions").hidden = !open || held;
  $("composer").hidden = !state.selected || !state.thread;
  $("reply-form").hidden = !open || held;
  $("held").hidden = !held;
  if (held) {
    const who = handoff.assignee.name || "Another agent";
    $("held").textContent = `${who} has this conversation: you can read it and add internal `
      + `notes. To reply, ask ${who} or an owner to transfer it to you.`;
  }
  if (!open || held) return;
  const mine = handoff.assignee && handoff.assignee.id === myId();
  // An owner may reply, transfer and resolve what someone else holds, but not claim it.
  $("claim").hidden = takenByOther(handoff);
  $("claim").disabled = !!mine;
  $("claim").replaceChildren(mine ? "Yours" : "Claim", " ",
    el("kbd", { "aria-hidden": "true" }, "c"));
  renderAgents();
}

// ---------------------------------------------------------------------------------------------
// Actions

function selectedPath(action) {
  return `/conversations/${encodeURIComponent(state.selected)}/${action}`;
}

async function busy(button, work) {
  button.disabled = true;
  try {
    await work();
  } finally {
    button.disabled = false;
  }
}

async function claim() {
  if (!state.selected || !currentHandoff() || takenByOther(currentHandoff())) return;
  const status = $("thread-status");
  await busy($("claim"), async () => {
    try {
      const handoff = await api("POST", selectedPath("claim"));
      const item = state.items.get(state.selected);
      if (item && handoff) item.handoff = { ...item.handoff, ...handoff };
      say(status, "You have this conversation now.", "ok");
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        const who = authorName(error.body && error.body.assignee);
        say(status, who ? `Already taken: ${who} has this conversation.` : error.detail,
          "error");
      } else {
        failed(status, error);
      }
    }
  });
  await loadQueue();
  showActions();
  if (state.selected) scheduleThread();
}

async function send(form, box, path, done) {
  const text = box.value.trim();
  const status = $("thread-status");
  if (!state.selected) return;
  if (!text) {
    say(status, "Write something first.", "error");
    box.focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  await busy(button, async () => {
    try {
      await api("POST", selectedPath(path), { json: { text } });
      box.value = "";
      say(status, done, "ok");
      scheduleQueue(); // a reply takes a waiting conversation, and is its last message now
      await loadThread(state.selected);
    } catch (error) {
      failed(status, error);
    }
  });
}

function reply(event) {
  event.preventDefault();
  return send($("reply-form"), $("reply-text"), "messages",
    "Reply sent: it goes out through the visitor's channel.");
}

function note(event) {
  event.preventDefault();
  return send($("note-form"), $("note-text"), "notes", "Note added (only agents see it).");
}

async function loadAgents() {
  try {
    const answer = await api("GET", "/agents");
    const found = Array.isArray(answer) ? answer : (answer && answer.items) || [];
    // People only: the API also lists the shop's agent API keys (scripts, helpdesk bridges),
    // and a conversation transferred to one reaches nobody who watches this page.
    state.agents = found.filter((agent) => agent.kind === "person");
  } catch (error) {
    state.agents = [];
    if (error instanceof ApiError && error.status === 401) failed($("thread-status"), error);
  }
  renderAgents();
}

function renderAgents() {
  const menu = $("transfer-to");
  const chosen = menu.value;
  const handoff = currentHandoff() || {};
  const holder = handoff.assignee && handoff.assignee.id;
  // A person by their name (their email when they gave none); an owner is said to be one.
  const label = (agent) => `${agent.name || agent.id}${agent.id === myId() ? " (you)"
    : agent.role === "owner" ? " (owner)" : ""}`;
  const options = state.agents.filter((a) => a.id !== holder).map((agent) => el("option",
    { value: agent.id }, label(agent)));
  menu.replaceChildren(el("option", { value: "" }, "Choose…"), ...options);
  if ([...menu.options].some((o) => o.value === chosen)) menu.value = chosen;
}

async function transfer() {
  const to = $("transfer-to").value;
  const status = $("thread-status");
  if (!state.selected) return;
  if (!to) {
    say(status, "Choose whom to transfer to.", "error");
    $("transfer-to").focus();
    return;
  }
  const name = $("transfer-to").selectedOptions[0].textContent;
  await busy($("transfer"), async () => {
    try {
      await api("POST", selectedPath("transfer"), { json: { user_id: to } });
      say(status, `Transferred to ${name}.`, "ok");
    } catch (error) {
      failed(status, error);
    }
  });
  await loadQueue();
  showActions();
  scheduleThread();
}

async function resolve() {
  const handoff = currentHandoff();
  if (!state.selected || !handoff || handoff.status === "resolved" || heldByOther(handoff)) {
    return;
  }
  const status = $("thread-status");
  await busy($("resolve"), async () => {
    try {
      const answer = await api("POST", selectedPath("resolve"));
      const item = state.items.get(state.selected);
      if (item) item.handoff = { ...item.handoff, ...(answer || {}), status: "resolved" };
      say(status, "Resolved: the bot has the conversation again and asks for a rating.", "ok");
    } catch (error) {
      failed(status, error);
    }
  });
  await loadQueue();
  if (state.selected) await loadThread(state.selected);
}

// ---------------------------------------------------------------------------------------------
// Keys

function typing(target) {
  return !!(target && target.closest && (target.closest("input, textarea, select")
    || target.isContentEditable));
}

function composing(box) {
  if ($("composer").hidden || box.closest("form").hidden) return;
  box.focus();
}

function showHelp() {
  const dialog = $("help");
  if (!dialog.open) dialog.showModal();
}

const BOXES = { r: "reply-text", n: "note-text" }; // the keys that open a box to type in

const KEYS = {
  j: () => move(1),
  k: () => move(-1),
  c: claim,
  e: resolve,
  r: () => composing($(BOXES.r)),
  n: () => composing($(BOXES.n)),
  t: () => { if (!$("thread-actions").hidden) $("transfer-to").focus(); },
  m: toggleMute,
  "?": showHelp,
};

// Keys that act on the open conversation, pressed while it is still loading (an agent picks
// one and presses "r" at once), wait for it: they act once it shows, in order, and what is
// typed after "r" or "n" meanwhile goes into that box instead of working as the page's keys
// (a reply's "t", "c" or "e" would have transferred, claimed or resolved). Escape drops them;
// picking another conversation too.
const THREAD_KEYS = new Set(["c", "e", "r", "n", "t"]);

function pageKeys(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (!state.session || $("app").hidden || $("help").open || typing(event.target)) return;
  if (state.early && earlyKey(event)) return;
  const action = KEYS[event.key];
  if (!action) return;
  event.preventDefault(); // "r" focuses the box without typing an "r" into it
  if (state.loading && THREAD_KEYS.has(event.key)) {
    state.early = state.early || { keys: [], typed: "" };
    state.early.keys.push(event.key);
    return;
  }
  action();
}

// A key after thread keys that wait (true: taken here): text for the box "r"/"n" will open.
function earlyKey(event) {
  const early = state.early;
  if (event.key === "Escape") {
    state.early = null;
  } else if (!(early.keys.at(-1) in BOXES)) {
    return false;
  } else if (event.key.length === 1) {
    early.typed += event.key;
  } else if (event.key === "Enter") {
    early.typed += "\n";
  } else if (event.key === "Backspace") {
    early.typed = early.typed.slice(0, -1);
  } else {
    return false;
  }
  event.preventDefault();
  return true;
}

async function replayEarly(early) {
  for (const key of early.keys) {
    if (state.early !== early) return; // Escape, or another conversation
    await KEYS[key]();
  }
  if (state.early !== early) return;
  state.early = null;
  const box = early.typed && $(BOXES[early.keys.at(-1)]); // typed only after "r" or "n"
  if (box && document.activeElement === box) {
    box.setRangeText(early.typed, box.selectionStart, box.selectionEnd, "end");
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }
}

function boxKeys(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    event.currentTarget.form.requestSubmit();
  } else if (event.key === "Escape") {
    event.preventDefault();
    $("queue").focus();
  }
}

start();
