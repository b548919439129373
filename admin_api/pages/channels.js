// The Channels tab (owners): each channel's state, a form to connect or change it, and
// disconnecting; the order backend the bot reads orders from.
//
// GET /channels answers per channel whether it is usable, its non-secret fields (numbers,
// addresses) and only the names of its stored secrets: secrets are write-only here too. A
// secret left empty keeps the stored one; a non-secret field emptied is removed (the API
// merges what is sent into the stored section, null removes a field). The API checks the
// merged section with the channel's own rules and answers 422 with sentences that name the
// field by its label here ("Account SID is the Account SID…", with its `loc`): forms.js puts
// each next to its field. The labels below are the API's too (admin_api/routes/channels.py
// LABELS; a test keeps them alike), so the problems GET lists in a card read the same way
// ("Auth token is missing"), as do the order backend's 422s.

import { api, ApiError, el, say } from "./api.js";
import { clearErrors, copyable, field, showFieldErrors } from "./forms.js";

const $ = (id) => document.getElementById(id);

// Each channel's credentials section and fields, as connectors/channels/*/credentials.py and
// the README's Channels section name them. `secret`: write-only (never shown back).
const FORMS = {
  twilio: {
    section: "twilio",
    about: "SMS and WhatsApp through your Twilio account.",
    fields: [
      { path: "account_sid", label: "Account SID", hint: "From Twilio's console, starts with AC." },
      { path: "auth_token", label: "Auth token", type: "password", secret: true },
      { path: "sms_numbers", label: "SMS numbers", type: "list",
        hint: "Your Twilio numbers that take SMS, one a line (+15550001111).",
        placeholder: "+15550001111" },
      { path: "whatsapp_numbers", label: "WhatsApp numbers", type: "list",
        hint: "Twilio numbers enabled for WhatsApp, one a line." },
      { path: "whatsapp_template.content_sid", label: "WhatsApp template (content SID)",
        hint: "Optional: an approved template (HX…) sent outside WhatsApp's 24-hour window." },
    ],
  },
  meta: {
    section: "meta_whatsapp",
    about: "WhatsApp through Meta's Cloud API (your own WhatsApp Business app).",
    fields: [
      { path: "phone_number_id", label: "Phone number ID" },
      { path: "access_token", label: "Access token", type: "password", secret: true },
      { path: "app_secret", label: "App secret", type: "password", secret: true,
        hint: "Checks that messages really come from Meta." },
      { path: "verify_token", label: "Verify token", type: "password", secret: true,
        hint: "The word you also enter in the app's webhook settings." },
      { path: "template.name", label: "Template name",
        hint: "Optional: an approved template sent outside the 24-hour window." },
      { path: "template.language", label: "Template language", placeholder: "en" },
    ],
  },
  email: {
    section: "email",
    about: "Visitors write to your support address; replies go out through your mail server.",
    fields: [
      { path: "address", label: "Support address", placeholder: "support@shop.example" },
      { path: "from_name", label: "Sender name", placeholder: "Acme Support",
        hint: "The name visitors see on the bot's replies; empty: your shop's name." },
      { path: "inbound", label: "Inbound mail service", type: "select",
        options: [["", "(choose)"], ["mailgun", "Mailgun"], ["sendgrid", "SendGrid"]] },
      { path: "mailgun_signing_key", label: "Mailgun signing key", type: "password",
        secret: true },
      { path: "sendgrid_public_key", label: "SendGrid verification key", type: "password",
        secret: true },
      { path: "smtp.host", label: "SMTP host" },
      { path: "smtp.port", label: "SMTP port", type: "number", placeholder: "587" },
      { path: "smtp.username", label: "SMTP user name" },
      { path: "smtp.password", label: "SMTP password", type: "password", secret: true },
      { path: "smtp.starttls", label: "Use STARTTLS", type: "checkbox" },
    ],
  },
  rest: {
    section: "rest",
    summary: "Set a reply callback",
    save: "Save the callback",
    about: "Your own servers talk to the bot with a REST API key (see Developers). Optional: "
      + "where replies that people write later are sent.",
    fields: [
      { path: "callback_url", label: "Reply callback URL", placeholder: "https://…" },
      { path: "signing_secret", label: "Callback signing secret", type: "password", secret: true,
        hint: "At least 16 characters; each callback is signed with it." },
    ],
  },
};

