// The owner page: log in, then one tab per part of the shop (settings, texts, knowledge,
// training, conversations, analytics, people, channels, developers, audit log, billing).
// Everything goes through the admin API under /api/v1 with the session cookie; what the page
// may show follows the role the login answered (the API checks it again on every call).
//
// The tabs added after this file grew long live in modules of their own (settings.js,
// channels.js, developers.js, audit.js, privacy.js, training.js), wired with `kit`: the few
// pieces they share with it; a conversation's transcript is transcript.js's.
//
// Forms are built from data, and the settings form from the API's own OpenAPI document
// (settings.js): a new setting appears there without an edit of a page file.
//
// The address's fragment names the open tab (/app/#billing opens the billing tab, as Stripe's
// pages link back to it); a tab the role may not see is never opened from it.

import { api, ApiError, el, humanize, say, setCsrf, svg, when } from "./api.js";
import { logIn, logOut } from "./session.js";
import { wireAudit } from "./audit.js";
import { wireChannels } from "./channels.js";
import { wireDevelopers } from "./developers.js";
import { privacyFor, wirePrivacy } from "./privacy.js";
import { wireSettings } from "./settings.js";
import { firstMoment, transcriptItems } from "./transcript.js";
import { wireTraining } from "./training.js";
import { guardLeaving, mayLogOut, trackUnsaved } from "./unsaved.js";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 25;
const state = { session: null, loaded: new Set(), checkout: null, transcript: null,
  transcriptFrom: -Infinity };

// ---------------------------------------------------------------------------------------------
// Session

async function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  guardLeaving(() => state.session !== null);
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener("click", () => showTab(tab.id.replace("tab-", "")));
    tab.addEventListener("keydown", tabKeys);
  }
  wireTexts();
  wireKnowledge();
  wireConversations();
  wireAnalytics();
  wirePeople();
  wireBilling();
  const kit = { failed, pager, pageSize: PAGE_SIZE, loaders: LOADERS, refreshers: REFRESHERS,
    conversationsChanged: refreshConversations };
  wireSettings(kit);
  wireChannels(kit);
  wireDevelopers(kit);
  wireAudit(kit);
  wirePrivacy(kit);
  wireTraining(kit);
  window.addEventListener("hashchange", () => {
    const tab = tabNamed(window.location.hash.slice(1));
    if (!state.session || !tab || tab.hidden) return;
    showTab(tab.id.replace("tab-", ""));
    tab.focus(); // a link to a tab (a 402's "Billing") moves the keyboard there too
  });
  try {
    entered(await api("GET", "/session"));
  } catch {
    showLogin();
  }
}

function showLogin() {
  state.session = null;
  state.loaded.clear();
  $("app").hidden = true;
  $("who").hidden = true;
  $("logout").hidden = true;
  $("inbox-link").hidden = true;
  $("login").hidden = false;
  $("login-email").focus();
}

function login(event) {
  return logIn(event, entered);
}

async function logout() {
  if (!mayLogOut()) return; // unsaved edits (a draft, a text, settings) stay as they are
  await logOut();
  showLogin();
}

function sessionRole(session) {
  return session.role || (session.membership && session.membership.role) || "";
}

function entered(session) {
  if (session.csrf_token) setCsrf(session.csrf_token);
  state.session = session;
  const role = sessionRole(session);
  const user = session.user || {};
  const shop = session.shop || {};
  const shopName = typeof shop === "string" ? shop : (shop.name || shop.slug || "");
  $("who").textContent = [user.name || user.email, shopName, role].filter(Boolean).join(" · ");
  $("who").hidden = false;
  $("logout").hidden = false;
  $("inbox-link").hidden = role !== "owner" && role !== "agent"; // the inbox is theirs
  $("privacy").hidden = role !== "owner"; // a data-subject request is the shop's, answered by owners
  $("login").hidden = true;
  $("app").hidden = false;
  let first = null;
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const allowed = tab.dataset.roles.split(" ").includes(role);
    tab.hidden = !allowed;
    if (allowed && !first) first = tab.id.replace("tab-", "");
  }
  const named = tabNamed(window.location.hash.slice(1)); // /app/#billing: that tab, if allowed
  if (named && !named.hidden) showTab(named.id.replace("tab-", ""));
  else if (first) showTab(first);
}

/** The tab button called `name` ("billing" for #tab-billing), or null. */
function tabNamed(name) {
  const tab = name ? $(`tab-${name}`) : null;
  return tab && tab.getAttribute("role") === "tab" ? tab : null;
}

/** A 401 means the session ended (expired, logged out elsewhere): back to the login form. */
function failed(node, error) {
  if (error instanceof ApiError && error.status === 401) {
    showLogin();
    say($("login-error"), "Your session ended; please log in again.", "error");
    return;
  }
  say(node, error.detail || String(error), "error");
  // 402: the plan's limit (one more channel, document or agent than it allows). Owners see
  // the billing tab, where the plans are.
  if (error instanceof ApiError && error.status === 402 && !$("tab-billing").hidden) {
    node.append(" ", el("a", { href: "#billing" }, "See the plans under Billing."));
  }
}

// ---------------------------------------------------------------------------------------------
// Tabs (WAI-ARIA tabs pattern: arrows move between tabs)

const LOADERS = {};
// What a tab shown again reloads: its list's current page only (one call), so what changed
// meanwhile shows (a designer who joined listed as "invited", an erased conversation still
// listed: walkthrough). Tabs whose forms hold unsaved edits (settings, texts, channels) keep
// what they show; training refreshes itself (training.js).
const REFRESHERS = {};

function showTab(name) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  if (window.location.hash !== `#${name}`) {
    window.history.replaceState(null, "", `${window.location.pathname}${window.location.search}#${name}`);
  }
  if (!state.loaded.has(name) && LOADERS[name]) {
    state.loaded.add(name);
    LOADERS[name]();
  } else if (state.loaded.has(name) && REFRESHERS[name]) {
    REFRESHERS[name]();
  }
}

