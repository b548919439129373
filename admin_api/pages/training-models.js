// The Training tab's model versions: train one from the drafts (POST /models), follow it
// while it is queued, trained and tested (GET /models/{id}, only while the tab is shown),
// cancel it; the versions with who started them, when, training time and size, the active
// one marked; a version's evaluation against the model it was compared with (held-out
// per-intent scores, test stories whose outcome changed, how the last 30 days of messages
// would be routed differently); activating one (an earlier one: a rollback; or the base
// model), deleting one not in use. Each change asks for confirmation first.

import { api, ApiError, el, say, when } from "./api.js";

const $ = (id) => document.getElementById(id);

const PAGE = 10;
const POLL_MS = 700;
const UNDER_WAY = new Set(["queued", "training"]);
const NO_VERSIONS = "No versions yet: the shop's bot uses the base model.";
// Held-out examples of an intent below which its scores say little: one example more or less
// right moves its F1 by 0.2 or more (a new intent of 14 examples holds out 2, and showed F1
// 0.00 while it answered every phrasing live: walkthrough).
const FEW = 5;
const MIN_EXAMPLES = 5; // bot/scoring.py: an intent with fewer is trained on whole, not scored
const FEW_HELD_OUT = 50; // in all: below it, accuracy and macro F1 swing with each example

let tk = null;
let modelsPage = 1;
let following = null; // the version id being followed
let shown = []; // the versions listed now, with base last

const short = (id) => (id === "base" ? "the base model" : `version ${id.slice(0, 8)}`);
const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

