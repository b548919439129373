// The password reset page: /reset?token=… (the link a "Forgot your password?" request mailed)
// says whose password it sets, then sets it and logs the person in (the cookie, and the CSRF
// token the owner page needs).
//
// As on the invitation page, the token is read once and removed from the address bar
// (history.replaceState), so it does not stay in the browser's history or show on a shared
// screen, and the page sends no Referer (Referrer-Policy: no-referrer).

import { api, say, setCsrf } from "./api.js";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(window.location.search).get("token") || "";
window.history.replaceState(null, "", window.location.pathname);

function unusable(status, message) {
  say(status, message, "error");
  $("reset-form").hidden = true;
  $("reset-hint").hidden = true;
  $("reset-again").hidden = false;
}

async function start() {
  const status = $("reset-status");
  if (!token) {
    unusable(status, "This link has no reset token. Open the link from the reset email.");
    return;
  }
  try {
    const link = await api("POST", "/password/reset/lookup", { json: { token } });
    $("reset-for").textContent = `For the account ${link.email}.`;
  } catch (error) {
    unusable(status, error.detail || String(error));
    return;
  }
  $("reset-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const password = $("reset-password").value;
    if (password.length < 10) {
      say(status, "A password needs at least 10 characters.", "error");
      $("reset-password").focus();
      return;
    }
    if (password !== $("reset-confirm").value) {
      say(status, "The two passwords differ.", "error");
      $("reset-confirm").focus();
      return;
    }
    const button = event.submitter || $("reset-form").querySelector("button");
    button.disabled = true;
    try {
      const session = await api("POST", "/password/reset", { json: { token, password } });
      if (session && session.csrf_token) setCsrf(session.csrf_token);
      $("reset-form").hidden = true;
      $("reset-hint").hidden = true;
      $("reset-done").hidden = false;
      say(status, "Your password is changed and you are logged in.", "ok");
      $("reset-done").querySelector("a").focus();
    } catch (error) {
      say(status, error.detail || String(error), "error");
      button.disabled = false;
    }
  });
}

start();
