// The accept-invitation page: /invite?token=… sets the invited person's name and password.
//
// The token is read once and removed from the address bar (history.replaceState), so it does
// not stay in the browser's history or show on a shared screen; the page sends no Referer
// (Referrer-Policy: no-referrer) either.

import { api, say, setCsrf } from "./api.js";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(window.location.search).get("token") || "";
window.history.replaceState(null, "", window.location.pathname);

function start() {
  const status = $("invite-status");
  if (!token) {
    say(status, "This link has no invitation token. Open the link from your invitation email.",
      "error");
    $("invite-form").querySelector("button").disabled = true;
    return;
  }
  $("invite-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("invite-name").value.trim();
    const password = $("invite-password").value;
    if (!name) {
      say(status, "Enter your name.", "error");
      return;
    }
    if (password !== $("invite-confirm").value) {
      say(status, "The two passwords differ.", "error");
      return;
    }
    const button = event.submitter || $("invite-form").querySelector("button");
    button.disabled = true;
    try {
      // Accepting logs the new member in (the cookie); the owner page needs its CSRF token.
      const session = await api("POST", "/invitations/accept", { json: { token, password, name } });
      if (session && session.csrf_token) setCsrf(session.csrf_token);
      $("invite-form").hidden = true;
      $("invite-done").hidden = false;
      say(status, "Welcome: your account is ready.", "ok");
      $("invite-done").querySelector("a").focus();
    } catch (error) {
      say(status, error.detail || String(error), "error");
      button.disabled = false;
    }
  });
}

start();