function size(bytes) {
  if (typeof bytes !== "number") return "";
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} kB`
    : `${(bytes / 1048576).toFixed(1)} MB`;
}

function seconds(value) {
  if (typeof value !== "number") return "";
  return value < 90 ? `${value.toFixed(1)} s` : `${Math.floor(value / 60)} min ${
    Math.round(value % 60)} s`;
}

const percent = (value) => `${Math.round((Number(value) || 0) * 100)} %`;

/** "training the NLU, 35 %", "queued, 2nd in the workshop's queue". */
function progressText(model) {
  const where = model.queue_position ? `, number ${model.queue_position} in the queue` : "";
  const stage = model.stage ? `: ${model.stage}` : "";
  return `${model.state}${stage}${where}, ${percent(model.progress)}`;
}

// -- training and following it -----------------------------------------------------------------

async function train() {
  const status = $("validate-status");
  const button = $("training-train");
  button.disabled = true;
  say(status, "Checking the drafts, then training…");
  delete status.dataset.about;
  say($("models-status"), ""); // what it said (activated, deleted…) was about before this
  try {
    const created = await api("POST", "/models");
    tk.showProblems([]);
    say(status, `Training ${short(created.id)} from the drafts as they are stored now.`, "ok");
    await loadModels();
    follow(created.id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 422 && error.body
        && Array.isArray(error.body.errors)) {
      // In words, not the API's detail (which names the API's own paths for scripts).
      const count = error.body.errors.length;
      tk.showProblems(error.body.errors);
      status.dataset.about = "drafts"; // training.js: stale once a draft changes
      say(status, count ? `Not trained: ${count} error${count === 1 ? "" : "s"} in the drafts `
        + "to fix first; each below opens its draft at its line."
        : "Not trained: there are no drafts yet; start one under “New draft”.", "error");
    } else if (error instanceof ApiError && error.status === 409 && error.body
        && error.body.id && error.body.state === "ready") {
      // The drafts are exactly those a ready version was trained from: the same model again.
      const { id, active } = error.body;
      status.dataset.about = "drafts"; // training.js: stale once a draft changes
      say(status, `Not trained: the drafts are the ones ${short(id)} was trained from, and `
        + (active ? "the shop's bot uses it already." : "it is ready: activate it below.")
        + " Change a draft to train a new version.");
      await loadModels({ quiet: true });
      await showDetails(id);
    } else if (error instanceof ApiError && error.status === 409 && error.body && error.body.id) {
      say(status, `Not trained: ${short(error.body.id)} is training; it is shown below.`, "error");
      follow(error.body.id);
    } else {
      tk.failed(status, error);
    }
  } finally {
    button.disabled = false;
  }
}

/** Polls the version until it has ended, the tab is left or another one is followed. */
async function follow(id) {
  if (following === id) return;
  following = id;
  const box = $("train-job");
  const stage = $("train-stage");
  $("train-label").textContent = `Training ${short(id)}`;
  $("train-cancel").hidden = false;
  box.hidden = false;
  let lastState = null;
  while (following === id && tk.visible()) {
    let model;
    try {
      model = await api("GET", `/models/${id}`);
    } catch (error) {
      tk.failed(stage, error);
      break;
    }
    if (following !== id) return;
    $("train-progress").value = Number(model.progress) || 0;
    if (!UNDER_WAY.has(model.state)) {
      box.hidden = true;
      following = null;
      say($("validate-status"), ""); // "Training version …": over, the line below says how
      const [text, kind] = {
        ready: [`${short(id)} is ready: read its details below, then activate it.`, "ok"],
        failed: [`${short(id)} failed: ${model.error || "no reason given"}`, "error"],
        cancelled: [`${short(id)} was cancelled.`, ""],
      }[model.state] || [`${short(id)} is ${model.state}.`, ""];
      say($("models-status"), text, kind);
      await loadModels();
      if (model.state === "ready") await showDetails(id);
      return;
    }
    say(stage, progressText(model));
    if (model.state !== lastState) {
      lastState = model.state;
      await loadModels({ quiet: true });
    }
    await sleep(POLL_MS);
  }
  if (following === id) following = null; // left the tab: picked up again on coming back
}

async function cancel(id) {
  if (!id || !window.confirm(`Cancel the training of ${short(id)}? It stops at once and is `
    + "listed as cancelled; the drafts can train again right away.")) return;
  const button = $("train-cancel");
  button.disabled = true;
  try {
    await api("POST", `/models/${id}/cancel`);
    if (following !== id) await loadModels({ quiet: true }); // else its poll says so
  } catch (error) {
    tk.failed($("train-stage"), error);
  } finally {
    button.disabled = false;
  }
}

// -- the versions -------------------------------------------------------------------------------

function stateCell(model) {
  const badge = el("span", { class: `badge state-${model.state}` }, model.state);
  const notes = [];
  if (UNDER_WAY.has(model.state)) notes.push(progressText(model));
  if (model.error) notes.push(model.error);
  return el("td", {}, badge, model.active ? el("span", { class: "badge custom" }, "active") : null,
    notes.map((note) => el("div", { class: "hint" }, note)));
}

function actions(model, active) {
  const name = short(model.id);
  const buttons = [];
  if (model.id !== "base") {
    buttons.push(el("button", { type: "button", class: "secondary small",
      "aria-label": `Details of ${name}`, onclick: () => showDetails(model.id) }, "Details"));
  }
  if (model.state === "ready" && !model.active) {
    const older = active && active.id !== "base" && (model.id === "base"
      || (model.created_at && active.created_at && model.created_at < active.created_at));
    const label = model.id === "base" ? "Back to the base model"
      : older ? "Roll back to this" : "Activate";
    buttons.push(el("button", { type: "button", class: "small",
      "aria-label": `${label}: ${name}`, onclick: (event) => activate(model, older, event) },
    label));
  }
  if (UNDER_WAY.has(model.state)) {
    buttons.push(el("button", { type: "button", class: "danger small",
      "aria-label": `Cancel ${name}`, onclick: () => cancel(model.id) }, "Cancel…"));
  } else if (model.id !== "base" && !model.active) {
    buttons.push(el("button", { type: "button", class: "danger small",
      "aria-label": `Delete ${name}`, onclick: (event) => remove(model, event) }, "Delete…"));
  }
  return el("td", {}, el("div", { class: "row" }, buttons));
}

function row(model, active) {
  const base = model.id === "base";
  return el("tr", { "data-id": model.id, class: model.active ? "current" : undefined,
    "aria-current": model.active ? "true" : undefined },
  el("th", { scope: "row" }, base ? "Base model" : el("code", {}, model.id.slice(0, 8)),
    base ? el("div", { class: "hint" }, "every shop's starting point") : null),
  stateCell(model), el("td", {}, model.created_by || ""), el("td", {}, when(model.created_at)),
  el("td", { class: "num" }, seconds(model.training_seconds)),
  el("td", { class: "num" }, size(model.size_bytes)), actions(model, active));
}

/** The active version was trained before a deploy changed the base every shop shares: the
 * shop's bot lacks it until the drafts train again (they may, unchanged: POST /models trains
 * them on the new base rather than naming that version). */
function showBaseNewer(active) {
  const notice = $("base-newer");
  notice.hidden = !(active && active.predates_base);
  notice.textContent = notice.hidden ? "" : `The active ${short(active.id)} was trained before `
    + "the base training data every shop shares last changed, so the shop's bot does not "
    + "have the current base yet. Training again includes it, even with unchanged drafts.";
}

/** The versions, newest first, the base model last; follows one under way. */
export async function loadModels({ page = modelsPage, quiet = false } = {}) {
  modelsPage = page;
  const status = $("models-status");
  try {
    const [answer, base] = await Promise.all([
      api("GET", "/models", { query: { page, page_size: PAGE } }), api("GET", "/models/base")]);
    shown = [...answer.items, base];
    const active = shown.find((m) => m.active) || null;
    showBaseNewer(active);
    const rows = shown.map((model) => row(model, active));
    $("models-table").tBodies[0].replaceChildren(...rows);
    tk.pager($("models-pager"), answer, (next) => loadModels({ page: next }));
    if (!quiet && !answer.total) {
      say(status, NO_VERSIONS);
    } else if (answer.total && status.textContent === NO_VERSIONS) {
      say(status, ""); // one was trained since
    }
    const underWay = answer.items.find((m) => UNDER_WAY.has(m.state));
    if (underWay && following !== underWay.id && tk.visible()) follow(underWay.id);
    if (!underWay && !following) $("train-job").hidden = true; // it ended while away
  } catch (error) {
    tk.failed(status, error);
  }
}

async function activate(model, older, event) {
  const name = short(model.id);
  const question = model.id === "base"
    ? "Go back to the base model? The shop's bot answers visitors without the shop's own "
      + "training within about a second."
    : `${older ? "Roll back to" : "Activate"} ${name}? The shop's bot answers visitors with it `
      + "within about a second; conversations in progress go on.";
  if (!window.confirm(question)) return;
  const button = event.currentTarget;
  button.disabled = true;
  const status = $("models-status");
  try {
    await api("POST", `/models/${model.id}/activate`);
    say(status, model.id === "base" ? "The shop's bot uses the base model now."
      : `${name} is active: the shop's bot uses it now.`, "ok");
    await loadModels({ quiet: true });
  } catch (error) {
    tk.failed(status, error);
    button.disabled = false;
  }
}