const BACKENDS = {
  demo: { label: "Demo orders (no shop platform)", fields: [] },
  shopify: { label: "Shopify", fields: [
    { path: "shop_url", label: "Shop address", placeholder: "acme.myshopify.com" },
    { path: "access_token", label: "Admin API access token", type: "password", secret: true },
    { path: "api_version", label: "API version (optional)", placeholder: "2024-10",
      hint: "Shopify's Admin API version, as year-month (2024-10)." },
  ] },
  woocommerce: { label: "WooCommerce", fields: [
    { path: "store_url", label: "Store address", placeholder: "https://shop.example" },
    { path: "consumer_key", label: "Consumer key", type: "password", secret: true },
    { path: "consumer_secret", label: "Consumer secret", type: "password", secret: true },
  ] },
};

let kit = null;

const valueAt = (object, path) => path.split(".")
  .reduce((at, key) => (at && typeof at === "object" ? at[key] : undefined), object);

function setAt(object, path, value) {
  const keys = path.split(".");
  let at = object;
  for (const key of keys.slice(0, -1)) at = (at[key] ||= {});
  at[keys[keys.length - 1]] = value;
}

/** What a channel shows of itself: its stored public fields, flattened ("smtp.host"). */
function flatten(object, prefix = "") {
  return Object.entries(object || {}).flatMap(([key, value]) => (
    value && typeof value === "object" && !Array.isArray(value)
      ? flatten(value, `${prefix}${key}.`) : [[`${prefix}${key}`, value]]));
}

function shown(value) {
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value ?? "");
}

function stateOf(channel) {
  if (!channel.needs_credentials && channel.name !== "rest") return ["ready", "ok"];
  if (channel.name === "rest") {
    return channel.problems.length ? ["callback needs attention", "near"]
      : channel.secret_fields.length || Object.keys(channel.fields).length
        ? ["ready, replies pushed to your callback", "ok"] : ["ready (replies polled)", "ok"];
  }
  if (channel.configured) return ["connected", "ok"];
  const stored = channel.secret_fields.length || Object.keys(channel.fields).length;
  return stored ? ["needs attention", "near"] : ["not connected", ""];
}

function labelOf(path, spec) {
  const found = spec && spec.fields.find((f) => f.path === path);
  return found ? found.label : path;
}

function facts(channel, spec) {
  const rows = flatten(channel.fields).filter(([, value]) => value !== "" && value !== null)
    .map(([path, value]) => [path === "widget_key" ? "Widget key" : path === "backend"
      ? "Backend" : labelOf(path, spec), shown(value)]);
  if (channel.secret_fields.length) {
    rows.push(["Stored secrets", channel.secret_fields.map((p) => labelOf(p, spec)).join(", ")
      + " (never shown)"]);
  }
  if (!rows.length) return null;
  return el("dl", { class: "facts" }, rows.flatMap(([term, value]) =>
    [el("dt", {}, term), el("dd", {}, value)]));
}

/** The form's fields with the stored public values filled in; secrets stay empty. */
function formFields(specs, channel) {
  return specs.map((spec) => {
    const stored = valueAt(channel.fields, spec.path);
    const secretStored = spec.secret && channel.secret_fields.includes(spec.path);
    const made = field({ ...spec, name: spec.path,
      hint: [spec.hint, secretStored ? "Stored: leave empty to keep it." : ""]
        .filter(Boolean).join(" ") || undefined,
      placeholder: secretStored ? "•••••••• (stored)" : spec.placeholder });
    made.stored = stored;
    if (spec.type === "checkbox") made.input.checked = Boolean(stored);
    else if (spec.type === "list") made.input.value = (stored || []).join("\n");
    else if (!spec.secret && stored !== undefined && stored !== null) made.input.value = stored;
    return made;
  });
}

