// The accept-invitation page: /invite?token=… says which shop and role the link is for, then
// sets the invited person's name and password (or, for an email with an account already,
// takes that account's password: the API does not let a link reset it).
//
// Whether the email has an account is said by the API only for a link that was mailed to the
// invitee (has_account true or false). A link the inviting owner passed on may still be in the
// owner's hands, so there it is null and the page asks the person: new to Switchboard, or
// already has an account.
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

const NEW_HINT = "Choose your name and a password to join the shop. This link works once.";

// Ask for what a new account needs (name, password twice) or for the account's own password.
function askFor(existing, email) {
  $("invite-new-account").hidden = existing;
  $("invite-confirm-field").hidden = existing;
  $("invite-password-label").textContent =
    existing ? "Your Switchboard password" : "Password (at least 10 characters)";
  $("invite-password").autocomplete = existing ? "current-password" : "new-password";
  $("invite-hint").textContent = existing
    ? `Enter the password of your Switchboard account ${email} to add this shop.`
    : NEW_HINT;
}

// The person says whether they have an account: two radio buttons above the form's fields.
function offerChoice(email, onChange) {
  const choice = document.createElement("fieldset");
  choice.id = "invite-choice";
  const legend = document.createElement("legend");
  legend.textContent = `Do you have a Switchboard account for ${email}?`;
  choice.append(legend);
  for (const [value, words] of [["new", "No, I am new to Switchboard"],
    ["existing", "Yes, I have an account"]]) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    Object.assign(input, { type: "radio", name: "invite-account", value });
    input.checked = value === "new";
    input.addEventListener("change", () => onChange(value === "existing"));
    label.append(input, ` ${words}`);
    choice.append(label);
  }
  $("invite-form").prepend(choice);
}

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
  offer.existing = offer.has_account === true;
  if (offer.has_account === null) {
    offerChoice(offer.email, (existing) => {
      offer.existing = existing;
      askFor(existing, offer.email);
    });
  } else if (offer.existing) {
    // The account's own password; name and a new password are not asked for.
    askFor(true, offer.email);
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
    if (!name && !offer.existing) {
      say(status, "Enter your name.", "error");
      return;
    }
    if (!offer.existing && password !== $("invite-confirm").value) {
      say(status, "The two passwords differ.", "error");
      return;
    }
    const button = event.submitter || $("invite-form").querySelector("button");
    button.disabled = true;
    try {
      // Accepting logs the new member in (the cookie); the owner page needs its CSRF token.
      const json = offer.existing ? { token, password } : { token, password, name };
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