function tabKeys(event) {
  const tabs = [...document.querySelectorAll('[role="tab"]')].filter((t) => !t.hidden);
  const at = tabs.indexOf(event.currentTarget);
  const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
  if (step === undefined) return;
  const next = tabs[(at + step + tabs.length) % tabs.length];
  next.focus();
  showTab(next.id.replace("tab-", ""));
}

function pager(node, page, onPage) {
  node.replaceChildren();
  const pages = Math.max(1, Math.ceil(page.total / page.page_size));
  if (pages <= 1) return;
  node.append(
    el("button", { type: "button", class: "secondary small", disabled: page.page <= 1,
      onclick: () => onPage(page.page - 1) }, "Previous"),
    el("span", {}, `Page ${page.page} of ${pages} (${page.total})`),
    el("button", { type: "button", class: "secondary small", disabled: page.page >= pages,
      onclick: () => onPage(page.page + 1) }, "Next"),
  );
}

// ---------------------------------------------------------------------------------------------
// Texts: every utter_* response, the shop's variants over the domain's defaults

let textsPage = 1;
const TEXTS_PER_PAGE = 10;

function variantEditor(name, variant, index) {
  const id = `text-${name}-${index}`;
  const area = el("textarea", { id, rows: 2, "data-channel": variant.channel ?? "" });
  area.value = variant.text || "";
  area.buttons = variant.buttons || [];
  const channel = variant.channel ? ` (${variant.channel} only)` : "";
  const buttons = (variant.buttons || []).map((b) => b.title).filter(Boolean);
  return el("div", { class: "variant" },
    el("label", { for: id }, `Variant ${index + 1}${channel}`), area,
    buttons.length ? el("p", { class: "hint" }, `Buttons: ${buttons.join(", ")}`) : null);
}

function responseCard(item) {
  const variants = item.override || item.effective || item.default || item.variants || [];
  const editors = el("div", { class: "variants" },
    variants.map((v, i) => variantEditor(item.name, v, i)));
  const status = el("p", { class: "message", role: "status", "aria-live": "polite" });
  const custom = Boolean(item.override);
  const card = el("article", { class: "response", "data-name": item.name },
    el("h3", {}, item.name,
      el("span", { class: custom ? "badge custom" : "badge" }, custom ? "this shop's text" : "default")),
    item.placeholders && item.placeholders.length
      ? el("p", { class: "hint" }, `Placeholders: ${item.placeholders.map((p) => `{${p}}`).join(" ")}`)
      : null,
    editors);
  // What a save would store, to tell unsaved edits (unsaved.js) from what is stored.
  const typed = () => JSON.stringify([...editors.querySelectorAll("textarea")]
    .map((area) => area.value).filter((text) => text.trim()));
  card.stored = typed();
  card.unsaved = () => typed() !== card.stored;
  const save = el("button", { type: "button", class: "small" }, "Save");
  const add = el("button", { type: "button", class: "secondary small" }, "Add a variant");
  const reset = el("button", { type: "button", class: "danger small", hidden: !custom },
    "Restore default");
  add.addEventListener("click", () => {
    const editor = variantEditor(item.name, { text: "", channel: null, buttons: [] },
      editors.children.length);
    editors.append(editor);
    editor.querySelector("textarea").focus();
  });
  save.addEventListener("click", async () => {
    const body = [...editors.querySelectorAll("textarea")]
      .filter((area) => area.value.trim())
      .map((area) => ({ text: area.value, channel: area.dataset.channel || null,
        buttons: (area.buttons || []).map((b) => ({ title: b.title, payload: b.payload })) }));
    save.disabled = true;
    try {
      await api("PUT", `/responses/${encodeURIComponent(item.name)}`, { json: { variants: body } });
      card.stored = JSON.stringify(body.map((variant) => variant.text));
      say(status, "Saved: the next conversation says it.", "ok");
      reset.hidden = false;
      card.querySelector(".badge").textContent = "this shop's text";
      card.querySelector(".badge").classList.add("custom");
    } catch (error) {
      failed(status, error);
    } finally {
      save.disabled = false;
    }
  });
  reset.addEventListener("click", async () => {
    reset.disabled = true;
    try {
      await api("DELETE", `/responses/${encodeURIComponent(item.name)}`);
      say(status, "Default restored.", "ok");
      await loadTexts();
    } catch (error) {
      failed(status, error);
    } finally {
      reset.disabled = false;
    }
  });
  card.append(el("div", { class: "row" }, save, add, reset), status);
  return card;
}

async function loadTexts() {
  const status = $("texts-status");
  say(status, "Loading…");
  try {
    // All of them (a domain has tens of responses, the API gives up to 200 a page), so the
    // filter searches every text; the page then shows TEXTS_PER_PAGE of the matches at once
    // (all ~80 cards were 19,000 px tall). Cards out of view are hidden, never rebuilt, so
    // a text being edited keeps its changes across pages and filters.
    const items = [];
    for (let page = 1; ; page += 1) {
      const answer = await api("GET", "/responses", { query: { page, page_size: 200 } });
      const chunk = Array.isArray(answer) ? answer : answer.items;
      items.push(...chunk);
      if (Array.isArray(answer) || !chunk.length || items.length >= answer.total) break;
    }
    $("texts-list").replaceChildren(...items.map(responseCard));
    filterTexts(textsPage);
  } catch (error) {
    failed(status, error);
  }
}

