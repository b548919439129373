// The Settings tab: a form built from the API's own OpenAPI document (field types, choices,
// descriptions, which fields PATCH /settings accepts), so a new setting appears here without
// an edit of this file; opening hours have a form of their own (opening-hours.js).
//
// What is wrong goes under its field in the page's words, as the Channels tab does (forms.js):
// "Return window days must be 0 or more", never pydantic's "return_window_days: Input should be
// greater than or equal to 0" in the status line. What the page can tell before asking (an
// empty field that needs a value, opening hours that end before they start) it says without a
// request; the API's 422 is translated from its `loc` and `type`, with the bounds the document
// gives the field (or, for what the page has no words for, the API's own message after the
// field's label). What is wrong is shown together: a save the page refuses itself still
// shows the API's last refusals of values not changed since, and a marked setting is checked
// again as it is edited, its mark gone once it is fixed.

import { api, ApiError, el, humanize, say } from "./api.js";
import { clearErrors, showFieldErrors, showOn } from "./forms.js";
import { DAY_NAMES, hoursEditor } from "./opening-hours.js";
import { trackUnsaved } from "./unsaved.js";

const $ = (id) => document.getElementById(id);
const SUMMARY = "Not saved: see the marked fields.";

let openapi = null;
// `refused`: the API's last 422 per setting, {value sent (JSON), words}: shown again with
// the page's own checks until that setting is changed.
const shown = { values: {}, fields: [], hours: null, writable: {}, refused: {} };

async function apiDocument() {
  if (!openapi) {
    const response = await fetch("/openapi.json", { credentials: "same-origin" });
    openapi = response.ok ? await response.json() : {};
  }
  return openapi;
}

function resolve(doc, schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 10) {
    schema = schema.$ref.replace(/^#\//, "").split("/").reduce((at, key) => (at || {})[key], doc);
  }
  return schema || {};
}

function properties(doc, operation, where) {
  const content = where === "body"
    ? operation && operation.requestBody && operation.requestBody.content
    : operation && operation.responses && (operation.responses["200"] || {}).content;
  const schema = resolve(doc, content && content["application/json"]
    && content["application/json"].schema);
  return schema.properties || null;
}

/** The schema's options ({…} or anyOf/oneOf [{…}, {type: null}]), resolved. */
function optionsOf(doc, schema) {
  schema = resolve(doc, schema);
  return (schema.anyOf || schema.oneOf || [schema]).map((o) => resolve(doc, o));
}

/** "number" | "integer" | "boolean" | "string" | "json", with choices for an enum. */
function fieldKind(doc, schema, value) {
  schema = resolve(doc, schema);
  const options = optionsOf(doc, schema);
  const types = [];
  let choices = schema.enum || null;
  let nullable = false;
  for (const option of options) {
    const type = option.type || (option.enum ? "string" : option.properties ? "object" : null);
    if (type === "null") nullable = true;
    else if (type) types.push(type);
    if (option.enum) choices = option.enum.filter((c) => c !== null);
    if (option.const !== undefined) choices = [...(choices || []), option.const];
  }
  const description = schema.description || options.map((o) => o.description).find(Boolean)
    || "";
  // For a JSON field, an example built from its schema's own examples.
  let example = null;
  for (const option of options) {
    for (const [key, prop] of Object.entries(option.properties || {})) {
      if (prop.examples && prop.examples.length) (example ||= {})[key] = prop.examples[0];
    }
  }
  let kind = types[0];
  if (!kind) {
    kind = typeof value === "boolean" ? "boolean" : typeof value === "number" ? "number"
      : value !== null && typeof value === "object" ? "json" : "string";
  }
  if (kind === "object" || kind === "array") kind = "json";
  return { kind, choices, nullable, description, example };
}

/** The time zones the API accepts (the opening hours' schema enum), or null. */
function zonesIn(doc, schema) {
  for (const option of optionsOf(doc, schema)) {
    const zone = option.properties && resolve(doc, option.properties.timezone);
    if (zone && zone.enum) return zone.enum;
  }
  return null;
}