/** The changes to send: {} when nothing changed (only what differs from what is stored). */
function changesOf(fields) {
  const credentials = {};
  for (const f of fields) {
    const { spec, input, stored } = f;
    let value;
    if (spec.type === "checkbox") {
      value = input.checked;
      if (value === Boolean(stored)) continue;
    } else if (spec.type === "list") {
      value = input.value.split(/[\n,;]+/).map((v) => v.trim()).filter(Boolean);
      if (!value.length) value = null;
      if (JSON.stringify(value) === JSON.stringify(stored ?? null)) continue;
    } else {
      const raw = input.value.trim();
      if (spec.secret) {
        if (!raw) continue; // write-only: empty keeps the stored secret
        value = raw;
      } else {
        value = raw === "" ? null : spec.type === "number" && /^\d+$/.test(raw) ? Number(raw) : raw;
        if (String(value ?? "") === String(stored ?? "")) continue;
      }
    }
    if (value === null && stored === undefined) continue;
    setAt(credentials, spec.path, value);
  }
  return credentials;
}

/** Where a card says it was saved or disconnected (under its facts, outside the form that
 * closes on saving). */
function cardStatus() {
  return el("p", { class: "message card-status", role: "status", tabindex: "-1" });
}

/** A change's outcome in its channel's card (rebuilt by loadChannels), with the focus moved
 * there so it is seen and read out where the person clicked: on the panel's status line it
 * was written above the visible part of the page, and nothing seemed to happen. */
function sayInCard(name, text, kind) {
  const card = $("channels-list").querySelector(`article[data-channel="${name}"]`);
  const note = card && card.querySelector(".card-status");
  if (!note) {
    say($("channels-status"), text, kind);
    return;
  }
  say($("channels-status"), "");
  say(note, text, kind);
  note.focus({ preventScroll: true });
  note.scrollIntoView({ block: "center" }); // with the card's facts above it in view
}

function channelCard(channel) {
  const spec = FORMS[channel.name];
  const [state, kind] = stateOf(channel);
  const headingId = `channel-${channel.name}-title`;
  const card = el("article", { class: "channel", "data-channel": channel.name,
    "aria-labelledby": headingId },
  el("h3", { id: headingId }, channel.label,
    el("span", { class: `badge ${kind === "ok" ? "custom" : kind}` }, state)),
  spec ? el("p", { class: "hint" }, spec.about) : null,
  channel.name === "web" ? el("p", { class: "hint" }, "Always on: paste the widget's script "
    + "tag with this key into your shop's pages.") : null,
  channel.embed ? copyable("Script tag for your shop's pages", channel.embed,
    channel.embed.includes("YOUR-GATEWAY")
      ? "Replace https://YOUR-GATEWAY with your gateway's public address (or have the "
        + "operator set PUBLIC_BASE_URL)."
      : "Paste it before </body> on every page where visitors should see the chat.",
    "embed") : null,
  facts(channel, spec),
  channel.problems.length && (channel.secret_fields.length || Object.keys(channel.fields).length)
    ? el("ul", { class: "problems error" }, channel.problems.map((p) => el("li", {}, p))) : null,
  cardStatus());
  if (!spec) return card;
  const stored = channel.secret_fields.length || Object.keys(channel.fields).length;
  const fields = formFields(spec.fields, channel);
  const status = el("p", { class: "message", role: "status", "aria-live": "polite" });
  const save = el("button", { type: "submit" }, spec.save || (stored ? "Save changes" : "Connect"));
  const form = el("form", { class: "fields", novalidate: true,
    "aria-label": `${channel.label} settings` }, fields, el("div", { class: "wide" }, save, status));
  form.addEventListener("submit", (event) => submitChannel(event, channel, spec, fields, status));
  const details = el("details", {},
    el("summary", {}, stored ? `Change the ${channel.label} settings`
      : spec.summary || `Connect ${channel.label}`), form);
  card.append(details);
  if (stored) {
    const remove = el("button", { type: "button", class: "danger small",
      "aria-label": `Disconnect ${channel.label}` }, "Disconnect");
    remove.addEventListener("click", () => disconnect(channel, remove));
    card.append(el("div", { class: "row" }, remove));
  }
  return card;
}

async function submitChannel(event, channel, spec, fields, status) {
  event.preventDefault();
  clearErrors(fields, status);
  const credentials = changesOf(fields);
  if (!Object.keys(credentials).length) {
    say(status, "Nothing changed.");
    return;
  }
  const button = event.submitter;
  if (button) button.disabled = true;
  say(status, "Checking…");
  try {
    const saved = await api("PUT", `/channels/${encodeURIComponent(channel.name)}`,
      { json: { credentials } });
    await loadChannels();
    sayInCard(channel.name, `${channel.label}: saved${saved.configured ? ", connected" : ""}.`,
      "ok");
  } catch (error) {
    if (error instanceof ApiError && error.status === 422) {
      showFieldErrors(fields, status, error.body && error.body.detail, spec.section);
    } else {
      kit.failed(status, error);
    }
  } finally {
    if (button) button.disabled = false;
  }
}