function filterTexts(page = 1) {
  const filter = $("texts-filter").value.trim().toLowerCase();
  const matches = [...$("texts-list").children].filter((card) => {
    const text = `${card.dataset.name} ${[...card.querySelectorAll("textarea")]
      .map((area) => area.value).join(" ")}`.toLowerCase();
    return !filter || text.includes(filter);
  });
  const pages = Math.max(1, Math.ceil(matches.length / TEXTS_PER_PAGE));
  textsPage = Math.min(Math.max(1, page), pages);
  const shown = new Set(matches.slice((textsPage - 1) * TEXTS_PER_PAGE, textsPage * TEXTS_PER_PAGE));
  for (const card of $("texts-list").children) card.hidden = !shown.has(card);
  pager($("texts-pager"), { page: textsPage, total: matches.length, page_size: TEXTS_PER_PAGE },
    (next) => {
      filterTexts(next);
      $("texts-list").querySelector("article:not([hidden]) textarea")?.focus();
    });
  say($("texts-status"), matches.length ? (filter
    ? `${matches.length} response${matches.length === 1 ? "" : "s"} match.` : "")
    : "No response matches.");
}

function wireTexts() {
  LOADERS.texts = () => loadTexts();
  trackUnsaved(() => [...$("texts-list").children].filter((card) => card.unsaved && card.unsaved())
    .map((card) => `the text ${card.dataset.name}`));
  $("texts-filter").addEventListener("input", () => filterTexts(1));
}

// ---------------------------------------------------------------------------------------------
// Knowledge: documents, uploads as background jobs with progress

let knowledgePage = 1;

function size(bytes) {
  if (typeof bytes !== "number") return "";
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} kB`
    : `${(bytes / 1048576).toFixed(1)} MB`;
}

async function loadKnowledge(page = knowledgePage) {
  knowledgePage = page;
  const status = $("knowledge-status");
  try {
    const answer = await api("GET", "/knowledge/documents", { query: { page, page_size: PAGE_SIZE } });
    const rows = answer.items.map((doc) => {
      const name = doc.title || doc.name || doc.source || String(doc.id);
      const file = doc.name && doc.name !== name ? doc.name : "";
      const remove = el("button", { type: "button", class: "danger small" }, "Delete");
      remove.setAttribute("aria-label", `Delete ${name}`);
      remove.addEventListener("click", async () => {
        if (!window.confirm(`Delete “${name}” from the knowledge base?`)) return;
        remove.disabled = true;
        try {
          // Deleting is a job too (the passages leave the index): follow it like an upload.
          const answer = await api("DELETE", `/knowledge/documents/${encodeURIComponent(doc.id)}`);
          if (answer && answer.job) await followJob(answer.job.id, `Deleted ${name}.`);
          else say(status, `Deleted ${name}.`, "ok");
          await loadKnowledge();
        } catch (error) {
          failed(status, error);
          remove.disabled = false;
        }
      });
      return el("tr", {},
        el("td", {}, name, file ? el("div", { class: "hint" }, file) : null,
          doc.status && doc.status !== "ready" ? el("span", { class: "badge" }, doc.status) : null),
        el("td", {}, doc.kind || ""), el("td", { class: "num" }, doc.chunks ?? ""),
        el("td", { class: "num" }, size(doc.size ?? doc.bytes)),
        el("td", {}, when(doc.updated_at || doc.created_at)), el("td", {}, remove));
    });
    $("knowledge-table").tBodies[0].replaceChildren(...rows);
    if (!rows.length) {
      $("knowledge-table").tBodies[0].append(el("tr", {}, el("td", { colspan: 6 }, "No documents yet.")));
    }
    pager($("knowledge-pager"), answer, loadKnowledge);
  } catch (error) {
    failed(status, error);
  }
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

async function followJob(id, doneMessage = null) {
  const status = $("knowledge-status");
  const bar = $("knowledge-progress");
  bar.hidden = false;
  for (let wait = 300; ; wait = Math.min(wait * 1.5, 2000)) {
    const job = await api("GET", `/jobs/${encodeURIComponent(id)}`);
    bar.value = Number(job.progress) || 0;
    if (job.status === "done") {
      const result = job.result || {};
      const chunks = result.chunks === undefined ? ""
        : `: ${result.chunks} passage${result.chunks === 1 ? "" : "s"}`;
      say(status, doneMessage || `Indexed${chunks}. The bot answers from it now.`, "ok");
      break;
    }
    if (job.status === "failed") {
      say(status, `Ingestion failed: ${job.error || "unknown error"}`, "error");
      break;
    }
    say(status, job.status === "queued" ? "Waiting for the indexer…"
      : `Indexing… ${Math.round(bar.value * 100)} %`);
    await sleep(wait);
  }
  bar.hidden = true;
  await loadKnowledge();
}

function wireKnowledge() {
  LOADERS.knowledge = () => loadKnowledge(1);
  REFRESHERS.knowledge = () => loadKnowledge();
  $("knowledge-text-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("knowledge-status");
    const title = $("knowledge-text-title").value.trim();
    const text = $("knowledge-text-body").value;
    if (!title || !text.trim()) {
      say(status, "Give the text a title and some content.", "error");
      return;
    }
    const button = event.submitter || $("knowledge-text-form").querySelector("button");
    button.disabled = true;
    say(status, `Adding “${title}”…`);
    try {
      const answer = await api("POST", "/knowledge/texts", { json: { title, text } });
      $("knowledge-text-form").reset();
      await followJob(answer.job.id);
    } catch (error) {
      failed(status, error);
    } finally {
      button.disabled = false;
    }
  });
  $("knowledge-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("knowledge-status");
    const file = $("knowledge-file").files[0];
    if (!file) {
      say(status, "Choose a file first.", "error");
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    const button = event.submitter || $("knowledge-form").querySelector("button");
    button.disabled = true;
    say(status, `Uploading ${file.name}…`);
    try {
      const answer = await api("POST", "/knowledge/documents", { form });
      $("knowledge-form").reset();
      await followJob(answer.job.id);
    } catch (error) {
      failed(status, error);
    } finally {
      button.disabled = false;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Conversations and one transcript

let conversationsPage = 1;

function conversationQuery(page) {
  const query = { page, page_size: PAGE_SIZE };
  for (const [key, value] of new FormData($("conversations-form"))) query[key] = value;
  return query;
}

async function loadConversations(page = conversationsPage) {
  conversationsPage = page;
  const status = $("conversations-status");
  say(status, "Loading…");
  try {
    const answer = await api("GET", "/conversations", { query: conversationQuery(page) });
    const rows = answer.items.map((c) => {
      const row = el("tr", { class: "pick", tabindex: 0, "data-id": c.id },
        el("td", {}, when(c.last_message_at || c.started_at)), el("td", {}, c.channel || ""),
        el("td", {}, c.visitor || ""), el("td", {}, c.state || ""),
        el("td", {}, c.outcome || ""), el("td", { class: "num" }, c.messages ?? ""),
        el("td", {}, typeof c.last_message === "object" && c.last_message
          ? c.last_message.text || "" : c.last_message || ""));
      const open = () => openTranscript(c, row);
      row.addEventListener("click", open);
      row.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } });
      return row;
    });
    $("conversations-table").tBodies[0].replaceChildren(...rows);
    pager($("conversations-pager"), answer, loadConversations);
    say(status, rows.length ? `${answer.total} conversation${answer.total === 1 ? "" : "s"}.`
      : "No conversation matches.");
  } catch (error) {
    failed(status, error);
  }
}

async function openTranscript(conversation, row, before = null) {
  for (const other of $("conversations-table").tBodies[0].rows) other.removeAttribute("aria-current");
  row.setAttribute("aria-current", "true");
  const status = $("conversations-status");
  try {
    const transcript = await api("GET", `/conversations/${encodeURIComponent(conversation.id)}`,
      { query: { before } });
    const list = $("transcript-turns");
    const older = transcript.older_than
      ? el("li", {}, el("button", { type: "button", class: "secondary small",
        onclick: (event) => { event.currentTarget.parentElement.remove(); openOlder(conversation, row, transcript.older_than); } },
      "Show older messages")) : null;
    // Notes and handoff lines of this page's period only (the next older page has the rest).
    const until = before ? state.transcriptFrom : Infinity;
    const from = transcript.older_than ? firstMoment(transcript) ?? -Infinity : -Infinity;
    state.transcriptFrom = from;
    const items = [older, ...transcriptItems(transcript, from, until)].filter(Boolean);
    if (before) list.prepend(...items);
    else list.replaceChildren(...items);
    $("transcript-title").textContent = ["Transcript", transcript.channel || conversation.channel,
      transcript.visitor || conversation.visitor, transcript.state].filter(Boolean).join(" · ");
    $("transcript").hidden = false;
    state.transcript = conversation.id;
    $("transcript-privacy").hidden = $("privacy").hidden;
    if (!before) $("transcript-title").focus();
  } catch (error) {
    failed(status, error);
  }
}

function openOlder(conversation, row, before) {
  return openTranscript(conversation, row, before);
}

/** The list's current page again, and the open transcript closed when its conversation is
 * gone (erased here or by another owner, or past the shop's retention). */
async function refreshConversations() {
  await loadConversations();
  if ($("transcript").hidden || !state.transcript) return;
  try {
    await api("GET", `/conversations/${encodeURIComponent(state.transcript)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      $("transcript").hidden = true;
      state.transcript = null;
    }
  }
}