/** A setting's label, input, hint and error line; `.field` is forms.js's shape for it. */
function settingInput(name, value, spec, editable) {
  const id = `setting-${name}`;
  const common = { id, name, disabled: !editable, "data-kind": spec.kind };
  let input;
  if (spec.choices && spec.choices.length) {
    input = el("select", common,
      spec.nullable ? el("option", { value: "" }, "(none)") : null,
      spec.choices.map((choice) => el("option", { value: String(choice) }, String(choice))));
    input.value = value === null || value === undefined ? "" : String(value);
  } else if (spec.kind === "boolean") {
    input = el("input", { ...common, type: "checkbox" });
    input.checked = Boolean(value);
  } else if (spec.kind === "json") {
    input = el("textarea", { ...common, class: "json", rows: 6, spellcheck: "false" });
    input.value = value === null || value === undefined ? "" : JSON.stringify(value, null, 2);
  } else {
    const type = spec.kind === "integer" || spec.kind === "number" ? "number"
      : /email/.test(name) ? "email" : "text";
    input = el("input", { ...common, type, step: spec.kind === "number" ? "any" : undefined });
    input.value = value === null || value === undefined ? "" : String(value);
  }
  input.dataset.nullable = String(spec.nullable);
  if (spec.kind === "json" && spec.example) {
    input.placeholder = `e.g. ${JSON.stringify(spec.example)}`;
  }
  const hint = spec.description ? el("p", { class: "hint field-hint", id: `${id}-hint` },
    spec.description) : null;
  const error = el("p", { class: "field-error error", id: `${id}-error`, hidden: true });
  input.setAttribute("aria-describedby", [hint && hint.id, error.id].filter(Boolean).join(" "));
  const wide = spec.kind === "json" || name === "greeting";
  const node = el("div", { class: wide ? "wide" : undefined },
    el("label", { for: id }, humanize(name)), input, hint, error);
  node.field = { input, error, spec: { name, path: name } };
  node.read = () => readInput(input);
  node.name = name;
  return node;
}

/** {value} or {problem} in the page's words. */
function readInput(input) {
  const kind = input.dataset.kind;
  const nullable = input.dataset.nullable === "true";
  const label = humanize(input.name);
  if (input.type === "checkbox") return { value: input.checked };
  const raw = input.value.trim();
  if (raw === "" && (nullable || kind !== "string")) {
    return nullable ? { value: null } : { problem: `${label} needs a value` };
  }
  if (kind === "integer" || kind === "number") {
    const number = Number(raw);
    if (input.validity && input.validity.badInput) return { problem: `${label} must be a number` };
    if (!Number.isFinite(number)) return { problem: `${label} must be a number` };
    return { value: number };
  }
  if (kind === "json") {
    try {
      return { value: JSON.parse(raw) };
    } catch {
      return { problem: `${label} is not valid JSON` };
    }
  }
  return { value: input.value };
}

// ---------------------------------------------------------------------------------------------
// The API's 422 in the page's words

/** A bound of the field's schema (minimum, maximum, maxLength), else the number that ends
 * pydantic's message ("... greater than or equal to 0"). */
function bound(name, key, msg) {
  for (const option of optionsOf(openapi || {}, shown.writable[name] || {})) {
    if (option[key] !== undefined) return option[key];
  }
  const found = /(-?\d+(?:\.\d+)?)\D*$/.exec(msg || "");
  return found ? found[1] : "";
}

function fieldWords(name, label, type, msg) {
  switch (type) {
    case "greater_than_equal": return `${label} must be ${bound(name, "minimum", msg)} or more`;
    case "less_than_equal": return `${label} must be ${bound(name, "maximum", msg)} or less`;
    case "greater_than": return `${label} must be more than ${bound(name, "exclusiveMinimum", msg)}`;
    case "less_than": return `${label} must be less than ${bound(name, "exclusiveMaximum", msg)}`;
    case "int_parsing": case "int_type": case "int_from_float":
      return `${label} must be a whole number`;
    case "float_parsing": case "float_type": return `${label} must be a number`;
    case "bool_parsing": case "bool_type": return `${label} must be yes or no`;
    case "string_too_long":
      return `${label} is too long (at most ${bound(name, "maxLength", msg)} characters)`;
    case "string_too_short": case "missing": return `${label} needs a value`;
    case "string_pattern_mismatch":
      return name === "llm_model" ? `${label} must be a Claude model's id, as claude-…`
        : `${label} is not in the expected form`;
    case "literal_error": case "enum": return `${label} must be one of the choices offered`;
    case "extra_forbidden": return `${label} cannot be changed here`;
    default:
      // Our validators' words ("must not be blank", "is not an email address") follow it.
      return /^[a-z]/.test(msg || "") ? `${label} ${msg}` : `${label}: ${msg}`;
  }
}

