// The Settings tab's opening hours: a time zone (a list of the IANA zones this browser knows
// and the API accepts) and, per weekday, "Closed" or one or more spans from–to, read into the
// API's shape {"timezone": "Europe/Berlin", "days": {"mon": [["09:00", "17:00"]], ...}} (a day
// left out is closed). Not set at all (null): the bot treats the team as always there
// (tenants/hours.py), so that is a choice of its own, not seven closed days.
//
// Times are <input type="time"> (the browser's own clock picker, always "HH:MM" as a value);
// such an input has no 24:00, so a span that ends at 00:00 ends at midnight ("24:00").

import { el } from "./api.js";

export const DAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"],
  ["thu", "Thursday"], ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];
export const DAY_NAMES = Object.fromEntries(DAYS);
const NEW_SPAN = ["09:00", "17:00"];
const MAX_SPANS = 8; // the API's limit per day

const minutes = (clock) => Number(clock.slice(0, 2)) * 60 + Number(clock.slice(3, 5));

/** The zones to offer: the browser's, narrowed to those the API accepts (`allowed`: its
 * schema's enum, when it has one), with `current` kept even when the browser lacks it. */
export function zoneChoices(allowed, current) {
  let known = [];
  try {
    known = Intl.supportedValuesOf("timeZone");
  } catch {
    known = allowed ? [...allowed] : []; // a browser without the list: the API's
  }
  const accepted = allowed ? new Set(allowed) : null;
  const zones = new Set(known.filter((zone) => !accepted || accepted.has(zone)));
  if (!accepted || accepted.has("UTC")) zones.add("UTC"); // Chromium's list leaves it out
  if (current) zones.add(current);
  return [...zones].sort();
}

function browserZone(choices) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return choices.includes(zone) ? zone : choices.includes("UTC") ? "UTC" : choices[0];
}

/** A span added after the day's last one: from its end, for an hour (a day that runs to
 * midnight gets empty times to fill in; the same hours again would only overlap). */
function nextSpan(list) {
  const last = list.lastElementChild;
  if (!last) return NEW_SPAN;
  const end = last.querySelector(".to").value;
  if (!end || end === "00:00" || minutes(end) >= 23 * 60) return ["", ""];
  const next = minutes(end) + 60;
  const two = (n) => String(n).padStart(2, "0");
  return [end, `${two(Math.floor(next / 60))}:${two(next % 60)}`];
}

let made = 0;

function errorLine(id) {
  return el("p", { class: "field-error error", id, hidden: true });
}

/** A field-like object for forms.js's showFieldErrors: {input, error, spec: {path}}. */
function asField(path, input, error) {
  return { input, error, spec: { name: path, path } };
}

function spanRow(day, span, onRemove) {
  const [from, to] = span;
  const start = el("input", { type: "time", class: "from", "aria-label": `${DAY_NAMES[day]} from` });
  const end = el("input", { type: "time", class: "to", "aria-label": `${DAY_NAMES[day]} to` });
  start.value = from;
  end.value = to === "24:00" ? "00:00" : to;
  const remove = el("button", { type: "button", class: "secondary small",
    "aria-label": `Remove these ${DAY_NAMES[day]} hours` }, "Remove");
  const row = el("div", { class: "span row" }, start, el("span", {}, "to"), end, remove);
  remove.addEventListener("click", () => onRemove(row));
  return row;
}