function wireConversations() {
  LOADERS.conversations = () => loadConversations(1);
  REFRESHERS.conversations = refreshConversations;
  $("transcript-privacy").addEventListener("click", () => {
    privacyFor(state.transcript);
    $("privacy-value").focus();
  });
  $("conversations-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("transcript").hidden = true;
    loadConversations(1);
  });
}

// ---------------------------------------------------------------------------------------------
// Analytics: totals, a bar chart per day (inline SVG, drawn here), channels, intents, topics

const isoDay = (date) => date.toISOString().slice(0, 10);

function perDay(summary) {
  const series = summary.per_day || summary.days || summary.daily || [];
  return Array.isArray(series) ? series
    : Object.entries(series).map(([day, values]) => ({ day, ...values }));
}

function dayCount(entry) {
  const value = entry.conversations ?? entry.count ?? entry.messages ?? 0;
  return typeof value === "object" ? value.total ?? value.in ?? 0 : Number(value) || 0;
}

function barChart(series) {
  const width = 720;
  const height = 220;
  const left = 36;
  const bottom = 24;
  const top = 10;
  const max = Math.max(1, ...series.map(dayCount));
  const slot = (width - left) / Math.max(1, series.length);
  const scale = (height - bottom - top) / max;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-labelledby": "analytics-chart-title" },
    svg("title", { id: "analytics-chart-title" },
      `Conversations per day, ${series.length} days, at most ${max} a day`));
  chart.append(svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }));
  for (const tick of [0, Math.round(max / 2), max]) {
    const y = height - bottom - tick * scale;
    chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, String(tick)));
  }
  const every = Math.ceil(series.length / 8);
  series.forEach((entry, i) => {
    const value = dayCount(entry);
    const day = entry.day || entry.date || "";
    const barHeight = value * scale;
    const x = left + i * slot + slot * 0.15;
    chart.append(svg("rect", { class: "bar", x: x.toFixed(1), y: (height - bottom - barHeight).toFixed(1),
      width: Math.max(1, slot * 0.7).toFixed(1), height: barHeight.toFixed(1), "data-day": day,
      "data-value": value }, svg("title", {}, `${day}: ${value}`)));
    if (i % every === 0) {
      chart.append(svg("text", { x: (x + slot * 0.35).toFixed(1), y: height - 8, "text-anchor": "middle" },
        String(day).slice(5)));
    }
  });
  return chart;
}

function percent(value) {
  return typeof value === "number" && value <= 1 ? `${(value * 100).toFixed(1)} %` : String(value);
}

