// The Training tab (designers and owners, as the routes are): the shop's drafts of training
// data in Rasa's YAML, edited here; validation whose errors open the draft at their line;
// training a version, its progress, cancelling it; the versions, compared and activated
// (training-models.js); the gaps, accepted into a draft (training-gaps.js).
//
// Drafts are text: GET answers application/x-yaml and PUT takes it, so they go through
// `yamlCall` below rather than api() (which speaks JSON). A draft with problems is stored all
// the same (the API says so, as an editor saves work in progress); what stops a training is
// validation's `errors`. Changes not saved are never dropped silently: opening another draft
// asks first, and so does leaving the page.
//
// Following a training polls the API only while this tab is shown: leaving the tab stops it,
// coming back picks up the version still under way (a MutationObserver on the panel's
// `hidden`, which app.js sets, so app.js needs no hook for it).

import { api, ApiError, detailText, el, say, when } from "./api.js";
import { clearErrors, field, showFieldErrors } from "./forms.js";
import { DraftEditor } from "./training-editor.js";
import { loadGaps, wireGaps } from "./training-gaps.js";
import { loadModels, wireModels } from "./training-models.js";
import { trackUnsaved } from "./unsaved.js";

const $ = (id) => document.getElementById(id);

const CSRF_KEY = "switchboard.csrf"; // api.js keeps the login's CSRF token under this name
const KINDS = [
  ["nlu", "NLU examples"], ["rules", "Rules"], ["stories", "Stories"], ["domain", "Domain"],
  ["tests", "Test stories"],
];
const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/; // admin_api/training/drafts.py NAME_PATTERN

// A small start per kind, in Rasa 3's formats; together they are a whole feature (a new
// intent, its examples, its answer, the rule that gives it and a test story) that passes
// validation. The stories one says why validation refuses stories (this bot follows rules).
const TEMPLATES = {
  nlu: `version: "3.1"
# Examples of what visitors write, by intent. A new intent is also listed in a domain draft;
# examples for the base's intents (check_order_status, request_return, ...) need nothing else.
nlu:
  - intent: ask_gift_wrap
    examples: |
      - do you offer gift wrapping?
      - can you wrap it as a present
      - is gift wrap available
`,
  domain: `version: "3.1"
# What a draft adds to the bot: new intents, entities, slots, forms and utter_ responses.
intents:
  - ask_gift_wrap
responses:
  utter_gift_wrap:
    - text: "Yes: choose gift wrapping at checkout."
`,
  rules: `version: "3.1"
# What the bot does: the bot follows rules (not stories).
rules:
  - rule: gift wrap questions get the gift wrap answer
    steps:
      - intent: ask_gift_wrap
      - action: utter_gift_wrap
`,
  stories: `version: "3.1"
# Stored, but the bot's policy follows rules only: validation asks to write each story as a
# rule (a rules draft).
stories:
  - story: a gift wrap question
    steps:
      - intent: ask_gift_wrap
      - action: utter_gift_wrap
`,
  tests: `version: "3.1"
# Conversations a trained version is tested with (never trained on).
stories:
  - story: a gift wrap question is answered
    steps:
      - user: |
          do you wrap presents?
        intent: ask_gift_wrap
      - action: utter_gift_wrap
`,
};

const state = { drafts: [], open: null, loaded: false };
let kit = null;
let editor = null;
let newFields = [];

/** The tab is on screen (its panel shown and nobody logged out): polling goes on only then. */
export function visible() {
  return !$("panel-training").hidden && !$("app").hidden;
}

export const fileOf = (kind, name) => `${kind}/${name}.yml`;

/** A draft's text (GET) or a stored draft's answer (PUT), as application/x-yaml. */
async function yamlCall(method, path, text) {
  const headers = { Accept: "application/x-yaml, application/json" };
  if (text !== undefined) headers["Content-Type"] = "application/x-yaml; charset=utf-8";
  const csrf = sessionStorage.getItem(CSRF_KEY);
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(new URL(`/api/v1${path}`, window.location.origin),
    { method, headers, body: text, credentials: "same-origin" });
  const body = await response.text();
  const json = (response.headers.get("content-type") || "").startsWith("application/json");
  let data = body;
  if (json && body) {
    try {
      data = JSON.parse(body);
    } catch {
      data = { detail: body.slice(0, 200) };
    }
  }
  if (!response.ok) throw new ApiError(response.status, detailText(data, response.status), data);
  return data;
}

// -- the drafts' list ---------------------------------------------------------------------------

export async function loadDrafts() {
  try {
    const answer = await api("GET", "/training", { query: { page_size: 200 } });
    state.drafts = answer.items;
    showDrafts();
  } catch (error) {
    kit.failed($("training-status"), error);
  }
}

