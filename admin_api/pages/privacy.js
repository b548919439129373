// Privacy requests (owners), in the Conversations tab: export or erase everything stored
// about one visitor, named by a conversation id (c_…, also from an open transcript), an email
// address, a phone number or the REST channel's sender.
//
// Export answers JSON, offered as a file to save. Erasing cannot be undone, so it asks first
// and then says what was deleted, per store; "nothing stored" is the API's 404, said as such.

import { api, ApiError, el, say } from "./api.js";
import { clearErrors, showFieldErrors } from "./forms.js";

const $ = (id) => document.getElementById(id);
const BY = { conversation: "the conversation", email: "the email address",
  phone: "the phone number", sender: "the REST sender" };
// ErasedOut.deleted's stores (admin_api/privacy.py), as an owner reads them: [one, many].
const STORES = { conversations: ["conversation", "conversations"],
  messages: ["message", "messages"], deliveries: ["delivery", "deliveries"],
  handoff_requests: ["handoff", "handoffs"], return_requests: ["return request", "return requests"],
  verification_failures: ["verification counter", "verification counters"],
  tracker_events: ["dialogue event", "dialogue events"],
  cached_answers: ["cached answer", "cached answers"],
  conversation_notes: ["agent's note", "agents' notes"],
  conversation_events: ["handoff event", "handoff events"] };

let kit = null;
let download = null; // the object URL of the last export, freed when the next replaces it

function visitor() {
  const by = $("privacy-by").value;
  return { by, value: $("privacy-value").value.trim(), query: { [by]: $("privacy-value").value.trim() } };
}

function valueField() {
  return { spec: { name: $("privacy-by").value }, input: $("privacy-value"),
    error: $("privacy-value-error") };
}

function refused(error, status) {
  if (error instanceof ApiError && error.status === 422) {
    const detail = error.body && error.body.detail;
    showFieldErrors([valueField()], status, typeof detail === "string"
      ? [{ loc: [$("privacy-by").value], msg: detail }] : detail, "",
    "Nothing was looked up: see the marked field.");
  } else if (error instanceof ApiError && error.status === 404) {
    say(status, `Nothing found: ${error.detail}`);
  } else {
    kit.failed(status, error);
  }
}

function counted(counts) {
  const parts = Object.entries(counts).filter(([, n]) => n).map(([store, n]) => {
    const [one, many] = STORES[store] || [store.replace(/_/g, " "), store.replace(/_/g, " ")];
    return `${n} ${n === 1 ? one : many}`;
  });
  return parts.join(", ") || "nothing";
}

/** The visitor the form names, its earlier errors cleared; null (and said) when it is empty. */
function asked(status) {
  const named = visitor();
  clearErrors([valueField()], status);
  if (named.value) return named;
  showFieldErrors([valueField()], status, [{ loc: [named.by], msg: `Enter ${BY[named.by]}.` }]);
  return null;
}

async function exportVisitor() {
  const status = $("privacy-status");
  const named = asked(status);
  if (!named) return;
  const { query } = named;
  say(status, "Collecting…");
  $("privacy-download").hidden = true;
  try {
    const data = await api("GET", "/privacy/export", { query });
    if (download) URL.revokeObjectURL(download);
    download = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)],
      { type: "application/json" }));
    const link = $("privacy-download-link");
    link.href = download;
    link.download = `visitor-${data.visitor}.json`;
    $("privacy-download").hidden = false;
    const sizes = Object.fromEntries(Object.entries(data)
      .filter(([key, list]) => Array.isArray(list) && !["conversation_ids", "log_pseudonyms"]
        .includes(key)).map(([key, list]) => [key, list.length]));
    say(status, `Found ${counted(sizes)}. Save the file and send it to the visitor.`, "ok");
    link.focus();
  } catch (error) {
    refused(error, status);
  }
}

async function eraseVisitor() {
  const status = $("privacy-status");
  const named = asked(status);
  if (!named) return;
  const { by, value, query } = named;
  if (!window.confirm(`Erase everything stored about the visitor of ${BY[by]} “${value}”: `
    + "their conversations, messages, handoffs and the bot's records of them? This cannot be "
    + "undone.")) return;
  say(status, "Erasing…");
  try {
    const erased = await api("POST", "/privacy/erase", { json: query });
    say(status, `Erased: ${counted(erased.deleted)} deleted.`, "ok");
    $("privacy-download").hidden = true;
    await kit.conversationsChanged(); // the erased conversations leave the list at once
  } catch (error) {
    refused(error, status);
  }
}

/** The transcript just opened (owners): its conversation id goes into the form. */
export function privacyFor(conversationId) {
  if ($("privacy").hidden) return;
  $("privacy-by").value = "conversation";
  $("privacy-value").value = conversationId;
  clearErrors([valueField()], $("privacy-status"));
}

/** `tabKit`: the owner page's shared pieces (app.js): failed, conversationsChanged. Shown to
 * owners only. */
export function wirePrivacy(tabKit) {
  kit = tabKit;
  $("privacy-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (event.submitter && event.submitter.value === "erase") eraseVisitor();
    else exportVisitor();
  });
  $("privacy-by").addEventListener("change", () => clearErrors([valueField()], null));
}