function table(node, head, rows) {
  node.replaceChildren(
    el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { scope: "col", class: i ? "num" : undefined }, h)))),
    el("tbody", {}, rows.length ? rows.map((r) => el("tr", {}, r.map((c, i) =>
      el("td", { class: i ? "num" : undefined }, c ?? ""))))
      : el("tr", {}, el("td", { colspan: head.length }, "None in this range."))));
}

function showSummary(summary) {
  const totals = summary.totals || summary;
  const dl = $("analytics-totals");
  dl.replaceChildren();
  for (const [key, value] of Object.entries(totals)) {
    if (value === null || typeof value === "object") continue;
    const shown = /rate|containment|share/.test(key) ? percent(value) : String(value);
    dl.append(el("div", {}, el("dt", {}, humanize(key)), el("dd", {}, shown)));
  }
  const series = perDay(summary);
  $("analytics-chart").replaceChildren(barChart(series));
  $("analytics-figure").hidden = !series.length;

  let channels = summary.per_channel || summary.channels || [];
  if (!Array.isArray(channels)) channels = Object.entries(channels).map(([channel, v]) => ({ channel, ...v }));
  const messages = (c) => (c.messages_in !== undefined ? c.messages_in + (c.messages_out || 0) : c.messages);
  table($("analytics-channels"), ["Channel", "Conversations", "Messages", "Contained"],
    channels.map((c) => [c.channel, c.conversations, messages(c),
      c.containment === null || c.containment === undefined ? "" : percent(c.containment)]));
  const intents = summary.top_intents || summary.intents || [];
  table($("analytics-intents"), ["Intent", "Count"], intents.map((i) => [
    el("span", { title: i.name || i.intent }, i.label || i.name || i.intent), i.count]));
  showUnanswered(summary.unanswered || summary.clusters || []);
}

function showUnanswered(unanswered) {
  const clusters = Array.isArray(unanswered) ? unanswered : unanswered.clusters || [];
  const list = $("analytics-unanswered");
  if (unanswered.ready === false && unanswered.total) {
    const questions = unanswered.total === 1 ? "1 question" : `${unanswered.total} questions`;
    list.replaceChildren(el("li", {}, `Grouping ${questions} by topic…`));
    return;
  }
  list.replaceChildren(...(clusters.length ? clusters.map((c) =>
    el("li", { title: (c.examples || []).join("\n") || undefined },
      c.representative || c.question || c.text || "",
      el("span", { class: "count" }, ` (${c.count ?? c.size ?? ""})`)))
    : [el("li", {}, "Nothing unanswered in this range.")]));
}

async function loadAnalytics() {
  const status = $("analytics-status");
  say(status, "Loading…");
  try {
    // Days are counted in the owner's own time zone, as their browser knows it.
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const range = { from: $("analytics-from").value, to: $("analytics-to").value, tz };
    const summary = await api("GET", "/analytics/summary", { query: range });
    showSummary(summary);
    say(status, "");
    if (summary.unanswered && summary.unanswered.ready === false && summary.unanswered.total) {
      // The summary did not wait for the grouping (embeddings, seconds the first time): this
      // call does.
      try {
        showUnanswered(await api("GET", "/analytics/unanswered", { query: { ...range, limit: 10 } }));
      } catch (error) {
        $("analytics-unanswered").replaceChildren(
          el("li", { class: "error" }, `Not grouped: ${error.detail || error}`));
      }
    }
  } catch (error) {
    failed(status, error);
  }
}

function wireAnalytics() {
  const today = new Date();
  const monthAgo = new Date(today.getTime() - 29 * 86400000);
  $("analytics-from").value = isoDay(monthAgo);
  $("analytics-to").value = isoDay(today);
  LOADERS.analytics = loadAnalytics;
  $("analytics-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadAnalytics();
  });
}

// ---------------------------------------------------------------------------------------------
// People: members and pending invitations; inviting someone (owners only)

let peoplePage = 1;

async function loadPeople(page = peoplePage) {
  peoplePage = page;
  const status = $("people-status");
  try {
    const answer = await api("GET", "/users", { query: { page, page_size: PAGE_SIZE } });
    const me = state.session && state.session.user ? state.session.user.email : null;
    const rows = answer.items.map((person) => {
      const invited = person.status === "invited";
      const remove = person.email === me ? null : el("button", { type: "button",
        class: "danger small", "aria-label": `${invited ? "Cancel the invitation of" : "Remove"} ${person.email}` },
      invited ? "Cancel" : "Remove");
      if (remove) {
        remove.addEventListener("click", async () => {
          if (!window.confirm(`${invited ? "Cancel the invitation of" : "Remove"} ${person.email}?`)) return;
          remove.disabled = true;
          try {
            await api("DELETE", `/users/${encodeURIComponent(person.id)}`);
            say(status, `${person.email}: ${invited ? "invitation cancelled" : "removed"}.`, "ok");
            await loadPeople();
          } catch (error) {
            failed(status, error);
            remove.disabled = false;
          }
        });
      }
      return el("tr", {}, el("td", {}, person.email), el("td", {}, person.name || ""),
        el("td", {}, person.role),
        el("td", {}, invited ? `invited, until ${when(person.expires_at)}` : "active"),
        el("td", {}, when(person.last_login_at)), el("td", {}, remove));
    });
    $("people-table").tBodies[0].replaceChildren(...rows);
    pager($("people-pager"), answer, loadPeople);
  } catch (error) {
    failed(status, error);
  }
}

