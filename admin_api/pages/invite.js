// The accept-invitation page: /invite?token=… says which shop and role the link is for, then
// sets the invited person's name and password (or, for an email with an account already,
// takes that account's password: the API does not let a link reset it).
//
// The token is read once and removed from the address bar (history.replaceState), so it does
// not stay in the browser's history or show on a shared screen; the page sends no Referer
// (Referrer-Policy: no-referrer) either.

import { api, ApiError, say, setCsrf } from "./api.js";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(window.location.search).get("token") || "";
window.history.replaceState(null, "", window.location.pathname);

const ROLES = {
  owner: "an owner (everything, billing and people too)",
  designer: "a conversation designer (texts, knowledge, training)",
  agent: "an agent (the inbox: answering visitors)",
};

async function lookUp(status) {
  let offer;
  try {
    offer = await api("POST", "/invitations/lookup", { json: { token } });
  } catch (error) {
    say(status, error.detail || String(error), "error");
    $("invite-form").hidden = true;
    $("invite-hint").hidden = true;
    $("invite-login").hidden = !(error instanceof ApiError && error.status === 410);
    return null;
  }
  $("invite-offer").textContent =
    `${offer.shop} invites ${offer.email} to join as ${ROLES[offer.role] || offer.role}.`;
  if (offer.has_account) {
    // The account's own password; name and a new password are not asked for.
    $("invite-new-account").hidden = true;
    $("invite-confirm-field").hidden = true;
    $("invite-password-label").textContent = "Your Switchboard password";
    $("invite-password").autocomplete = "current-password";
    $("invite-hint").textContent =
      `${offer.email} has a Switchboard account already: enter its password to add this shop.`;
  }
  return offer;
}

async function start() {
  const status = $("invite-status");
  if (!token) {
    say(status, "This link has no invitation token. Open the link from your invitation email.",
      "error");
    $("invite-form").querySelector("button").disabled = true;
    return;
  }
  const offer = await lookUp(status);
  if (!offer) return;
  $("invite-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("invite-name").value.trim();
    const password = $("invite-password").value;
    if (!name && !offer.has_account) {
      say(status, "Enter your name.", "error");
      return;
    }
    if (!offer.has_account && password !== $("invite-confirm").value) {
      say(status, "The two passwords differ.", "error");
      return;
    }
    const button = event.submitter || $("invite-form").querySelector("button");
    button.disabled = true;
    try {
      // Accepting logs the new member in (the cookie); the owner page needs its CSRF token.
      const json = offer.has_account ? { token, password } : { token, password, name };
      const session = await api("POST", "/invitations/accept", { json });
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
