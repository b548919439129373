// One conversation's transcript on the owner page (Conversations tab), as list items: each
// message says who wrote it — "Visitor", "Bot" or the agent's name with "(agent)", as the
// agents' inbox does, by a label and a class (not by colour alone) — with what the bot made of
// the visitor's message (intent, confidence, outcome, actions), the knowledge sources and
// delivery of a reply; and, where the conversation has them, the handoffs (asked for a person,
// resolved), the agents' internal notes and the visitor's rating.
//
// Where each goes in time is timeline.js's (shared with the agents' inbox); this is the look.
// Notes and handoffs come whole with every page of messages, so a page shows only those of
// its own period (`from`..`until`): "Show older messages" never repeats them.

import { el, when } from "./api.js";
import { authorName, deliveries, stamp, timeline, words } from "./timeline.js";

const nameOf = (agent) => authorName(agent) || "an agent";

function sourcesOf(turn) {
  return (turn.sources || []).map((s) => (typeof s === "string" ? s
    : s.title || s.document || s.url || "")).filter(Boolean);
}

const deliveryText = (d) => [d.provider, d.status, d.id, d.error].filter(Boolean).join(" ");

function said(kind, who, text, extra = []) {
  return el("li", { class: `turn ${kind === "visitor" ? "in" : "out"} from-${kind}` },
    el("div", { class: "who" }, who),
    el("div", { class: "bubble" }, text || ""), ...extra);
}

/** What the bot made of the visitor's message. */
function visitorFacts(turn, at) {
  return [when(at), turn.intent ? `intent ${turn.intent}` : "",
    typeof turn.confidence === "number" ? `confidence ${turn.confidence.toFixed(2)}` : "",
    turn.outcome ? `outcome ${turn.outcome}` : "",
    (turn.actions || []).length ? `actions ${turn.actions.join(", ")}` : ""].filter(Boolean);
}

/** The bot's reply: its knowledge sources and deliveries (an agent's carry their own). */
function replyFacts(turn) {
  const botDeliveries = (turn.bot || []).filter((m) => !m.agent)
    .flatMap((m) => deliveries(m.deliveries).map(deliveryText));
  const sources = sourcesOf(turn);
  return [turn.knowledge_mode ? `knowledge: ${turn.knowledge_mode}` : "",
    sources.length ? `sources: ${sources.join(", ")}` : "",
    botDeliveries.length ? `delivery: ${botDeliveries.join("; ")}` : ""].filter(Boolean);
}

function message(item) {
  const meta = (facts) => (facts.length ? el("div", { class: "meta" }, facts.join(" · ")) : null);
  const delivery = item.deliveries.map(deliveryText);
  const extra = item.kind === "visitor" ? [meta(visitorFacts(item.turn, item.at))] : [
    item.buttons.length
      ? el("div", { class: "buttons" }, item.buttons.map((b) => el("span", {}, b))) : null,
    item.agent && delivery.length ? meta([`delivery: ${delivery.join("; ")}`]) : null];
  if (item.closesReply) extra.push(meta(replyFacts(item.turn)));
  const who = item.kind === "visitor" ? "Visitor"
    : item.agent ? `${nameOf(item.agent)} (agent)` : "Bot";
  return said(item.kind, who, item.text, extra.filter(Boolean));
}

function line(at, text) {
  return el("li", { class: "event" }, [text, when(at)].filter(Boolean).join(" · "));
}

function event(item) {
  const handoff = item.handoff;
  if (item.kind === "request") {
    return line(item.at, `Handed to a person (${words(handoff.reason)})`);
  }
  if (item.kind === "resolved") {
    const by = handoff.assignee ? ` by ${nameOf(handoff.assignee)}` : "";
    return line(item.at, `Resolved${by}: back to the bot`);
  }
  if (item.kind === "rating") {
    const rated = line(item.at, `The visitor rated the help ${handoff.rating} of 5`);
    rated.classList.add("rating");
    return rated;
  }
  const note = item.note;
  return el("li", { class: "turn note" },
    el("div", { class: "who" }, ["Internal note", note.author ? nameOf(note.author) : "",
      when(item.at)].filter(Boolean).join(" · ")),
    el("div", { class: "bubble" }, note.text || ""));
}

/** The transcript's list items, oldest first, with the notes and handoff lines that happened
 * from `from` (inclusive) until `until` (exclusive), in milliseconds. */
export function transcriptItems(transcript, from = -Infinity, until = Infinity) {
  return timeline(transcript, { message, event }, from, until);
}

/** When the first turn of a page happened (its first visitor message), or null. */
export function firstMoment(transcript) {
  for (const turn of transcript.turns || []) {
    const time = stamp(turn.visitor && turn.visitor.at);
    if (time !== null) return time;
  }
  return null;
}