/** Opening hours' refusals, by the day or the time zone they are about. */
function hoursWords(loc, type, msg) {
  const [, part, day] = loc;
  if (part === "timezone") return [loc, "Time zone: choose one from the list"];
  if (part === "days" && day !== undefined && DAY_NAMES[day]) {
    const words = loc.length > 3 && type === "string_pattern_mismatch"
      ? "times are hours and minutes, as 09:00"
      : type === "too_long" ? "at most 8 spans of hours" : msg;
    return [loc.slice(0, 3), `${DAY_NAMES[day]}: ${words}`];
  }
  const ours = /^(mon|tue|wed|thu|fri|sat|sun): (.*)$/.exec(msg || "");
  if (part === "days" && ours) { // the days' own check: "mon: 17:00-09:00 ends before it starts"
    const words = ours[2] === "intervals overlap" ? "these hours overlap"
      : ours[2].replace(/(\d\d:\d\d)-(\d\d:\d\d)/, "$1–$2");
    return [["opening_hours", "days", ours[1]], `${DAY_NAMES[ours[1]]}: ${words}`];
  }
  return [["opening_hours"], `Opening hours: ${msg}`];
}

/** The 422's detail as [{loc, msg}] in the page's words (strings: for the status line). */
export function inPageWords(detail) {
  const items = Array.isArray(detail) ? detail : [detail];
  const words = [];
  for (const item of items) {
    if (!item || typeof item !== "object") {
      words.push(String(item));
      continue;
    }
    const loc = (Array.isArray(item.loc) ? item.loc : []).filter((p) => p !== "body")
      .map(String);
    const cleared = /^([a-z_, ]+) cannot be null$/.exec(item.msg || "");
    if (!loc.length && cleared) { // the model's own check names the fields inside
      for (const name of cleared[1].split(", ")) {
        words.push({ loc: [name], msg: `${humanize(name)} needs a value` });
      }
    } else if (loc[0] === "opening_hours" && loc.length > 1) {
      const [at, msg] = hoursWords(loc, item.type, item.msg);
      words.push({ loc: at, msg });
    } else if (loc.length) {
      words.push({ loc: [loc[0]], msg: fieldWords(loc[0], humanize(loc[0]), item.type,
        item.msg) });
    } else {
      words.push(item.msg || JSON.stringify(item));
    }
  }
  // What names no field on this form goes to the status line as words, not a path.
  const paths = new Set(shown.fields.map((f) => f.spec.path));
  return words.map((w) => (typeof w === "object" && !paths.has(w.loc.join("."))
    && !paths.has(w.loc[0]) ? w.msg : w));
}

// ---------------------------------------------------------------------------------------------
// Loading and saving

async function loadSettings(failed) {
  const status = $("settings-status");
  say(status, "Loading…");
  try {
    const [doc, current] = await Promise.all([apiDocument(), api("GET", "/settings")]);
    const path = (doc.paths || {})["/api/v1/settings"] || {};
    const shape = properties(doc, path.get, "response") || {};
    const writable = properties(doc, path.patch, "body");
    const box = $("settings-fields");
    const nodes = [];
    for (const [name, value] of Object.entries(current)) {
      const editable = !writable || name in writable;
      if (name === "opening_hours") { // its own words: the API's describe the JSON
        nodes.push(hoursEditor(value, zonesIn(doc, shape[name] || {}), editable));
      } else {
        nodes.push(settingInput(name, value, fieldKind(doc, shape[name] || {}, value),
          editable));
      }
    }
    box.replaceChildren(...nodes);
    box.oninput = recheck; // a property, not a listener: each load of the tab sets it again
    box.onchange = recheck;
    shown.values = current;
    shown.refused = {};
    shown.writable = writable || {};
    shown.nodes = nodes.filter((n) => !writable || n.name in writable);
    shown.fields = nodes.flatMap((n) => n.fields || [n.field]);
    say(status, "");
    await noteGreetingOverride();
  } catch (error) {
    failed(status, error);
  }
}

/** The greeting is utter_greet's default: a text changed in the Texts tab wins over it, so
 * the field says so rather than saving a greeting the bot never says. */
async function noteGreetingOverride() {
  const hint = $("setting-greeting-hint");
  if (!hint) return;
  let greet = null;
  try {
    greet = await api("GET", "/responses/utter_greet");
  } catch {
    return; // not readable for this role: nothing to say
  }
  if (greet && greet.override) {
    hint.append(el("strong", { class: "override-note" }, " The bot says the Texts tab's "
      + "utter_greet instead, which was changed there: restore its default to use this."));
  }
}

function clearAll(status) {
  clearErrors(shown.fields, status);
  for (const marked of $("settings-fields").querySelectorAll("[aria-invalid]")) {
    marked.removeAttribute("aria-invalid"); // a day's time input marked before it was closed
  }
}

/** The setting's value as a save would send it (JSON), or null when the page refuses it. */
function sentForm(node) {
  const read = node.read();
  return read.problem || read.problems ? null : JSON.stringify(read.value ?? null);
}

