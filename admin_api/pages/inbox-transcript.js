// One conversation's transcript for the agents' inbox, as list items: the visitor's, the bot's
// and agents' messages with their delivery status, internal notes and what happened to the
// conversation's handoffs, each told apart by a class and a label (not by colour alone).
//
// The API gives the messages in turns (a visitor message and what answered it, in the order
// recorded) without a time on the bot's and agents' messages; notes and handoff lines have a
// time. Each of those goes into the turn it happened in: a handoff request before the turn's
// first agent reply, a note or a resolution after its last one (else at the turn's end).

import { el } from "./api.js";

export function words(name) {
  return String(name || "").replaceAll("_", " ");
}

function stamp(value) {
  const time = Date.parse(value || "");
  return Number.isNaN(time) ? null : time;
}

/** Today's moments as a time of day, older ones with their date. */
export function moment(value) {
  const time = stamp(value);
  if (time === null) return "";
  const date = new Date(time);
  return date.toDateString() === new Date().toDateString()
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

export function authorName(author) {
  if (!author) return "";
  return typeof author === "object" ? author.name || author.id || "" : String(author);
}

function deliveryLine(deliveries) {
  if (!deliveries || !deliveries.length) return null;
  return el("div", { class: "delivery" }, "Delivery: ", ...deliveries.map((d, n) => el("span",
    { class: `status status-${String(d.status || "").replace(/[^a-z_-]/gi, "")}` },
    `${n ? ", " : ""}${d.status || "unknown"}${d.provider ? ` (${d.provider})` : ""}`,
    d.error_code || d.error_detail
      ? ` ${[d.error_code, d.error_detail].filter(Boolean).join(" ")}` : "")));
}

function messageItem(kind, who, at, text, extra = []) {
  return el("li", { class: `msg from-${kind}` },
    el("div", { class: "meta" }, [who, moment(at)].filter(Boolean).join(" · ")),
    el("div", { class: "bubble" }, text || ""),
    ...extra);
}

/** One turn: its time (the visitor's message, else the turn before's) and its messages in the
 * API's order (the visitor's, then the bot's and agents' as they were recorded). */
function turnOf(turn, inherited) {
  const visitor = turn.visitor;
  const messages = [];
  if (visitor) {
    messages.push({ agent: false,
      node: messageItem("visitor", "Visitor", visitor.at, visitor.text) });
  }
  const said = turn.bot || [];
  said.forEach((message) => {
    const agent = message.agent || null;
    const buttons = (message.buttons || []).map((b) => el("span", {}, b.title || b.payload || ""));
    const extra = [buttons.length ? el("div", { class: "buttons" }, buttons) : null,
      deliveryLine(message.deliveries)].filter(Boolean);
    messages.push({ agent: !!agent, node: messageItem(agent ? "agent" : "bot",
      agent ? `${authorName(agent)} (agent)` : "Bot", message.at || null,
      message.text || (message.image ? `[image] ${message.image}` : ""), extra) });
  });
  return { time: stamp(visitor && visitor.at) ?? inherited, messages, events: [] };
}

/** Notes and handoff lines, with their times and where in their turn they go. */
function eventsOf(thread) {
  const line = (at, text, place) => ({ at: stamp(at), place,
    node: el("li", { class: "event" }, [text, moment(at)].filter(Boolean).join(" · ")) });
  const events = [];
  for (const handoff of thread.handoffs || []) {
    const requested = handoff.requested_at || handoff.created_at;
    if (requested) {
      events.push(line(requested, `Handed to a person${handoff.reason
        ? ` (${words(handoff.reason)})` : ""}`, "request"));
    }
    if (handoff.resolved_at) {
      events.push(line(handoff.resolved_at, "Resolved: back to the bot", "after"));
    }
    if (handoff.rating) {
      events.push(line(handoff.rated_at || handoff.resolved_at,
        `The visitor rated the help ${handoff.rating} of 5`, "end"));
    }
  }
  for (const written of thread.notes || []) {
    const at = written.at || written.created_at;
    const who = authorName(written.author) || written.author_name || "";
    events.push({ at: stamp(at), place: "after", node: el("li", { class: "msg note" },
      el("div", { class: "meta" }, ["Internal note", who, moment(at)].filter(Boolean)
        .join(" · ")),
      el("div", { class: "bubble" }, written.text || "")) });
  }
  return events;
}

function position(turn, place) {
  const agents = turn.messages.map((m, n) => (m.agent ? n : -1)).filter((n) => n >= 0);
  const end = turn.messages.length;
  if (place === "request") return agents.length ? agents[0] - 0.5 : end;
  if (place === "after") return agents.length ? agents[agents.length - 1] + 0.5 : end;
  return end;
}

/** The transcript's list items, oldest first. */
export function transcriptNodes(thread) {
  const turns = [];
  let inherited = -Infinity;
  for (const turn of thread.turns || []) {
    const made = turnOf(turn, inherited);
    inherited = made.time;
    turns.push(made);
  }
  const leading = [];
  for (const event of eventsOf(thread)) {
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
