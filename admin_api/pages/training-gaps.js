// The Training tab's gaps: what visitors asked that the bot could not handle in the last 30
// days (GET /gaps: grouped by meaning, largest first, with cleaned example phrasings and a
// suggested intent). Picking one opens a form with its examples (one a line, to edit or
// drop) and its intent (the suggestion, an existing intent or a new name); accepting adds
// them to nlu/<draft> (and a new intent to domain/<draft>) in one call, and opens that draft
// so the designer sees them where they landed.
//
// The grouping embeds the messages, which takes seconds the first time: while the API
// answers `ready: false` the list asks again, only while the tab is shown.

import { api, ApiError, el, say } from "./api.js";
import { clearErrors, field, showFieldErrors } from "./forms.js";

const $ = (id) => document.getElementById(id);

const AGAIN_MS = 1500;
const TRIES = 60;

let tk = null;
let ready = false;
let asking = false;
let intents = null; // the base's intents, for the intent field's suggestions

/** Lists the gaps; `again`: only when an earlier listing had not finished (the tab shown
 * again while the grouping ran). */
export async function loadGaps({ again = false } = {}) {
  if ((again && ready) || asking) return;
  asking = true;
  const status = $("gaps-status");
  try {
    for (let tries = 0; tries < TRIES && tk.visible(); tries += 1) {
      const answer = await api("GET", "/gaps", { query: { page_size: 20 } });
      if (answer.ready) {
        ready = true;
        showGaps(answer);
        return;
      }
      say(status, "Grouping the messages the bot could not handle…");
      await new Promise((done) => setTimeout(done, AGAIN_MS));
    }
  } catch (error) {
    tk.failed(status, error);
  } finally {
    asking = false;
  }
}

function showGaps(answer) {
  say($("gaps-status"), answer.total ? `${answer.total} gap${answer.total === 1 ? "" : "s"} `
    + "in the last 30 days, largest first." : "No gaps in the last 30 days: the bot handled "
    + "every message.");
  $("gaps-list").replaceChildren(...answer.items.map((gap) => el("li", {},
    el("button", { type: "button", class: "link", "aria-controls": "gap-form",
      "data-gap": gap.id, onclick: (event) => pick(gap, event.currentTarget) }, gap.question),
    el("span", { class: "hint" }, ` asked ${gap.count} time${gap.count === 1 ? "" : "s"}; `
      + `suggested intent ${gap.suggested_intent}${gap.intent_exists ? "" : " (new)"}`))));
}

async function knownIntents() {
  if (intents === null) {
    try {
      intents = (await api("GET", "/training/base")).intents.filter((i) => i !== "nlu_fallback");
    } catch {
      intents = []; // only suggestions: the field takes any name
    }
  }
  return intents;
}

async function pick(gap, button) {
  for (const other of $("gaps-list").querySelectorAll("button[aria-pressed]")) {
    other.removeAttribute("aria-pressed");
  }
  button.setAttribute("aria-pressed", "true");
  const form = $("gap-form");
  const intent = field({ name: "intent", label: "Intent",
    hint: "An existing intent, or a new name (letters, digits and _): a new one is listed in "
      + "the domain draft too." });
  intent.input.value = gap.suggested_intent;
  const options = el("datalist", { id: "gap-intents" },
    [...new Set([gap.suggested_intent, ...await knownIntents()])]
      .map((name) => el("option", { value: name })));
  intent.input.setAttribute("list", "gap-intents");
  const examples = field({ name: "examples", label: "Examples (one a line)", type: "list",
    hint: "What visitors wrote, cleaned: edit them or remove lines that do not belong." });
  examples.input.rows = Math.min(10, Math.max(3, gap.examples.length + 1));
  examples.input.value = gap.examples.join("\n");
  const draft = field({ name: "draft", label: "Draft", hint: "Examples go to nlu/<draft>.yml, "
    + "a new intent to domain/<draft>.yml (made when missing)." });
  draft.input.value = "gaps";
  const fields = [intent, examples, draft];
  const status = el("p", { class: "message", role: "status", "aria-live": "polite" });
  const submit = el("button", { type: "submit" }, "Add to the draft");
  form.replaceChildren(el("h4", { id: "gap-form-title" }, `“${gap.question}”`), options,
    el("div", { class: "fields" }, intent, draft, el("div", { class: "wide" }, examples)),
    submit, status);
  form.setAttribute("aria-labelledby", "gap-form-title");
  form.onsubmit = (event) => accept(event, gap, fields, status, submit);
  form.hidden = false;
  examples.input.focus();
}

async function accept(event, gap, [intent, examples, draft], status, submit) {
  event.preventDefault();
  const fields = [intent, examples, draft];
  clearErrors(fields, status);
  const lines = examples.input.value.split("\n").map((line) => line.trim()).filter(Boolean);
  if (!lines.length) {
    showFieldErrors(fields, status, [{ loc: ["examples"], msg: "add at least one example" }]);
    return;
  }
  const body = { intent: intent.input.value.trim(), examples: lines,
    draft: draft.input.value.trim() || "gaps" };
  submit.disabled = true;
  say(status, "Adding…");
  try {
    const answer = await api("POST", `/gaps/${encodeURIComponent(gap.id)}/accept`, { json: body });
    const file = tk.fileOf("nlu", body.draft);
    const skipped = answer.already_present.length
      ? ` ${answer.already_present.length} left out: training has them already.` : "";
    const listed = answer.new_intent ? ` The new intent is listed in ${tk.fileOf("domain",
      body.draft)}.` : "";
    say(status, `Added ${answer.added.length} example${answer.added.length === 1 ? "" : "s"} `
      + `of ${answer.intent} to ${file}.${listed}${skipped}`, "ok");
    // Drafts changed as a save changes them: a check or refused training above is stale now.
    if (answer.drafts.length) tk.checkedBefore();
    await tk.loadDrafts();
    await tk.openDraft("nlu", body.draft, { reload: true });
    // Under the draft, as a save shows its problems (validation's list is about all drafts).
    if (answer.problems.length) tk.showList($("draft-problems"), answer.problems, "error");
    ready = false; // the gap's examples are training data now: it shrinks or goes
    await loadGaps();
  } catch (error) {
    if (error instanceof ApiError && error.status === 422) {
      showFieldErrors(fields, status, error.body && error.body.detail);
    } else {
      tk.failed(status, error);
    }
  } finally {
    submit.disabled = false;
  }
}

/** `shared`: training.js's pieces (visible, openDraft, loadDrafts, showList, fileOf,
 * checkedBefore). */
export function wireGaps(shared) {
  tk = shared;
}