/** What is wrong with one setting now: the page's own check, else the API's last refusal of
 * the value it still has. As [{loc, msg}] (the API's already in the page's words). */
function problemsOf(node) {
  const read = node.read();
  if (read.problem) return [{ loc: [node.name], msg: read.problem }];
  if (read.problems) return read.problems;
  const refused = shown.refused[node.name];
  return refused && refused.value === sentForm(node) ? refused.words : [];
}

/** The API's 422 (in the page's words) kept per setting, with the value it refused. */
function rememberRefused(words, changes) {
  shown.refused = {};
  for (const word of words) {
    if (typeof word !== "object" || !(word.loc[0] in changes)) continue;
    const name = word.loc[0];
    const kept = shown.refused[name] || { value: JSON.stringify(changes[name] ?? null),
      words: [] };
    kept.words.push(word);
    shown.refused[name] = kept;
  }
}

/** As the owner edits a setting that is marked: its marks again, gone once it is fixed (the
 * page's check passes and the value the API refused was changed); the status line with them. */
function recheck(event) {
  const node = (shown.nodes || []).find((n) => n.contains(event.target));
  if (!node) return;
  const fields = node.fields || [node.field];
  if (fields.every((f) => f.error.hidden)) return; // nothing shown here: no nagging as one types
  for (const f of fields) {
    f.error.hidden = true;
    f.error.textContent = "";
    if (f.input) f.input.removeAttribute("aria-invalid");
  }
  for (const problem of problemsOf(node)) {
    const path = problem.loc.join(".");
    const target = fields.find((f) => f.spec.path === path)
      || fields.find((f) => path.startsWith(`${f.spec.path}.`)) || fields[0];
    showOn(target, problem.msg);
  }
  if (shown.fields.every((f) => f.error.hidden)) say($("settings-status"), "");
}

/** The fields that changed, or the problems the page finds itself (as a 422's detail). */
function changed() {
  const changes = {};
  const problems = [];
  for (const node of shown.nodes || []) {
    const read = node.read();
    if (read.problem) problems.push({ loc: [node.name], msg: read.problem });
    else if (read.problems) problems.push(...read.problems);
    else if (JSON.stringify(read.value) !== JSON.stringify(shown.values[node.name] ?? null)) {
      changes[node.name] = read.value;
    }
  }
  return { changes, problems };
}

/** What the API refused, as inPageWords gives it: a 422's detail, or the 409 of an order
 * backend without its credentials, which is about the Order backend setting (under it, and
 * gone once another backend is chosen; in the status line it stayed after that). Else null. */
function refusalOf(code, body) {
  if (code === 422) return inPageWords(body.detail);
  if (code === 409 && body.backend && "order_backend" in shown.writable) {
    return [{ loc: ["order_backend"], msg: String(body.detail) }];
  }
  return null;
}

async function save(event, failed) {
  event.preventDefault();
  const status = $("settings-status");
  clearAll(status);
  const { changes, problems } = changed();
  if (problems.length) {
    // With the API's refusals of values not changed since: everything wrong at once.
    const refused = (shown.nodes || []).flatMap((node) => {
      const kept = shown.refused[node.name];
      return kept && kept.value === sentForm(node) ? kept.words : [];
    });
    showFieldErrors(shown.fields, status, [...problems, ...refused], "", SUMMARY);
    return;
  }
  if (!Object.keys(changes).length) {
    say(status, "Nothing changed.");
    return;
  }
  say(status, "Saving…");
  try {
    const saved = await api("PATCH", "/settings", { json: changes });
    say(status, `Saved: ${Object.keys(changes).map(humanize).join(", ")}.`, "ok");
    shown.values = saved && typeof saved === "object" ? saved : { ...shown.values, ...changes };
    shown.refused = {};
  } catch (error) {
    const refused = error instanceof ApiError && error.body && error.body.detail
      ? refusalOf(error.status, error.body) : null;
    if (refused) {
      rememberRefused(refused, changes);
      showFieldErrors(shown.fields, status, refused, "", SUMMARY);
    } else {
      failed(status, error);
    }
  }
}

/** `kit`: app.js's shared pieces (failed, loaders). */
export function wireSettings(kit) {
  kit.loaders.settings = () => loadSettings(kit.failed);
  trackUnsaved(() => {
    const { changes, problems } = changed();
    const fields = [...Object.keys(changes), ...problems.map((p) => p.loc[0])];
    return fields.length ? [`settings (${[...new Set(fields)].map(humanize).join(", ")})`] : [];
  });
  $("settings-form").addEventListener("submit", (event) => save(event, kit.failed));
}
