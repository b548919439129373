// The Audit log tab (owners): who changed what and when, newest first, a page at a time,
// filtered as GET /audit allows (a kind of change by its prefix, who, which days in UTC).
//
// Entries hold before/after for settings and texts and only field names for credentials, so
// showing them never shows a secret; they are shown as text, never as markup. Ids are shown as
// what they stand for (the API's `what` and `names`: a person's name, "web conversation with
// …1234"), the recorded id behind it as a tooltip.

import { api, el, say, when } from "./api.js";

const $ = (id) => document.getElementById(id);

// What the routes record (admin_api/routes/*.py `record(call, "<action>"…)`), by kind; the API
// takes a prefix ending in "." for a kind.
const KINDS = [
  ["", "any change"], ["session.", "logins"], ["settings.", "settings"], ["response.", "texts"],
  ["knowledge.", "knowledge"], ["training.", "training drafts"], ["model.", "own models"],
  ["conversation.", "conversations (agents)"], ["user.", "people"],
  ["channel.", "channels"], ["order_backend.", "order backend"], ["key.", "API keys"],
  ["webhook.", "webhooks"], ["privacy.", "privacy requests"], ["billing.", "billing"],
];

let kit = null;
let auditPage = 1;

function compact(value, names = {}) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string" && Object.hasOwn(names, value)) return names[value];
  if (typeof value !== "object") return String(value);
  if (Array.isArray(value)) return value.map((inner) => compact(inner, names)).join(", ");
  return Object.entries(value).map(([key, inner]) => `${key}: ${compact(inner, names)}`)
    .join("; ");
}

const LONG = 80; // characters of one value shown in the row; the rest behind "Show all"

const isRecord = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const cut = (text) => (text.length > LONG ? `${text.slice(0, LONG - 1)}…` : text);

/** What changed, a line a field: "field: before → after", "field: after" (new) or
 * "field: was before" (gone). A record of no fields (before/after not objects) is one line. */
function changeLines(entry) {
  const { before, after } = entry;
  const names = entry.names || {};
  if (!isRecord(before) && !isRecord(after)) {
    const [was, now] = [compact(before, names), compact(after, names)];
    if (was && now) return [["", was, now]];
    return now ? [["", "", now]] : was ? [["", was, ""]] : [];
  }
  const was = isRecord(before) ? before : {};
  const now = isRecord(after) ? after : {};
  return [...new Set([...Object.keys(was), ...Object.keys(now)])]
    .map((key) => [key, compact(was[key], names), compact(now[key], names)])
    .filter(([, old, fresh]) => old !== fresh || !isRecord(before) || !isRecord(after));
}

function lineText([key, was, now], shorten) {
  const show = shorten ? cut : (text) => text;
  const change = was && now ? `${show(was)} → ${show(now)}` : now ? show(now)
    : `was ${show(was)}`;
  return key ? `${key}: ${change}` : change;
}

/** The Details cell: the changes a line each, wrapping; long values cut short, with the
 * whole entry behind a "Show all" disclosure (a text's variants run to paragraphs). The
 * cell once ran them into one line the table squeezed to a few characters a line. */
function changeCell(entry) {
  const lines = changeLines(entry);
  const shown = lines.slice(0, 3);
  const list = el("ul", { class: "changes" }, shown.map((line) => el("li", {},
    lineText(line, true))));
  const cutShort = lines.length > shown.length
    || shown.some((line) => lineText(line, true) !== lineText(line, false));
  const all = cutShort ? el("details", {}, el("summary", {}, lines.length > shown.length
    ? `Show all ${lines.length} changes` : "Show all"),
  el("ul", { class: "changes" }, lines.map((line) => el("li", {}, lineText(line, false)))))
    : null;
  return el("td", { class: "change", "data-label": "Details" }, lines.length ? list : null, all);
}

/** A cell showing what an id stands for, the id itself as its tooltip. */
function named(label, className, recorded, readable) {
  const shown = readable || recorded || "";
  const attributes = { "data-label": label, class: className };
  if (readable && recorded && readable !== recorded) attributes.title = recorded;
  return el("td", attributes, shown);
}

function query(page) {
  const q = { page, page_size: kit.pageSize };
  for (const [key, value] of new FormData($("audit-form"))) q[key] = String(value).trim();
  return q;
}

async function loadAudit(page = auditPage) {
  auditPage = page;
  const status = $("audit-status");
  say(status, "Loading…");
  try {
    const answer = await api("GET", "/audit", { query: query(page) });
    // data-label: a phone shows each entry as a block of labelled lines (app.css).
    const rows = answer.items.map((entry) => el("tr", {},
      el("td", { "data-label": "When" }, el("time", { datetime: entry.created_at },
        when(entry.created_at))),
      named("Who", "actor", entry.actor, (entry.names || {})[entry.actor]),
      el("td", { "data-label": "Change" }, el("code", {}, entry.action)),
      named("What", "long", entry.target, entry.what),
      changeCell(entry)));
    $("audit-table").tBodies[0].replaceChildren(...rows);
    kit.pager($("audit-pager"), answer, loadAudit);
    say(status, rows.length ? `${answer.total} entr${answer.total === 1 ? "y" : "ies"}.`
      : "No entry matches.");
  } catch (error) {
    kit.failed(status, error);
  }
}

/** `tabKit`: the owner page's shared pieces (app.js): failed, pager, pageSize, loaders,
 * refreshers. */
export function wireAudit(tabKit) {
  kit = tabKit;
  const kinds = $("audit-action");
  kinds.replaceChildren(...KINDS.map(([value, text]) => el("option", { value }, text)));
  kit.loaders.audit = () => loadAudit(1);
  kit.refreshers.audit = () => loadAudit();
  $("audit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadAudit(1);
  });
}
