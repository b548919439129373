// Logging in and out, the same on every page that needs a session (the owner page, the inbox).
//
// The page's login form has the ids login-form, login-email, login-password and login-error;
// what a page does once in (or out) is its own, passed as `entered`. A page whose login form
// has a "Forgot your password?" link (forgot-link, forgot-form, forgot-email, forgot-status)
// gets it wired here: the link mailed goes to /reset (reset.js).

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

/** Asks for a reset link. The answer is the same whether or not the email has an account. */
async function askForResetLink(event) {
  event.preventDefault();
  const status = $("forgot-status");
  const button = event.submitter || $("forgot-form").querySelector("button");
  const email = $("forgot-email").value.trim();
  if (!email) {
    say(status, "Enter your account's email.", "error");
    return;
  }
  button.disabled = true;
  try {
    const answer = await api("POST", "/password/forgot", { json: { email } });
    say(status, answer.detail, "ok");
  } catch (error) {
    const message = error instanceof ApiError && error.status === 429
      ? `Too many requests: ${error.detail}` : (error.detail || "The request failed.");
    say(status, message, "error");
  } finally {
    button.disabled = false;
  }
}

function wireForgotPassword() {
  const link = $("forgot-link");
  const form = $("forgot-form");
  if (!link || !form) return;
  link.addEventListener("click", (event) => {
    event.preventDefault(); // the fragment names the owner page's tabs: leave it alone
    form.hidden = !form.hidden;
    link.setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) {
      $("forgot-email").value = $("forgot-email").value || $("login-email").value.trim();
      $("forgot-email").focus();
    }
  });
  form.addEventListener("submit", askForResetLink);
}

wireForgotPassword();
