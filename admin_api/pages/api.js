// What every page shares: calls to this origin's /api/v1 and building DOM from API data.
//
// The session cookie is HttpOnly: this code never sees it. Unsafe calls (anything but GET and
// HEAD) carry the CSRF token the login answered, as X-CSRF-Token; it is kept in
// sessionStorage so a reload of this tab keeps working and a new tab logs in again.
//
// Text from the API only ever reaches the page through textContent or attribute values
// (el() below), never through innerHTML: a shop's data cannot become markup or script.

const CSRF_KEY = "switchboard.csrf";
const SAFE = new Set(["GET", "HEAD"]);

export class ApiError extends Error {
  constructor(status, detail, body = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.body = body; // the whole JSON answer (a 409 on claim names who has it)
  }
}

export function setCsrf(token) {
  if (token) sessionStorage.setItem(CSRF_KEY, token);
  else sessionStorage.removeItem(CSRF_KEY);
}

export function detailText(body, status) {
  const detail = body && typeof body === "object" && "detail" in body ? body.detail : body;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail)) {
    // Validation errors: [{loc: [...], msg: "..."}, ...]
    return detail.map((e) => {
      const where = Array.isArray(e.loc) ? e.loc.filter((p) => p !== "body").join(".") : "";
      return (where ? `${where}: ` : "") + (e.msg || JSON.stringify(e));
    }).join("; ");
  }
  if (detail != null) return JSON.stringify(detail);
  return `request failed (${status})`;
}

/** Calls `method /api/v1{path}`; resolves with the JSON answer (null for 204), throws ApiError. */
export async function api(method, path, { json, form, query } = {}) {
  const url = new URL(`/api/v1${path}`, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form; // the browser sets multipart/form-data with its boundary
  }
  const csrf = sessionStorage.getItem(CSRF_KEY);
  if (!SAFE.has(method) && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  let data = null;
  const text = response.status === 204 ? "" : await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) throw new ApiError(response.status, detailText(data, response.status), data);
  return data;
}

/** el("a", {href: x, class: "y"}, "text", child, ...): strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = tag === "svg" || attrs.svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "svg" || value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  return el(tag, { ...attrs, svg: true }, ...children);
}

/** A short, readable date-time in the browser's locale ("" for nothing). */
export function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

const ACRONYMS = { llm: "LLM", url: "URL", id: "ID" };

export function humanize(name) {
  const words = String(name).split("_").map((w) => ACRONYMS[w] || w).join(" ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Shows a message in a status or alert element (textContent: never markup). */
export function say(node, message, kind = "") {
  node.textContent = message;
  node.classList.toggle("error", kind === "error");
  node.classList.toggle("ok", kind === "ok");
}
