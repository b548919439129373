// What the owner page's own forms share: a labelled field with a place for its error, the
// API's 422 spread over the fields it names, and a secret shown once with a copy button.
//
// A 422's detail is either pydantic's [{loc, msg}] (loc names the field) or a list of our
// checks' sentences that name the field inside ("twilio.account_sid is the Account SID…");
// each goes next to the field it names, and what names no field goes to the form's status.

import { el, say } from "./api.js";

let fieldCount = 0;

/** A labelled input with a hint and an error line both tied to it by aria-describedby.
 * `spec`: {name, label, type ("text", "password", "number", "checkbox", "select", "list"),
 * options, hint, placeholder, autocomplete}. Returns the wrapper; the input is `.input`. */
export function field(spec) {
  fieldCount += 1;
  const id = `f${fieldCount}-${spec.name.replace(/[^a-z0-9]+/gi, "-")}`;
  const hint = spec.hint ? el("p", { class: "hint field-hint", id: `${id}-hint` }, spec.hint) : null;
  const error = el("p", { class: "field-error error", id: `${id}-error`, hidden: true });
  const described = [hint && hint.id, error.id].filter(Boolean).join(" ");
  let input;
  if (spec.type === "select") {
    input = el("select", { id, name: spec.name, "aria-describedby": described },
      spec.options.map(([value, text]) => el("option", { value }, text)));
  } else if (spec.type === "list") {
    input = el("textarea", { id, name: spec.name, rows: 2, "aria-describedby": described,
      placeholder: spec.placeholder, spellcheck: "false" });
  } else {
    input = el("input", { id, name: spec.name, type: spec.type || "text",
      "aria-describedby": described, placeholder: spec.placeholder,
      autocomplete: spec.autocomplete || (spec.type === "password" ? "new-password" : "off"),
      spellcheck: "false" });
  }
  const label = el("label", { for: id }, spec.label);
  const wrap = spec.type === "checkbox"
    ? el("div", { class: "field check" }, input, label, hint, error)
    : el("div", { class: "field" }, label, input, hint, error);
  wrap.input = input;
  wrap.error = error;
  wrap.spec = spec;
  return wrap;
}

/** Clears every field's error and the status line of a form built with `field`. */
export function clearErrors(fields, status) {
  for (const f of fields) {
    f.error.hidden = true;
    f.error.textContent = "";
    f.input.removeAttribute("aria-invalid");
  }
  if (status) say(status, "");
}

/** Marks one field (from `field`, or any {input, error}) with `message`, after what it
 * says already; nothing moves the focus (for a check as the owner types). */
export function showOn(f, message) {
  f.error.textContent = f.error.textContent ? `${f.error.textContent} ${message}` : message;
  f.error.hidden = false;
  f.input.setAttribute("aria-invalid", "true");
}

/** The detail's messages as [[path, message]]: path is a pydantic loc joined with "." (or
 * null for a sentence of ours, which names its field inside). */
function messagesOf(detail) {
  const list = Array.isArray(detail) ? detail : [detail];
  return list.map((item) => {
    if (item && typeof item === "object") {
      const loc = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body") : [];
      return [loc.join("."), item.msg || JSON.stringify(item)];
    }
    return [null, String(item)];
  });
}

/** Puts a 422's messages next to the fields they name (`fields`: from `field`, whose
 * spec.path is the name the API uses, e.g. "smtp.host"; `section` is what our checks put
 * before it, e.g. "email"); the rest goes to `status`. Moves focus to the form's first field
 * in error. Returns how many messages found a field. `summary`: what `status` says when every
 * message found its field. */
export function showFieldErrors(fields, status, detail, section = "",
  summary = "Not saved: see the marked fields.") {
  const unplaced = [];
  let placed = 0;
  for (const [loc, message] of messagesOf(detail)) {
    const target = loc !== null ? fieldOfLoc(fields, loc) : fieldNamedIn(fields, message, section);
    if (target) {
      showOn(target, message);
      placed += 1;
    } else {
      unplaced.push(loc ? `${loc}: ${message}` : message);
    }
  }
  if (status) {
    say(status, unplaced.length ? unplaced.join(" ") : summary, "error");
  }
  const first = fields.find((f) => !f.error.hidden); // in the form's order, as a person reads
  if (first) first.input.focus();
  return placed;
}

function fieldOfLoc(fields, loc) {
  // The longest field path that ends the location ("shopify.credentials.shop_url" ends with
  // "shop_url"; "events.0" names "events").
  const parts = loc.split(".");
  for (let start = 0; start < parts.length; start += 1) {
    for (let end = parts.length; end > start; end -= 1) {
      const path = parts.slice(start, end).join(".");
      const found = fields.find((f) => (f.spec.path || f.spec.name) === path);
      if (found) return found;
    }
  }
  return null;
}

const NAME = "[A-Za-z0-9_.]";

function fieldNamedIn(fields, message, section) {
  // "twilio.account_sid is…", "email via mailgun needs … (email.mailgun_signing_key)",
  // "twilio needs sms_numbers or whatsapp_numbers", "email.smtp needs a host".
  let best = null;
  let at = Infinity;
  for (const f of fields) {
    const path = f.spec.path || f.spec.name;
    for (const name of [section ? `${section}.${path}` : path, path]) {
      const match = new RegExp(`(^|[^A-Za-z0-9_.])${name.replace(/\./g, "\\.")}(?!${NAME})`)
        .exec(message);
      if (match && match.index < at) {
        best = f;
        at = match.index;
      }
    }
  }
  if (best || !section) return best;
  // A group named without its field ("email.smtp needs a host"): its first field.
  const group = new RegExp(`${section}\\.(${NAME}+?)(?![A-Za-z0-9_.])`).exec(message);
  if (group) return fields.find((f) => (f.spec.path || "").startsWith(`${group[1]}.`)) || null;
  return null;
}

/** A secret the API answers once: a read-only field, a copy button and a warning. */
export function shownOnce(labelText, secret, warning) {
  const box = copyable(labelText, secret, warning);
  box.classList.add("once");
  return box;
}

/** A value to paste elsewhere (a key, a script tag): a read-only field and a copy button. */
export function copyable(labelText, secret, hint, name = "secret") {
  const box = field({ name, label: labelText, hint });
  box.input.readOnly = true;
  box.input.value = secret;
  const status = el("span", { class: "message", role: "status", "aria-live": "polite" });
  const copy = el("button", { type: "button", class: "small" }, "Copy");
  copy.addEventListener("click", async () => {
    box.input.select();
    try {
      await navigator.clipboard.writeText(secret);
    } catch {
      // No clipboard permission (or not a secure origin): the text is selected, and the
      // browser's own copy command takes a selection.
      document.execCommand("copy");
    }
    say(status, "Copied.", "ok");
  });
  box.append(el("div", { class: "row" }, copy, status));
  return box;
}