function showDrafts() {
  const groups = KINDS.map(([kind, label]) => {
    const mine = state.drafts.filter((d) => d.kind === kind);
    if (!mine.length) return null;
    const headingId = `drafts-${kind}`;
    return el("div", { class: "draft-kind" }, el("h4", { id: headingId }, label),
      el("ul", { "aria-labelledby": headingId }, mine.map((draft) => {
        const current = state.open && state.open.kind === kind && state.open.name === draft.name;
        return el("li", {}, el("button", { type: "button", class: "link",
          "aria-current": current ? "true" : undefined,
          onclick: () => openDraft(kind, draft.name) }, fileOf(kind, draft.name)),
        el("span", { class: "hint" }, ` ${draft.size} B · ${when(draft.updated_at)}`));
      })));
  }).filter(Boolean);
  $("drafts-list").replaceChildren(...(groups.length ? groups
    : [el("p", { class: "hint" }, "No drafts yet: start one below.")]));
}

// -- the editor ---------------------------------------------------------------------------------

/** True when the open draft has no unsaved changes, or the designer lets them go. */
function mayLeave() {
  if (!state.open || !editor.dirty) return true;
  return window.confirm(`${fileOf(state.open.kind, state.open.name)} has changes that are not `
    + "saved. Discard them?");
}

function showEditor(kind, name, isNew) {
  state.open = { kind, name, isNew };
  $("draft-editor").hidden = false;
  $("draft-title").textContent = `${fileOf(kind, name)}${isNew ? " (new, not saved yet)" : ""}`;
  $("draft-delete").hidden = isNew;
  $("draft-problems").replaceChildren();
  say($("draft-status"), "");
  say($("training-status"), ""); // "Deleted …": about the draft that was open
  showDrafts();
}

/** Opens a stored draft (asking first when the open one has unsaved changes); `line`: put
 * the caret there; `reload`: read it again when it is open already (it changed elsewhere).
 * Resolves false when the designer kept the open draft. */
export async function openDraft(kind, name, { line = null, reload = false } = {}) {
  const same = state.open && state.open.kind === kind && state.open.name === name;
  if (same && !state.open.isNew && !reload) {
    if (line) editor.goToLine(line);
    return true;
  }
  if (!mayLeave()) return false;
  const status = $("draft-status");
  try {
    const text = await yamlCall("GET", `/training/${kind}/${encodeURIComponent(name)}`);
    showEditor(kind, name, false);
    editor.load(text);
    if (line) editor.goToLine(line);
    else $("draft-title").focus();
    return true;
  } catch (error) {
    kit.failed(status, error);
    return false;
  }
}

async function saveDraft() {
  const { kind, name } = state.open;
  const status = $("draft-status");
  const text = $("draft-text").value;
  if (!text.trim()) {
    say(status, "The draft is empty: write its YAML, or delete the draft.", "error");
    return;
  }
  const button = $("draft-save");
  button.disabled = true;
  say(status, "Saving…");
  try {
    const saved = await yamlCall("PUT", `/training/${kind}/${encodeURIComponent(name)}`, text);
    editor.markSaved(text);
    state.open.isNew = false;
    $("draft-title").textContent = fileOf(kind, name);
    $("draft-delete").hidden = false;
    const problems = saved.problems || [];
    showList($("draft-problems"), problems, "error");
    checkedBefore();
    say(status, problems.length ? `Saved, with ${problems.length} problem${
      problems.length === 1 ? "" : "s"} to fix before training (listed below).` : "Saved.",
    problems.length ? "error" : "ok");
    await loadDrafts();
  } catch (error) {
    kit.failed(status, error);
  } finally {
    button.disabled = false;
  }
}

async function deleteDraft() {
  const { kind, name } = state.open;
  const file = fileOf(kind, name);
  if (!window.confirm(`Delete the draft ${file}? Versions trained from it keep their copy; `
    + "the next training goes without it.")) return;
  try {
    await api("DELETE", `/training/${kind}/${encodeURIComponent(name)}`);
    state.open = null;
    editor.load("");
    $("draft-editor").hidden = true;
    checkedBefore();
    say($("training-status"), `Deleted ${file}.`, "ok");
    await loadDrafts();
    $("drafts-title").focus();
  } catch (error) {
    kit.failed($("draft-status"), error);
  }
}

function wireNewDraft() {
  const kind = field({ name: "kind", label: "Kind", type: "select",
    options: KINDS.map(([value, label]) => [value, `${label} (${value})`]) });
  const name = field({ name: "name", label: "Name", placeholder: "gift_wrap",
    hint: "Lower-case letters, digits, _ and -; the file is <kind>/<name>.yml." });
  name.input.maxLength = 64;
  newFields = [kind, name];
  const form = $("draft-new-form");
  form.append(kind, name, el("button", { type: "submit" }, "Start the draft"),
    el("p", { class: "hint field-hint" }, "It opens with a small example of its kind "
      + "to change; it is stored when you save it."));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(newFields, null);
    const chosen = kind.input.value;
    const wanted = name.input.value.trim();
    if (!NAME.test(wanted)) {
      showFieldErrors(newFields, null, [{ loc: ["name"], msg: "a name is 1 to 64 lower-case "
        + "letters, digits, _ and -, starting with a letter or digit" }]);
      return;
    }
    if (state.drafts.some((d) => d.kind === chosen && d.name === wanted)) {
      if (await openDraft(chosen, wanted)) {
        say($("draft-status"), `${fileOf(chosen, wanted)} exists already: opened it.`);
      }
      return;
    }
    if (!mayLeave()) return;
    showEditor(chosen, wanted, true);
    editor.load("");
    $("draft-text").value = TEMPLATES[chosen];
    editor.refresh();
    form.reset();
    $("draft-text").focus();
  });
}

