// One conversation's transcript for the agents' inbox, as list items: the visitor's, the bot's
// and agents' messages with their delivery status, internal notes and what happened to the
// conversation's handoffs, each told apart by a class and a label (not by colour alone).
//
// Where each goes in time is timeline.js's (shared with the owner page's transcript); this is
// the inbox's look.

import { el } from "./api.js";
import { authorName, stamp, timeline, words } from "./timeline.js";

/** Today's moments as a time of day, older ones with their date. */
export function moment(value) {
  const time = stamp(value);
  if (time === null) return "";
  const date = new Date(time);
  return date.toDateString() === new Date().toDateString()
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

function deliveryLine(deliveries) {
  if (!deliveries.length) return null;
  return el("div", { class: "delivery" }, "Delivery: ", ...deliveries.map((d, n) => el("span",
    { class: `status status-${String(d.status).replace(/[^a-z_-]/gi, "")}` },
    `${n ? ", " : ""}${d.status || "unknown"}${d.provider ? ` (${d.provider})` : ""}`,
    d.error ? ` ${d.error}` : "")));
}

function messageItem(kind, who, at, text, extra = []) {
  return el("li", { class: `msg from-${kind}` },
    el("div", { class: "meta" }, [who, moment(at)].filter(Boolean).join(" · ")),
    el("div", { class: "bubble" }, text || ""),
    ...extra);
}

function message(item) {
  if (item.kind === "visitor") return messageItem("visitor", "Visitor", item.at, item.text);
  const extra = [item.buttons.length
    ? el("div", { class: "buttons" }, item.buttons.map((b) => el("span", {}, b))) : null,
  deliveryLine(item.deliveries)].filter(Boolean);
  return messageItem(item.kind, item.agent ? `${authorName(item.agent)} (agent)` : "Bot",
    item.at, item.text, extra);
}

function line(at, text) {
  return el("li", { class: "event" }, [text, moment(at)].filter(Boolean).join(" · "));
}

function event(item) {
  const handoff = item.handoff;
  if (item.kind === "request") {
    if (!item.at) return null; // no time, no line (the API always gives one)
    return line(item.at, `Handed to a person${handoff.reason
      ? ` (${words(handoff.reason)})` : ""}`);
  }
  if (item.kind === "resolved") return line(item.at, "Resolved: back to the bot");
  if (item.kind === "rating") {
    return line(item.at, `The visitor rated the help ${handoff.rating} of 5`);
  }
  const note = item.note;
  const who = authorName(note.author) || note.author_name || "";
  return el("li", { class: "msg note" },
    el("div", { class: "meta" }, ["Internal note", who, moment(item.at)].filter(Boolean)
      .join(" · ")),
    el("div", { class: "bubble" }, note.text || ""));
}

/** The transcript's list items, oldest first. */
export function transcriptNodes(thread) {
  return timeline(thread, { message, event });
}
