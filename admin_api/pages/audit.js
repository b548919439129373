// The Audit log tab (owners): who changed what and when, newest first, a page at a time,
// filtered as GET /audit allows (a kind of change by its prefix, who, which days in UTC).
//
// Entries hold before/after for settings and texts and only field names for credentials, so
// showing them never shows a secret; they are shown as text, never as markup.

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

function compact(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  if (Array.isArray(value)) return value.map(compact).join(", ");
  return Object.entries(value).map(([key, inner]) => `${key}: ${compact(inner)}`).join("; ");
}

/** What changed, in a line: "before → after", or either alone. */
function changeText(entry) {
  const before = compact(entry.before);
  const after = compact(entry.after);
  if (before && after) return `${before} → ${after}`;
  return after || (before ? `was ${before}` : "");
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
    const rows = answer.items.map((entry) => el("tr", {},
      el("td", {}, el("time", { datetime: entry.created_at }, when(entry.created_at))),
      el("td", {}, entry.actor), el("td", {}, el("code", {}, entry.action)),
      el("td", {}, entry.target || ""), el("td", { class: "change" }, changeText(entry))));
    $("audit-table").tBodies[0].replaceChildren(...rows);
    kit.pager($("audit-pager"), answer, loadAudit);
    say(status, rows.length ? `${answer.total} entr${answer.total === 1 ? "y" : "ies"}.`
      : "No entry matches.");
  } catch (error) {
    kit.failed(status, error);
  }
}

/** `tabKit`: the owner page's shared pieces (app.js): failed, pager, pageSize, loaders. */
export function wireAudit(tabKit) {
  kit = tabKit;
  const kinds = $("audit-action");
  kinds.replaceChildren(...KINDS.map(([value, text]) => el("option", { value }, text)));
  kit.loaders.audit = () => loadAudit(1);
  $("audit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadAudit(1);
  });
}