async function disconnect(channel, button) {
  const effect = channel.name === "rest"
    ? "its reply callback is removed (the REST channel keeps answering its own requests)"
    : "it stops answering within about 30 seconds";
  if (!window.confirm(`Disconnect ${channel.label}? Its stored credentials are deleted and `
    + `${effect}.`)) return;
  button.disabled = true;
  try {
    await api("DELETE", `/channels/${encodeURIComponent(channel.name)}`);
    await loadChannels();
    sayInCard(channel.name, `${channel.label}: disconnected.`, "ok");
  } catch (error) {
    kit.failed($("channels-status"), error);
    button.disabled = false;
  }
}

// -- the order backend: chosen whole (a shop platform's credentials are all sent) -------------

function backendCard(channel) {
  const current = channel.fields.backend || "demo";
  const [state, kind] = stateOf(channel);
  const card = el("article", { class: "channel", "data-channel": "order_backend",
    "aria-labelledby": "channel-order-backend-title" },
  el("h3", { id: "channel-order-backend-title" }, "Orders",
    el("span", { class: `badge ${kind === "ok" ? "custom" : kind}` },
      `${BACKENDS[current] ? BACKENDS[current].label : current}: ${state}`)),
  el("p", { class: "hint" }, "Where the bot looks up order status and returns."),
  facts(channel, BACKENDS[current]),
  channel.problems.length ? el("ul", { class: "problems error" },
    channel.problems.map((p) => el("li", {}, p))) : null, cardStatus());
  const choice = field({ name: "backend", label: "Shop platform", type: "select",
    options: Object.entries(BACKENDS).map(([name, b]) => [name, b.label]) });
  choice.input.value = current;
  const groups = {};
  for (const [name, backend] of Object.entries(BACKENDS)) {
    const fields = formFields(backend.fields, name === current ? channel
      : { fields: {}, secret_fields: [] });
    groups[name] = { fields, node: el("div", { class: "fields wide" }, fields) };
  }
  const status = el("p", { class: "message", role: "status", "aria-live": "polite" });
  const showGroup = () => {
    for (const [name, group] of Object.entries(groups)) group.node.hidden = name !== choice.input.value;
  };
  choice.input.addEventListener("change", showGroup);
  showGroup();
  const form = el("form", { novalidate: true, "aria-label": "Order backend settings" }, choice,
    el("p", { class: "hint" }, "A shop platform's credentials are replaced together: enter "
      + "all of them, also the stored ones."),
    Object.values(groups).map((g) => g.node),
    el("button", { type: "submit" }, "Save the order backend"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const backend = choice.input.value;
    const fields = groups[backend].fields;
    clearErrors([choice, ...fields], status);
    const body = { backend };
    if (fields.length) {
      body.credentials = {};
      for (const f of fields) {
        const value = f.input.value.trim();
        if (value) body.credentials[f.spec.path] = value;
      }
    }
    try {
      await api("PUT", "/channels/order_backend", { json: body });
      await loadChannels();
      sayInCard("order_backend", `Orders: ${BACKENDS[backend].label} saved.`, "ok");
    } catch (error) {
      if (error instanceof ApiError && error.status === 422) {
        showFieldErrors([choice, ...fields], status, error.body && error.body.detail, backend);
      } else {
        kit.failed(status, error);
      }
    }
  });
  card.append(el("details", {}, el("summary", {}, "Change the order backend"), form));
  return card;
}

export async function loadChannels() {
  const status = $("channels-status");
  try {
    const answer = await api("GET", "/channels", { query: { page_size: 100 } });
    const cards = answer.items.map((channel) => (channel.name === "order_backend"
      ? backendCard(channel) : channelCard(channel)));
    $("channels-list").replaceChildren(...cards);
  } catch (error) {
    kit.failed(status, error);
  }
}

/** `tabKit`: the owner page's shared pieces (app.js): failed(node, error), loaders. */
export function wireChannels(tabKit) {
  kit = tabKit;
  kit.loaders.channels = () => {
    say($("channels-status"), "");
    return loadChannels();
  };
}
