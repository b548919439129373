// One conversation's transcript on the owner page (Conversations tab), as list items: each
// message says who wrote it — "Visitor", "Bot" or the agent's name with "(agent)", as the
// agents' inbox does, by a label and a class (not by colour alone) — with what the bot made of
// the visitor's message (intent, confidence, outcome, actions), the knowledge sources and
// delivery of a reply; and, where the conversation has them, the handoffs (asked for a person,
// resolved), the agents' internal notes and the visitor's rating.
//
// The API gives messages in turns without a time on the bot's and agents' messages; notes and
// handoff lines have one. Each goes into the turn it happened in: a handoff request before the
// turn's first agent reply, a note or a resolution after its last one, a rating at the end.
// Notes and handoffs come whole with every page of messages, so a page shows only those of
// its own period (`from`..`until`): "Show older messages" never repeats them.

import { el, when } from "./api.js";

function stamp(value) {
  const time = Date.parse(value || "");
  return Number.isNaN(time) ? null : time;
}

const words = (name) => String(name || "").replaceAll("_", " ");
const nameOf = (agent) => agent.name || agent.id || "an agent";

function sourcesOf(turn) {
  return (turn.sources || []).map((s) => (typeof s === "string" ? s
    : s.title || s.document || s.url || "")).filter(Boolean);
}

function deliveriesOf(deliveries) {
  return (deliveries || []).map((d) => [d.provider, d.status, d.provider_message_id,
    d.error_code, d.error_detail].filter(Boolean).join(" "));
}

function said(kind, who, text, extra = []) {
  return el("li", { class: `turn ${kind === "visitor" ? "in" : "out"} from-${kind}` },
    el("div", { class: "who" }, who),
    el("div", { class: "bubble" }, text || ""), ...extra);
}

/** A turn's messages ({node, agent}) in the API's order, and its time (the visitor's message,
 * else the turn before's). */
function turnOf(turn, inherited) {
  const messages = [];
  const visitor = turn.visitor;
  if (visitor) {
    const facts = [when(visitor.at), turn.intent ? `intent ${turn.intent}` : "",
      typeof turn.confidence === "number" ? `confidence ${turn.confidence.toFixed(2)}` : "",
      turn.outcome ? `outcome ${turn.outcome}` : "",
      (turn.actions || []).length ? `actions ${turn.actions.join(", ")}` : ""].filter(Boolean);
    messages.push({ agent: false, node: said("visitor", "Visitor", visitor.text,
      facts.length ? [el("div", { class: "meta" }, facts.join(" · "))] : []) });
  }
  for (const message of turn.bot || []) {
    const agent = message.agent || null;
    const buttons = (message.buttons || []).map((b) => el("span", {}, b.title || b.payload || ""));
    const delivery = deliveriesOf(message.deliveries);
    messages.push({ agent: Boolean(agent), node: said(agent ? "agent" : "bot",
      agent ? `${nameOf(agent)} (agent)` : "Bot",
      message.text || (message.image ? `[image] ${message.image}` : ""), [
        buttons.length ? el("div", { class: "buttons" }, buttons) : null,
        agent && delivery.length
          ? el("div", { class: "meta" }, `delivery: ${delivery.join("; ")}`) : null,
      ].filter(Boolean)) });
  }
  // The bot's reply: its knowledge sources and deliveries (an agent's carry their own).
  const botDeliveries = (turn.bot || []).filter((m) => !m.agent)
    .flatMap((m) => deliveriesOf(m.deliveries));
  const sources = sourcesOf(turn);
  const facts = [turn.knowledge_mode ? `knowledge: ${turn.knowledge_mode}` : "",
    sources.length ? `sources: ${sources.join(", ")}` : "",
    botDeliveries.length ? `delivery: ${botDeliveries.join("; ")}` : ""].filter(Boolean);
  const lastBot = messages.filter((m) => !m.agent).pop();
  if (facts.length && lastBot) lastBot.node.append(el("div", { class: "meta" }, facts.join(" · ")));
  return { time: stamp(visitor && visitor.at) ?? inherited, messages, events: [] };
}

function eventLine(at, text, place) {
  return { at: stamp(at), place, node: el("li", { class: "event" },
    [text, when(at)].filter(Boolean).join(" · ")) };
}

/** The handoffs' lines, the notes and the ratings, each with its time and place in a turn. */
function eventsOf(transcript) {
  const events = [];
  for (const handoff of transcript.handoffs || []) {
    events.push(eventLine(handoff.requested_at, `Handed to a person (${words(handoff.reason)})`,
      "request"));
    if (handoff.resolved_at) {
      const by = handoff.assignee ? ` by ${nameOf(handoff.assignee)}` : "";
      events.push(eventLine(handoff.resolved_at, `Resolved${by}: back to the bot`, "after"));
    }
    if (handoff.rating) {
      const rated = eventLine(handoff.rated_at || handoff.resolved_at,
        `The visitor rated the help ${handoff.rating} of 5`, "end");
      rated.node.classList.add("rating");
      events.push(rated);
    }
  }
  for (const note of transcript.notes || []) {
    events.push({ at: stamp(note.at), place: "after", node: el("li", { class: "turn note" },
      el("div", { class: "who" }, ["Internal note", note.author ? nameOf(note.author) : "",
        when(note.at)].filter(Boolean).join(" · ")),
      el("div", { class: "bubble" }, note.text || "")) });
  }
  return events;
}

function position(turn, place) {
  const agents = turn.messages.map((m, n) => (m.agent ? n : -1)).filter((n) => n >= 0);
  if (place === "request" && agents.length) return agents[0] - 0.5;
  if (place === "after" && agents.length) return agents[agents.length - 1] + 0.5;
  return turn.messages.length;
}

/** The transcript's list items, oldest first, with the notes and handoff lines that happened
 * from `from` (inclusive) until `until` (exclusive), in milliseconds. */
export function transcriptItems(transcript, from = -Infinity, until = Infinity) {
  const turns = [];
  let inherited = from;
  for (const turn of transcript.turns || []) {
    const made = turnOf(turn, inherited);
    inherited = made.time;
    turns.push(made);
  }
  const leading = [];
  for (const event of eventsOf(transcript)) {
    if (event.at !== null && (event.at < from || event.at >= until)) continue;
    let home = null;
    for (const turn of turns) if (event.at === null || turn.time <= event.at) home = turn;
    if (home) home.events.push({ ...event, pos: position(home, event.place) });
    else leading.push(event);
  }
  const byTime = (a, b) => (a.at ?? 0) - (b.at ?? 0);
  const nodes = leading.sort(byTime).map((event) => event.node);
  for (const turn of turns) {
    const events = turn.events.sort((a, b) => a.pos - b.pos || byTime(a, b));
    let next = 0;
    turn.messages.forEach((message, n) => {
      while (next < events.length && events[next].pos < n) nodes.push(events[next++].node);
      nodes.push(message.node);
    });
    while (next < events.length) nodes.push(events[next++].node);
  }
  return nodes;
}

/** When the first turn of a page happened (its first visitor message), or null. */
export function firstMoment(transcript) {
  for (const turn of transcript.turns || []) {
    const time = stamp(turn.visitor && turn.visitor.at);
    if (time !== null) return time;
  }
  return null;
}