async function remove(model, event) {
  const name = short(model.id);
  if (!window.confirm(`Delete ${name}? Its model file is removed and it can no longer be `
    + "activated; this cannot be undone.")) return;
  const button = event.currentTarget;
  button.disabled = true;
  const status = $("models-status");
  try {
    await api("DELETE", `/models/${model.id}`);
    if ($("model-details").dataset.id === model.id) $("model-details").hidden = true;
    say(status, `Deleted ${name}.`, "ok");
    await loadModels({ quiet: true });
  } catch (error) {
    tk.failed(status, error);
    button.disabled = false;
  }
}

// -- a version's details ------------------------------------------------------------------------

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, value]) => value !== "" && value != null)
    .flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function table(caption, head, rows, empty) {
  if (!rows.length) return el("p", { class: "hint" }, empty);
  return el("div", { class: "scroll" }, el("table", { class: "evaluation" },
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, head.map(([text, num]) =>
      el("th", { scope: "col", class: num ? "num" : undefined }, text)))),
    el("tbody", {}, rows)));
}

const score = (value) => (typeof value === "number" ? value.toFixed(2) : "–");

function heldOut(evaluation, against) {
  const candidate = evaluation.heldout.candidate;
  const before = evaluation.heldout.against;
  const rows = Object.entries(candidate.intents).sort(([a], [b]) => a.localeCompare(b))
    .map(([intent, s]) => {
      const old = before.intents[intent];
      const few = s.support < FEW;
      return el("tr", { class: few ? "few" : undefined }, el("th", { scope: "row" }, intent,
        few ? el("div", { class: "hint" }, `${s.support} held-out example${
          s.support === 1 ? "" : "s"}: too few to judge these scores`) : null),
        el("td", { class: "num" }, score(s.precision)), el("td", { class: "num" }, score(s.recall)),
        el("td", { class: "num" }, score(s.f1)),
        el("td", { class: "num" }, old ? score(old.f1) : "–"),
        el("td", { class: "num" }, String(s.support)));
    });
  const few = Object.values(candidate.intents).filter((s) => s.support < FEW).length;
  const caveats = [];
  if (candidate.examples < FEW_HELD_OUT) {
    caveats.push(`Only ${candidate.examples} example${candidate.examples === 1 ? " was" : "s were"}`
      + " held out: these figures move a lot with each one.");
  }
  if (few) {
    caveats.push(`${few === 1 ? "One intent has" : `${few} intents have`} fewer than ${FEW} `
      + "held-out examples (marked): too few to judge, and each counts as much as any other in "
      + "macro F1, so a low score there can pull it down while the intent works. Try such an "
      + "intent in a conversation before judging the version.");
  }
  // Intents too small to hold one out: no row above, so say why rather than leave them out.
  const small = Object.entries(candidate.unscored || {})
    .map(([intent, n]) => `${intent} (${n} example${n === 1 ? "" : "s"})`);
  const unscored = small.length ? el("p", { class: "hint", id: "unscored-intents" },
    `Not scored: ${small.join(", ")}. An intent needs ${MIN_EXAMPLES} examples or more before `
      + "one is held out to score it; these are all trained on, so try them in a conversation "
      + "or add examples.") : null;
  return [el("h4", {}, "Intents on held-out examples"),
    el("p", { class: "hint" }, `Accuracy ${percent(candidate.accuracy)} (${against}: `
      + `${percent(before.accuracy)}), macro F1 ${score(candidate.macro_f1)} (${against}: `
      + `${score(before.macro_f1)}), ${candidate.examples} examples held out of training.`),
    caveats.length ? el("p", { class: "small-sample" }, caveats.join(" ")) : null,
    table("Precision, recall and F1 per intent", [["Intent"], ["Precision", 1], ["Recall", 1],
      ["F1", 1], [`F1 of ${against}`, 1], ["Examples", 1]], rows,
    `No intent has enough examples to be scored (${MIN_EXAMPLES} or more).`), unscored];
}

