// The Developers tab (owners): the shop's API keys and its outgoing webhooks.
//
// A key's whole value and a webhook's signing secret are answered once, by the POST that
// makes them (only a hash, or a sealed copy, is stored): the page shows each once, with a
// copy button and a warning, and never again (a reload forgets it).

import { api, ApiError, el, say, when } from "./api.js";
import { clearErrors, field, showFieldErrors, shownOnce } from "./forms.js";

const $ = (id) => document.getElementById(id);

const ROLES = [
  ["rest", "REST channel: your servers talk to the bot"],
  ["agent", "agent: answers handed-over conversations (a helpdesk bridge)"],
  ["designer", "designer: texts, knowledge and training"],
  ["owner", "owner: everything, like you"],
];
// routes/webhooks.py EventKind, with what each means to an owner.
const EVENTS = [
  ["handoff.requested", "a visitor asked for a person"],
  ["handoff.claimed", "a person took the conversation"],
  ["handoff.transferred", "it went to another person"],
  ["handoff.resolved", "the person handed it back"],
  ["satisfaction.given", "the visitor rated the help"],
];
const DELIVERIES_SHOWN = 10;

let kit = null;
let keysPage = 1;
let hooksPage = 1;

// -- API keys ---------------------------------------------------------------------------------

async function loadKeys(page = keysPage) {
  keysPage = page;
  const status = $("keys-status");
  try {
    const answer = await api("GET", "/keys", { query: { page, page_size: kit.pageSize } });
    const rows = answer.items.map((key) => {
      const revoked = Boolean(key.revoked_at);
      const revoke = revoked ? null : el("button", { type: "button", class: "danger small",
        "aria-label": `Revoke ${key.name}` }, "Revoke");
      if (revoke) revoke.addEventListener("click", () => revokeKey(key, revoke));
      return el("tr", { class: revoked ? "revoked" : undefined },
        el("td", {}, key.name), el("td", {}, key.role), el("td", {}, el("code", {}, key.label)),
        el("td", {}, when(key.created_at)), el("td", {}, key.last_used_at ? when(key.last_used_at) : "never"),
        el("td", {}, revoked ? `revoked ${when(key.revoked_at)}` : "active"), el("td", {}, revoke));
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 7 }, "No API keys yet.")));
    $("keys-table").tBodies[0].replaceChildren(...rows);
    kit.pager($("keys-pager"), answer, loadKeys);
  } catch (error) {
    kit.failed(status, error);
  }
}

async function revokeKey(key, button) {
  if (!window.confirm(`Revoke the key “${key.name}” (${key.label})? Whatever uses it stops `
    + "working within seconds; this cannot be undone.")) return;
  button.disabled = true;
  const status = $("keys-status");
  try {
    await api("DELETE", `/keys/${encodeURIComponent(key.id)}`);
    say(status, `Revoked “${key.name}”.`, "ok");
    await loadKeys();
  } catch (error) {
    kit.failed(status, error);
    button.disabled = false;
  }
}

function wireKeys() {
  const name = field({ name: "name", label: "Label (what uses this key)",
    placeholder: "order system" });
  name.input.required = true;
  name.input.maxLength = 100;
  const role = field({ name: "role", label: "What the key may do", type: "select", options: ROLES });
  const fields = [name, role];
  const form = $("keys-form");
  form.prepend(el("div", { class: "filters" }, el("div", {}, name), el("div", {}, role)));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("keys-status");
    clearErrors(fields, status);
    $("keys-new").replaceChildren();
    const label = name.input.value.trim();
    if (!label) {
      showFieldErrors(fields, status, [{ loc: ["name"], msg: "Give the key a label." }]);
      return;
    }
    const button = event.submitter;
    if (button) button.disabled = true;
    try {
      const key = await api("POST", "/keys", { json: { name: label, role: role.input.value } });
      form.reset();
      $("keys-new").replaceChildren(shownOnce(`The new key “${key.name}” (${key.role})`,
        key.secret, "Copy it now: it is shown only this once (we keep only a hash). If it is "
          + "lost, create another and revoke this one."));
      $("keys-new").querySelector("input").focus();
      say(status, `Key “${key.name}” created.`, "ok");
      await loadKeys(1);
    } catch (error) {
      if (error instanceof ApiError && error.status === 422) {
        showFieldErrors(fields, status, error.body && error.body.detail);
      } else {
        kit.failed(status, error);
      }
    } finally {
      if (button) button.disabled = false;
    }
  });
}

// -- webhooks ---------------------------------------------------------------------------------

function deliveryRow(d) {
  const answer = d.last_status ? `HTTP ${d.last_status}` : d.error ? "" : "—";
  return el("tr", {}, el("td", {}, when(d.created_at)), el("td", {}, d.kind),
    el("td", {}, d.status), el("td", { class: "num" }, String(d.attempts)),
    el("td", {}, [answer, d.error].filter(Boolean).join(" · ")),
    el("td", {}, d.status === "pending" && d.next_attempt_at ? `next try ${when(d.next_attempt_at)}`
      : d.delivered_at ? `delivered ${when(d.delivered_at)}` : ""));
}

