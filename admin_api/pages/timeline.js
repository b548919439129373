// A conversation's timeline, shared by the owner page's transcript (transcript.js) and the
// agents' inbox (inbox-transcript.js): what is shown in which order, not how it looks.
//
// The API gives the messages in turns (a visitor message and what answered it, in the order
// recorded) without a time on the bot's and agents' messages; notes and handoff lines have a
// time. Each of those goes into the turn it happened in: a handoff request before the turn's
// first agent reply, a note or a resolution after its last one (else at the turn's end), a
// rating at the turn's end; those before the first turn lead, by time.
//
// A page gives the look: `look.message(item)` and `look.event(event)` make its list items from
// the plain items below, so each page keeps its own classes, labels and facts (an event whose
// item is null is left out).

export function stamp(value) {
  const time = Date.parse(value || "");
  return Number.isNaN(time) ? null : time;
}

export function words(name) {
  return String(name || "").replaceAll("_", " ");
}

/** A person's name from an author or assignee ({id, name}, or a name as a string), or "". */
export function authorName(author) {
  if (!author) return "";
  return typeof author === "object" ? author.name || author.id || "" : String(author);
}

/** A message's deliveries as {status, provider, id, error}, each "" when the API gave none. */
export function deliveries(list) {
  return (list || []).map((d) => ({ status: d.status || "", provider: d.provider || "",
    id: d.provider_message_id || "",
    error: [d.error_code, d.error_detail].filter(Boolean).join(" ") }));
}

/** A turn's messages in the API's order (the visitor's, then the bot's and agents' as they were
 * recorded), as items {kind: "visitor" | "bot" | "agent", at, text, agent, buttons,
 * deliveries, turn, closesReply}. `closesReply` marks the turn's last message not by an agent:
 * where the bot's reply's facts (knowledge, sources, delivery) belong. */
function messagesOf(turn) {
  const items = [];
  const visitor = turn.visitor;
  if (visitor) {
    items.push({ kind: "visitor", at: visitor.at, text: visitor.text || "", agent: null,
      buttons: [], deliveries: [], turn, closesReply: false });
  }
  for (const message of turn.bot || []) {
    const agent = message.agent || null;
    items.push({ kind: agent ? "agent" : "bot", at: message.at || null, agent,
      text: message.text || (message.image ? `[image] ${message.image}` : ""),
      buttons: (message.buttons || []).map((b) => b.title || b.payload || ""),
      deliveries: deliveries(message.deliveries), turn, closesReply: false });
  }
  const replies = items.filter((item) => item.kind !== "agent");
  if (replies.length) replies[replies.length - 1].closesReply = true;
  return items;
}

/** Handoff requests, resolutions, ratings and notes as items {kind: "request" | "resolved" |
 * "rating" | "note", at, place, handoff or note}. */
function eventsOf(thread) {
  const events = [];
  for (const handoff of thread.handoffs || []) {
    events.push({ kind: "request", at: handoff.requested_at || handoff.created_at || null,
      place: "request", handoff });
    if (handoff.resolved_at) {
      events.push({ kind: "resolved", at: handoff.resolved_at, place: "after", handoff });
    }
    if (handoff.rating) {
      events.push({ kind: "rating", at: handoff.rated_at || handoff.resolved_at, place: "end",
        handoff });
    }
  }
  for (const note of thread.notes || []) {
    events.push({ kind: "note", at: note.at || note.created_at, place: "after", note });
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

/** The conversation's list items, oldest first, made by `look`, with the notes and handoff
 * lines that happened from `from` (inclusive) until `until` (exclusive), in milliseconds
 * (those without a time always). A turn's time is its visitor's message's, else the turn
 * before's (`from` for the first). */
export function timeline(thread, look, from = -Infinity, until = Infinity) {
  const turns = [];
  let inherited = from;
  for (const turn of thread.turns || []) {
    const time = stamp(turn.visitor && turn.visitor.at) ?? inherited;
    inherited = time;
    turns.push({ time, events: [], messages: messagesOf(turn).map((item) => ({
      agent: item.kind === "agent", node: look.message(item) })) });
  }
  const leading = [];
  for (const event of eventsOf(thread)) {
    const at = stamp(event.at);
    if (at !== null && (at < from || at >= until)) continue;
    const node = look.event(event);
    if (!node) continue;
    let home = null;
    for (const turn of turns) if (at === null || turn.time <= at) home = turn;
    const placed = { at, node };
    if (home) home.events.push({ ...placed, pos: position(home, event.place) });
    else leading.push(placed);
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