/** One weekday: "Closed", its spans and "Add hours", and a line for what is wrong with it. */
function dayEditor(day, spans, editable) {
  made += 1;
  const id = `hours-${made}-${day}`;
  const closed = el("input", { type: "checkbox", id: `${id}-closed`, class: "closed",
    "aria-describedby": `${id}-error` });
  const list = el("div", { class: "spans" });
  const add = el("button", { type: "button", class: "secondary small" }, "Add hours");
  const error = errorLine(`${id}-error`);
  const box = el("fieldset", { class: "day", "data-day": day },
    el("legend", {}, DAY_NAMES[day]),
    el("div", { class: "row" }, closed, el("label", { for: closed.id }, "Closed")),
    list, add, error);
  const refresh = () => {
    list.hidden = closed.checked;
    add.hidden = closed.checked || list.children.length >= MAX_SPANS;
  };
  const append = (span) => {
    list.append(spanRow(day, span, (row) => {
      row.remove();
      if (!list.children.length) closed.checked = true;
      refresh();
    }));
    refresh();
  };
  closed.checked = !spans.length;
  spans.forEach(append);
  closed.addEventListener("change", () => {
    if (!closed.checked && !list.children.length) append(NEW_SPAN);
    refresh();
  });
  add.addEventListener("click", () => {
    append(nextSpan(list));
    list.lastElementChild.querySelector("input").focus();
  });
  refresh();
  box.disabled = !editable;
  // What is wrong with a day is about its times: the first of them is marked and focused.
  box.field = { error, spec: { name: day, path: `opening_hours.days.${day}` },
    get input() { return (!closed.checked && list.querySelector("input")) || closed; } };
  /** The day's spans as the API takes them, or a sentence saying what is wrong. */
  box.read = () => {
    if (closed.checked) return { spans: [] };
    const read = [];
    for (const row of list.children) {
      const [from, to] = [row.querySelector(".from").value, row.querySelector(".to").value];
      if (!from || !to) return { problem: `${DAY_NAMES[day]}: give both times (from and to)` };
      const end = to === "00:00" ? "24:00" : to;
      if (minutes(end) <= minutes(from)) {
        return { problem: `${DAY_NAMES[day]}: ${from}–${to} ends before it starts` };
      }
      read.push([from, end]);
    }
    read.sort((a, b) => minutes(a[0]) - minutes(b[0]));
    for (let n = 1; n < read.length; n += 1) {
      if (minutes(read[n][0]) < minutes(read[n - 1][1])) {
        return { problem: `${DAY_NAMES[day]}: ${read[n - 1].join("–")} and `
          + `${read[n].join("–")} overlap` };
      }
    }
    return { spans: read };
  };
  return box;
}

/** The editor for `value` (the API's opening hours or null). Returns its node with
 * `fields` (for showFieldErrors, in the page's order), `read()` → {value} or {problems:
 * [{loc, msg}]} and `name` "opening_hours". */
export function hoursEditor(value, allowedZones, editable) {
  made += 1;
  const id = `hours-${made}`;
  const set = el("input", { type: "checkbox", id: `${id}-set`, name: "opening_hours",
    "aria-describedby": `${id}-hint ${id}-error` });
  set.checked = Boolean(value);
  set.disabled = !editable;
  const choices = zoneChoices(allowedZones, value && value.timezone);
  const zone = el("select", { id: `${id}-zone`, "aria-describedby": `${id}-zone-error` },
    choices.map((name) => el("option", { value: name }, name.replaceAll("_", " "))));
  zone.value = value ? value.timezone : browserZone(choices);
  zone.disabled = !editable;
  const zoneError = errorLine(`${id}-zone-error`);
  const days = DAYS.map(([day]) => dayEditor(day, (value && value.days && value.days[day]) || [],
    editable));
  const error = errorLine(`${id}-error`);
  const form = el("div", { class: "hours-form" },
    el("div", { class: "field" }, el("label", { for: zone.id }, "Time zone"), zone, zoneError),
    el("div", { class: "days" }, days));
  const node = el("div", { class: "wide hours" },
    el("div", { class: "field check" }, set, el("label", { for: set.id },
      "Opening hours: people answer at set times"),
    el("p", { class: "hint field-hint", id: `${id}-hint` },
      "When people answer handoffs; outside these hours the bot tells the visitor when the "
      + "team is back. Not set: the bot counts on people being there at any time. Times are "
      + "in the shop's time zone; hours that end at 00:00 end at midnight."), error),
    form);
  const show = () => { form.hidden = !set.checked; };
  set.addEventListener("change", show);
  show();
  node.name = "opening_hours";
  node.fields = [asField("opening_hours", set, error),
    asField("opening_hours.timezone", zone, zoneError), ...days.map((d) => d.field)];
  node.read = () => {
    if (!set.checked) return { value: null };
    const problems = [];
    const open = {};
    for (const [n, [day]] of DAYS.entries()) {
      const read = days[n].read();
      if (read.problem) problems.push({ loc: ["opening_hours", "days", day], msg: read.problem });
      else if (read.spans.length) open[day] = read.spans;
    }
    return problems.length ? { problems } : { value: { timezone: zone.value, days: open } };
  };
  return node;
}