function wirePeople() {
  LOADERS.people = () => loadPeople(1);
  REFRESHERS.people = () => loadPeople();
  $("people-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("people-status");
    const email = $("invite-email").value.trim();
    if (!email) {
      say(status, "Enter the email address to invite.", "error");
      return;
    }
    const button = event.submitter || $("people-form").querySelector("button");
    button.disabled = true;
    $("people-link").hidden = true;
    try {
      const answer = await api("POST", "/users", { json: { email, role: $("invite-role").value } });
      $("people-form").reset();
      if (answer.link) {
        $("people-link-value").value = answer.link;
        $("people-link").hidden = false;
        say(status, `Invitation for ${email} made: send them this link, it works once.`, "ok");
      } else {
        say(status, `Invitation mailed to ${email}.`, "ok");
      }
      await loadPeople(1);
    } catch (error) {
      failed(status, error);
    } finally {
      button.disabled = false;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Billing (owners): the plan that binds now and the subscription's state, usage against the
// plan's limits, the plans on offer, invoices. Stripe's own pages change them: Checkout for a
// plan, the customer portal for the rest; a plan bought shows once Stripe's events reached
// the gateway, so coming back from Checkout checks again after a few seconds.

const BILLING_RECHECKS_MS = [2500, 7000];
const USAGE = [
  ["Conversations this month", "conversations", "conversations_per_month"],
  ["LLM tokens this month", "llm_tokens", "llm_tokens_per_month"],
  ["Channels besides the web widget", "channels", "channels"],
  ["Knowledge documents", "knowledge_documents", "knowledge_documents"],
  ["Agents", "agents", "agents"],
];
const PLAN_LIMITS = ["conversations_per_month", "llm_tokens_per_month", "channels",
  "knowledge_documents", "agents"];
const SUBSCRIBED = new Set(["active", "trialing"]);
// How agent seats are counted (GET /billing's usage.agents = agent_people + agent_api_keys).
const SEATS = "Each person with the agent role (pending invitations included) and each agent "
  + "API key takes an agent seat; owners are not counted.";
// What a plan with less takes away (POST /billing/checkout's 409 `losses`), per limit.
const LOSS_NOUNS = {
  conversations_per_month: "conversations a month", llm_tokens_per_month: "LLM tokens a month",
  channels: "channels besides the web widget", knowledge_documents: "knowledge documents",
  agents: "agent seats",
};

const count = (value) => (typeof value === "number" ? value.toLocaleString() : String(value ?? ""));
const limitText = (limit) => (limit === null || limit === undefined ? "no limit" : count(limit));

/** A date in the browser's locale ("" for nothing). */
function day(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value)
    : date.toLocaleDateString(undefined, { year: "numeric", month: "long", day: "numeric" });
}

/** An amount in the currency's smallest unit (Stripe's cents) with its currency. */
function money(amount, currency) {
  const code = String(currency || "").toUpperCase();
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency: code });
    return format.format(amount / 10 ** format.resolvedOptions().maximumFractionDigits);
  } catch {
    return `${(Number(amount) / 100).toFixed(2)} ${code}`;
  }
}