function storyTests(tests, against) {
  const c = tests.candidate;
  const a = tests.against;
  const rows = tests.changed.map((s) => el("tr",
    { class: s.after === "failed" ? "reached" : undefined },
    el("th", { scope: "row" }, s.story), el("td", {}, s.file),
    el("td", {}, `${s.before} → ${s.after}`)));
  return [el("h4", {}, "Test stories"),
    el("p", { class: "hint" }, `${c.passed} of ${c.total} pass (${against}: ${a.passed} of `
      + `${a.total}).`),
    table("Test stories whose outcome changed", [["Story"], ["File"], ["Outcome"]], rows,
      "No test story changed its outcome."),
    tests.failed.length ? el("p", {}, `Failing on this version: ${tests.failed.map((s) =>
      `${s.story} (${s.file})`).join(", ")}.`) : null];
}

function routing(routed, against) {
  const rows = routed.changes.map((change) => el("tr", {},
    el("td", {}, change.from), el("td", {}, change.to),
    el("td", { class: "num" }, String(change.count)),
    el("td", {}, el("ul", { class: "examples" }, change.examples.map((e) => el("li", {}, e))))));
  return [el("h4", {}, "The last 30 days' messages"),
    el("p", { class: "hint" }, `${routed.changed} of ${routed.messages} distinct visitor `
      + `messages would go to another intent than on ${against}.`),
    table("Messages routed differently", [["Intent before"], ["Intent now"], ["Messages", 1],
      ["For example"]], rows, "None would be routed differently.")];
}

function evaluationPart(model) {
  const evaluation = model.evaluation;
  if (!evaluation) {
    return el("p", { class: "hint" }, UNDER_WAY.has(model.state)
      ? "Tested and compared once trained." : "No evaluation.");
  }
  if (evaluation.error) return el("p", { class: "error" }, `Testing failed: ${evaluation.error}`);
  const against = evaluation.against ? short(evaluation.against) : "the base model";
  return el("div", {}, el("p", {}, `Compared with ${against}, the one in use when it was trained.`),
    heldOut(evaluation, against), storyTests(evaluation.tests, against),
    routing(evaluation.routing, against));
}

async function showDetails(id) {
  const section = $("model-details");
  const status = $("models-status");
  try {
    const model = await api("GET", `/models/${id}`);
    section.dataset.id = id;
    $("model-details-title").textContent = `Details of ${short(id)}`;
    $("model-details-body").replaceChildren(facts([
      ["State", `${model.state}${model.active ? " (active)" : ""}`],
      ["Started by", model.created_by], ["Started", when(model.created_at)],
      ["Finished", when(model.finished_at)], ["Training time", seconds(model.training_seconds)],
      ["Size", size(model.size_bytes)],
      [model.state === "ready" ? "Drafts trained" : "Drafts given", model.files.map((f) =>
        f.file).join(", ")],
      ["Fingerprint", model.fingerprint]]),
    evaluationPart(model));
    section.hidden = false;
    $("model-details-title").focus();
  } catch (error) {
    tk.failed(status, error);
  }
}

/** `shared`: training.js's pieces (visible, showProblems, failed, pager). */
export function wireModels(shared) {
  tk = shared;
  $("training-train").addEventListener("click", train);
  $("train-cancel").addEventListener("click", () => cancel(following));
}