// -- problems: validation's, training's refusal, a saved draft's --------------------------------

/** Fills `list` with problems ({file, line, message}); those in a draft open it at the line. */
export function showList(list, problems, kind) {
  list.hidden = !problems.length;
  list.replaceChildren(...problems.map((problem) => {
    const [draftKind, rest] = String(problem.file).split("/");
    const draftName = (rest || "").replace(/\.yml$/, "");
    // Rasa may name no file or line (file "", line 0): then the message is all there is.
    const where = [problem.file, problem.line > 0 ? `line ${problem.line}` : ""]
      .filter(Boolean).join(", ");
    const known = state.drafts.some((d) => d.kind === draftKind && d.name === draftName);
    const text = where ? `${where}: ${problem.message}` : problem.message;
    return el("li", { class: kind }, known
      ? el("button", { type: "button", class: "link problem",
        "aria-label": `${text} (opens the draft${problem.line > 0 ? ` at line ${problem.line}`
          : ""})`,
        onclick: () => openDraft(draftKind, draftName, { line: problem.line || null }) },
        text)
      : text);
  }));
}

/** Validation's answer (or a training's 422 `errors`) under "Check and train". */
export function showProblems(errors, warnings = []) {
  showList($("validate-errors"), errors, "error");
  showList($("validate-warnings"), warnings, "warning");
}

/** A draft changed (saved, deleted, or a gap accepted into it): validation's verdict (or a
 * refused training's) was about the drafts as they were, so it says so rather than standing
 * as if it were current. */
function checkedBefore() {
  const status = $("validate-status");
  if (status.dataset.about !== "drafts") return;
  delete status.dataset.about;
  say(status, "The drafts changed since this check: validate again to see where they stand "
    + "(the list below is from before).");
}

async function validateAll() {
  const status = $("validate-status");
  const button = $("training-validate");
  button.disabled = true;
  status.dataset.about = "drafts";
  say(status, "Checking every draft (ours, then Rasa's own checks)…");
  // Validation reads the stored drafts: an editor's unsaved text is not what it checks.
  const unsaved = state.open && editor.dirty ? ` (${fileOf(state.open.kind, state.open.name)}`
    + " as stored: its changes in the editor are not saved yet)" : "";
  try {
    const answer = await api("POST", "/training/validate");
    const errors = answer.errors || [];
    const warnings = answer.warnings || [];
    showProblems(errors, warnings);
    const noted = `${unsaved}${warnings.length ? ` ${warnings.length} warning${
      warnings.length === 1 ? "" : "s"} (they do not stop a training).` : ""}`;
    if (answer.ok) say(status, `No errors: the drafts can train.${noted}`, "ok");
    else {
      say(status, `${errors.length} error${errors.length === 1 ? "" : "s"} to fix before `
        + `training${answer.rasa_checked ? "" : " (Rasa's own checks run once the YAML reads)"}`
        + `; each opens its draft at its line.${noted}`, "error");
    }
  } catch (error) {
    kit.failed(status, error);
  } finally {
    button.disabled = false;
  }
}

// -- wiring -------------------------------------------------------------------------------------

async function loadTraining() {
  say($("training-status"), "");
  await loadDrafts();
  await Promise.all([loadModels(), loadGaps()]);
  state.loaded = true; // from now on, showing the tab again refreshes what may have moved
}

/** `tabKit`: the owner page's shared pieces (app.js): failed(node, error), pager, loaders. */
export function wireTraining(tabKit) {
  kit = tabKit;
  editor = new DraftEditor($("draft-text"), $("draft-gutter"), $("draft-caret"));
  wireNewDraft();
  $("draft-save").addEventListener("click", saveDraft);
  $("draft-delete").addEventListener("click", deleteDraft);
  $("training-validate").addEventListener("click", validateAll);
  const shared = { ...kit, visible, openDraft, loadDrafts, showProblems, showList, fileOf,
    checkedBefore };
  wireModels(shared);
  wireGaps(shared);
  kit.loaders.training = loadTraining;
  // Back on the tab: follow a version still under way, ask again for gaps not grouped yet.
  new MutationObserver(() => {
    if (state.loaded && visible()) Promise.all([loadModels(), loadGaps({ again: true })]);
  }).observe($("panel-training"), { attributes: true, attributeFilter: ["hidden"] });
  trackUnsaved(() => (state.open && editor.dirty
    ? [`the training draft ${fileOf(state.open.kind, state.open.name)}`] : []));
}