/** Stripe's page to open: only an http(s) address is ever navigated to. */
function stripePage(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** [short state, sentence, kind] for the subscription, in plain words. */
function subscriptionWords(billing, fallback) {
  const plan = billing.plan;
  const subscribed = billing.subscribed_plan || plan;
  const end = day(billing.period_end);
  switch (billing.status) {
    case "active":
    case "trialing":
      if (billing.cancel_at_period_end) {
        return ["cancelled at the end of the period",
          `Cancelled: the ${subscribed} plan ends ${end ? `on ${end}` : "at the end of the period"}; `
          + `then the ${fallback} plan applies.`, ""];
      }
      if (billing.status === "trialing") {
        return ["trial", `Trial of the ${subscribed} plan${end ? ` until ${end}` : ""}.`, ""];
      }
      return ["active", `Active: the ${subscribed} plan${end ? `, renewed on ${end}` : ""}.`, "ok"];
    case "comped":
      return ["comped", `The ${subscribed} plan, given to the shop by the platform at no charge.`, "ok"];
    case "past_due": {
      const grace = day(billing.grace_ends);
      if (plan === subscribed) {
        return ["past due", `A payment failed. The ${subscribed} plan stays until `
          + `${grace || "the grace period ends"}: fix the payment method under "Manage billing" `
          + `before then, or the ${fallback} plan's limits apply.`, "error"];
      }
      return ["past due", `A payment failed and the grace period ended${grace ? ` on ${grace}` : ""}: `
        + `the ${plan} plan's limits apply until the payment method is fixed under "Manage billing".`,
      "error"];
    }
    case "none":
    case undefined:
    case null:
      return ["none", `Free: the ${plan} plan, no subscription.`, ""];
    default:
      return [billing.status.replace(/_/g, " "),
        `The ${subscribed} subscription is ${billing.status.replace(/_/g, " ")}: the ${plan} plan applies.`, ""];
  }
}

function usageRow(label, used, limit, extra = null, reachedAnyway = false) {
  let share = "";
  let mark = null;
  if (limit !== null && limit !== undefined) {
    const percent = limit > 0 ? Math.floor((used * 100) / limit) : (used > 0 ? 100 : 0);
    if (percent >= 100 || reachedAnyway) mark = "reached";
    else if (percent >= 80) mark = "near";
    share = [limit > 0 ? el("meter", { min: 0, max: limit, value: Math.min(used, limit),
      low: Math.ceil(limit * 0.8) - 0.5, high: limit - 0.5, optimum: 0, "aria-hidden": "true" }) : null,
    limit > 0 ? ` ${percent} %` : "",
    mark ? el("span", { class: `badge ${mark}` }, mark === "reached" ? "limit reached" : "80 % or more")
      : null];
  }
  return el("tr", { class: mark || undefined },
    el("th", { scope: "row" }, label), el("td", { class: "num" }, count(used), extra),
    el("td", { class: "num" }, limitText(limit)), el("td", { class: "share" }, share));
}

/** "2 people + 1 agent API key": the seats behind usage.agents. */
function seatsText(usage) {
  const people = usage.agent_people ?? 0;
  const keys = usage.agent_api_keys ?? 0;
  return `${count(people)} ${people === 1 ? "person" : "people"} + ${count(keys)} agent API `
    + `${keys === 1 ? "key" : "keys"}`;
}

function showUsage(billing) {
  const usage = billing.usage || {};
  const limits = billing.limits || {};
  const month = /^\d{4}-\d{2}$/.test(usage.month || "")
    ? new Date(`${usage.month}-01T00:00:00Z`).toLocaleDateString(undefined,
      { year: "numeric", month: "long", timeZone: "UTC" }) : usage.month || "this month";
  $("billing-usage-caption").textContent = `Usage against the ${billing.plan} plan's limits `
    + `(conversations and LLM tokens in ${month}, UTC; the rest as it is now).`;
  const rows = USAGE.map(([label, used, limit]) => {
    if (used === "agents") {
      return usageRow(label, usage.agents ?? 0, limits[limit], el("div", { class: "hint" },
        `${seatsText(usage)}, a seat each; owners are not counted`));
    }
    if (used !== "conversations") return usageRow(label, usage[used] ?? 0, limits[limit]);
    const refused = usage.conversations_refused || 0;
    return usageRow(label, usage.conversations ?? 0, limits[limit],
      el("div", { class: "hint" }, `+ ${count(refused)} refused past the limit`), refused > 0);
  });
  $("billing-usage").tBodies[0].replaceChildren(...rows);
}

/** A loss of POST /billing/checkout's 409 in words: "Agent seats: 5 instead of no limit
 * (the shop has 6 now: more than the plan allows)". */
function lossText(loss) {
  if (loss.limit === "own_models") {
    return "Own models: designers can no longer train the shop's own models"
      + (loss.used ? ` (the shop has ${count(loss.used)})` : "");
  }
  const noun = LOSS_NOUNS[loss.limit] || humanize(loss.limit);
  const words = `${noun[0].toUpperCase()}${noun.slice(1)}: ${count(loss.allowed)} instead of `
    + `${limitText(loss.now)}`;
  return loss.over ? `${words} (the shop has ${count(loss.used)} now: more than the plan allows)`
    : words;
}

/** The 409 of a plan with less than the shop has: what it takes away, and a choice. Resolves
 * true when the owner goes on. */
function confirmLosses(plan, losses, current) {
  $("billing-confirm")?.remove();
  return new Promise((resolve) => {
    const title = el("h3", { id: "billing-confirm-title" },
      `The ${plan.name} plan allows less than the shop has now`);
    const done = (going) => () => {
      box.remove();
      resolve(going);
    };
    const go = el("button", { type: "button", onclick: done(true) },
      `Change to ${plan.name} anyway`);
    const box = el("div", { id: "billing-confirm", class: "notice", role: "group",
      "aria-labelledby": "billing-confirm-title" }, title,
    el("p", {}, `Compared with the ${current} plan, the shop would have:`),
    el("ul", {}, losses.map((loss) => el("li", { class: loss.over ? "error" : undefined },
      lossText(loss)))),
    losses.some((loss) => loss.over)
      ? el("p", {}, "What is over a limit keeps working; nothing more of it can be added "
        + "(and conversations past the monthly limit are refused).") : null,
    el("div", { class: "row" }, go, el("button", { type: "button", class: "secondary",
      onclick: done(false) }, `Keep the ${current} plan`)));
    $("billing-plans-hint").after(box);
    go.focus();
  });
}

async function checkout(plan, confirmed) {
  return api("POST", "/billing/checkout", { json: confirmed
    ? { plan: plan.name, confirm_losses: true } : { plan: plan.name } });
}

function choosePlan(plan, current) {
  return async (event) => {
    const button = event.currentTarget;
    const status = $("billing-status");
    button.disabled = true;
    say(status, `Opening Stripe for the ${plan.name} plan…`);
    try {
      let answer;
      try {
        answer = await checkout(plan, false);
      } catch (error) {
        const losses = error instanceof ApiError && error.status === 409 && error.body
          && error.body.losses;
        if (!Array.isArray(losses)) throw error;
        say(status, "");
        if (!await confirmLosses(plan, losses, current)) {
          button.disabled = false;
          button.focus();
          return;
        }
        say(status, `Opening Stripe for the ${plan.name} plan…`);
        answer = await checkout(plan, true);
      }
      const url = stripePage(answer && answer.url);
      if (!url) throw new Error("Stripe's answer had no page to open.");
      window.location.assign(url);
    } catch (error) {
      failed(status, error);
      button.disabled = false;
    }
  };
}

const EVERY = { day: "a day", week: "a week", month: "a month", year: "a year" };
// What a metered Price counts (its `meters`, the pricing's meter names), as an owner says it.
// A Price that names none of ours stays "per unit used": the page never guesses the unit.
const PER = { conversations: "per conversation", llm_tokens: "per LLM token" };

/** "$29.00 a month", "$0.01 per conversation, billed monthly" (a Price of GET
 * /billing/plans). */
function priceText(price) {
  if (price.amount === null || price.amount === undefined) return "tiered (see Stripe)";
  const amount = money(price.amount, price.currency);
  const every = !price.interval ? "once" : price.interval_count > 1
    ? `every ${price.interval_count} ${price.interval}s` : EVERY[price.interval] || price.interval;
  const per = PER[price.meters] || "per unit used";
  return price.metered ? `${amount} ${per}, billed ${price.interval_count > 1 ? every
    : `${price.interval}ly`}` : `${amount} ${every}`;
}

function planPrice(plan) {
  if (!plan.price_id) return "free";
  if (!plan.price) return "shown on Stripe's checkout page";
  return [priceText(plan.price), ...(plan.usage_prices || []).map((p) => el("div", { class: "hint" },
    `plus usage: ${priceText(p)}`))];
}

function showPlans(billing, plans) {
  const subscribedNow = SUBSCRIBED.has(billing.status) && billing.subscribed_plan === billing.plan;
  const rows = plans.map((plan) => {
    const limits = plan.limits || {};
    const choose = plan.price_id && !plan.current
      ? el("button", { type: "button", class: "small", "aria-label": `Choose ${plan.name}${
        plan.price ? `, ${priceText(plan.price)}` : ""}`,
        onclick: choosePlan(plan, billing.plan) }, "Choose") : null;
    return el("tr", { class: plan.current ? "current" : undefined,
      "aria-current": plan.current ? "true" : undefined },
    el("th", { scope: "row" }, plan.name,
      plan.current ? el("span", { class: "badge custom" }, "current plan") : null),
    el("td", { class: "price" }, planPrice(plan)),
    PLAN_LIMITS.map((name) => el("td", { class: "num" }, limitText(limits[name]))),
    el("td", {}, limits.own_models ? "yes" : "no"), el("td", {}, choose));
  });
  $("billing-plans").tBodies[0].replaceChildren(...rows);
  $("billing-plans-hint").textContent = `${subscribedNow
    ? "Choosing another plan opens Stripe to confirm the change; to go back to a free plan, "
      + "cancel under \"Manage billing\"."
    : "Choose opens Stripe Checkout; the plan applies as soon as Stripe confirms the payment."
  } A plan with less than the shop has is said first. Agents: ${SEATS}`;
}

function showInvoices(billing) {
  const note = $("billing-invoices-note");
  const table = $("billing-invoices");
  const invoices = billing.invoices || [];
  if (billing.invoices_unavailable) {
    note.textContent = "Invoices are unavailable right now (Stripe did not answer); try again later.";
    table.hidden = true;
    return;
  }
  note.textContent = invoices.length ? "" : "No invoices yet.";
  table.hidden = !invoices.length;
  table.tBodies[0].replaceChildren(...invoices.map((invoice) => {
    const url = stripePage(invoice.hosted_invoice_url);
    return el("tr", {}, el("td", {}, invoice.number || "(no number yet)"),
      el("td", {}, day(invoice.created)),
      el("td", { class: "num" }, money(invoice.amount, invoice.currency)),
      el("td", {}, invoice.status || ""),
      el("td", {}, url ? el("a", { href: url, "aria-label": invoice.number
        ? `View invoice ${invoice.number}` : "View the invoice" }, "View") : null));
  }));
}

function showBilling(billing, plans) {
  $("billing-off").hidden = billing.enabled !== false;
  $("billing-on").hidden = billing.enabled === false;
  if (billing.enabled === false) return;
  const free = plans.find((p) => !p.price_id);
  const [short, sentence, kind] = subscriptionWords(billing, free ? free.name : "default");
  const facts = [["Plan now", billing.plan], ["Subscription", short]];
  if (billing.period_end) facts.push(["Current period ends", day(billing.period_end)]);
  $("billing-summary").replaceChildren(...facts.flatMap(([term, value]) =>
    [el("dt", {}, term), el("dd", {}, value)]));
  say($("billing-state"), sentence, kind);
  $("billing-manage").hidden = !billing.customer_id;
  showUsage(billing);
  showPlans(billing, plans);
  showInvoices(billing);
}

/** GET /billing and /billing/plans, shown; the billing answer (null when it failed). */
async function loadBilling({ quiet = false } = {}) {
  const status = $("billing-status");
  if (!quiet) say(status, "Loading…");
  try {
    const [billing, plans] = await Promise.all([api("GET", "/billing"),
      api("GET", "/billing/plans")]);
    showBilling(billing, plans || []);
    if (!quiet) say(status, "");
    return billing;
  } catch (error) {
    failed(status, error);
    return null;
  }
}

const confirmed = (billing) => Boolean(billing && SUBSCRIBED.has(billing.status)
  && billing.plan === billing.subscribed_plan);

/** The billing tab's first load, with what Checkout's way back (?checkout=) said. */
async function openBilling() {
  const outcome = state.checkout;
  state.checkout = null;
  const notice = $("billing-notice");
  if (outcome === "cancelled") say(notice, "Checkout cancelled: nothing changed.");
  if (outcome !== "done") {
    await loadBilling();
    return;
  }
  say(notice, "Thank you: the plan applies as soon as Stripe confirms the payment. "
    + "This page checks again in a few seconds.", "ok");
  let billing = await loadBilling();
  for (const wait of BILLING_RECHECKS_MS) {
    if (confirmed(billing)) break;
    await sleep(wait);
    if (!state.session) return; // logged out meanwhile
    billing = await loadBilling({ quiet: true });
  }
  if (confirmed(billing)) say(notice, `Stripe confirmed: the ${billing.plan} plan applies now.`, "ok");
  else say(notice, "Stripe has not confirmed the payment yet: reload this page in a minute to see the new plan.");
}

/** Checkout sends the owner back to /app/?checkout=done#billing (or =cancelled): remember it
 * for the billing tab and take it out of the address (a reload does not say it again). */
function checkoutReturn() {
  const params = new URLSearchParams(window.location.search);
  const outcome = params.get("checkout");
  if (!outcome) return;
  params.delete("checkout");
  const query = params.toString();
  window.history.replaceState(null, "",
    `${window.location.pathname}${query ? `?${query}` : ""}${window.location.hash}`);
  state.checkout = outcome;
}

function wireBilling() {
  checkoutReturn();
  LOADERS.billing = openBilling;
  REFRESHERS.billing = () => loadBilling({ quiet: true });
  $("billing-portal").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const status = $("billing-status");
    button.disabled = true;
    say(status, "Opening Stripe's billing page…");
    try {
      const answer = await api("POST", "/billing/portal");
      const url = stripePage(answer && answer.url);
      if (!url) throw new Error("Stripe's answer had no page to open.");
      window.location.assign(url);
    } catch (error) {
      failed(status, error);
      button.disabled = false;
    }
  });
}

start();
