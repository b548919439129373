// Logging in and out, the same on every page that needs a session (the owner page, the inbox).
//
// The page's login form has the ids login-form, login-email, login-password and login-error;
// what a page does once in (or out) is its own, passed as `entered`.

import { api, ApiError, say, setCsrf } from "./api.js";

const $ = (id) => document.getElementById(id);

/** The login form's submit handler: POST /session, then `entered(session)` on success. */
export async function logIn(event, entered) {
  event.preventDefault();
  const button = event.submitter || $("login-form").querySelector("button");
  const email = $("login-email").value.trim();
  const password = $("login-password").value;
  if (!email || !password) {
    say($("login-error"), "Enter your email and password.", "error");
    return;
  }
  button.disabled = true;
  say($("login-error"), "");
  try {
    const session = await api("POST", "/session", { json: { email, password } });
    $("login-password").value = "";
    entered(session);
  } catch (error) {
    const message = error instanceof ApiError && error.status === 429
      ? `Too many attempts: ${error.detail}` : (error.detail || "Login failed.");
    say($("login-error"), message, "error");
    $("login-password").select();
  } finally {
    button.disabled = false;
  }
}

/** Ends the session on the server (if it is still there) and forgets its CSRF token. */
export async function logOut() {
  try {
    await api("DELETE", "/session");
  } catch {
    // Already gone on the server: the page logs out all the same.
  }
  setCsrf(null);
}