async function showDeliveries(hook, holder, button) {
  if (!holder.hidden) {
    holder.hidden = true;
    button.setAttribute("aria-expanded", "false");
    return;
  }
  button.setAttribute("aria-expanded", "true");
  holder.hidden = false;
  holder.replaceChildren(el("p", { class: "hint" }, "Loading…"));
  try {
    const answer = await api("GET", `/webhooks/${encodeURIComponent(hook.id)}/deliveries`,
      { query: { page_size: DELIVERIES_SHOWN } });
    holder.replaceChildren(answer.items.length ? el("table", { class: "deliveries" },
      el("caption", { class: "hint" }, `Latest deliveries to ${hook.url} (${answer.total} in all)`),
      el("thead", {}, el("tr", {}, ["Event at", "Event", "State", "Tries", "Last answer", ""]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, answer.items.map(deliveryRow)))
      : el("p", { class: "hint" }, "Nothing sent yet: events are sent as they happen."));
  } catch (error) {
    const line = el("p", { class: "message" });
    holder.replaceChildren(line);
    kit.failed(line, error);
  }
}

async function loadHooks(page = hooksPage) {
  hooksPage = page;
  const status = $("webhooks-status");
  try {
    const answer = await api("GET", "/webhooks", { query: { page, page_size: kit.pageSize } });
    const rows = answer.items.flatMap((hook) => {
      const holder = el("div", { id: `webhook-${hook.id}-deliveries`, hidden: true });
      const log = el("button", { type: "button", class: "secondary small", "aria-expanded": "false",
        "aria-controls": holder.id, "aria-label": `Deliveries to ${hook.url}` }, "Deliveries");
      log.addEventListener("click", () => showDeliveries(hook, holder, log));
      const remove = el("button", { type: "button", class: "danger small",
        "aria-label": `Delete the webhook to ${hook.url}` }, "Delete");
      remove.addEventListener("click", () => deleteHook(hook, remove));
      return [el("tr", {}, el("td", {}, el("code", {}, hook.url)), el("td", {}, hook.events.join(", ")),
        el("td", {}, hook.created_by), el("td", {}, when(hook.created_at)),
        el("td", {}, el("div", { class: "row" }, log, remove))),
      el("tr", { class: "detail" }, el("td", { colspan: 5 }, holder))];
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 5 }, "No webhooks yet.")));
    $("webhooks-table").tBodies[0].replaceChildren(...rows);
    kit.pager($("webhooks-pager"), answer, loadHooks);
  } catch (error) {
    kit.failed(status, error);
  }
}

async function deleteHook(hook, button) {
  if (!window.confirm(`Delete the webhook to ${hook.url}? Nothing more is sent there, and its `
    + "delivery log goes with it.")) return;
  button.disabled = true;
  const status = $("webhooks-status");
  try {
    await api("DELETE", `/webhooks/${encodeURIComponent(hook.id)}`);
    say(status, `Deleted the webhook to ${hook.url}.`, "ok");
    await loadHooks();
  } catch (error) {
    kit.failed(status, error);
    button.disabled = false;
  }
}

function wireHooks() {
  const url = field({ name: "url", label: "URL the events are sent to",
    placeholder: "https://helpdesk.example/switchboard", hint: "https:// (plain http only to "
      + "this machine, for development). Each POST is signed with the secret shown once." });
  url.input.type = "url";
  const boxes = EVENTS.map(([kind, meaning]) => {
    const box = field({ name: "events", label: `${kind}: ${meaning}`, type: "checkbox" });
    box.input.value = kind;
    box.input.checked = true;
    return box;
  });
  const eventsError = el("p", { class: "field-error error", id: "webhooks-events-error", hidden: true });
  const events = el("fieldset", { class: "events", "aria-describedby": eventsError.id },
    el("legend", {}, "Events to send"), boxes, eventsError);
  // One stand-in for the fieldset, so a 422 on `events` lands under it.
  const eventsField = { spec: { name: "events" }, input: boxes[0].input, error: eventsError };
  const fields = [url, eventsField];
  const form = $("webhooks-form");
  form.prepend(url, events);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = $("webhooks-status");
    clearErrors(fields, status);
    $("webhooks-new").replaceChildren();
    const chosen = boxes.filter((b) => b.input.checked).map((b) => b.input.value);
    if (!url.input.value.trim() || !chosen.length) {
      showFieldErrors(fields, status, [
        ...(url.input.value.trim() ? [] : [{ loc: ["url"], msg: "Enter the URL to send events to." }]),
        ...(chosen.length ? [] : [{ loc: ["events"], msg: "Choose at least one event." }])]);
      return;
    }
    const button = event.submitter;
    if (button) button.disabled = true;
    try {
      const hook = await api("POST", "/webhooks", { json: { url: url.input.value.trim(),
        events: chosen } });
      form.reset();
      for (const box of boxes) box.input.checked = true;
      $("webhooks-new").replaceChildren(shownOnce(`Signing secret of the webhook to ${hook.url}`,
        hook.secret, "Copy it into the receiving server now: it is shown only this once. "
          + "Each POST carries X-Switchboard-Signature: t=<time>,v1=<HMAC-SHA256 of "
          + "'<t>.<body>' with this secret>."));
      $("webhooks-new").querySelector("input").focus();
      say(status, `Webhook to ${hook.url} added.`, "ok");
      await loadHooks(1);
    } catch (error) {
      if (error instanceof ApiError && error.status === 422) {
        // Our URL check answers a sentence about the URL: it goes under the URL.
        const detail = error.body && error.body.detail;
        showFieldErrors(fields, status, typeof detail === "string"
          ? [{ loc: ["url"], msg: detail }] : detail);
      } else {
        kit.failed(status, error);
      }
    } finally {
      if (button) button.disabled = false;
    }
  });
}

/** `tabKit`: the owner page's shared pieces (app.js): failed, pager, pageSize, loaders,
 * refreshers. */
export function wireDevelopers(tabKit) {
  kit = tabKit;
  wireKeys();
  wireHooks();
  kit.loaders.developers = () => Promise.all([loadKeys(1), loadHooks(1)]);
  kit.refreshers.developers = () => Promise.all([loadKeys(), loadHooks()]);
}
