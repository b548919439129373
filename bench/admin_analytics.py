"""The analytics summary of a shop with 1 million messages over 90 days, on PostgreSQL.

Target (issue 13, part 4): the 90-day summary (`GET /analytics/summary`) under 1 s.

Seeds a database of its own (`bench_analytics` on the server of --database-url, dropped at the
end unless --keep; the database you name is never written), migrated like production
(devtools.bootstrap.migrate), with a shop of --messages messages over --days days and a
second shop with a fifth as many, so the shop filter has something to skip. The mix is
roughly what the demo bot produces: ~4 messages per conversation (visitor and bot take
turns; 1-5 turns), channels web 50 %, WhatsApp 25 %, SMS 10 %, email 10 %, REST 5 %, 25
intents with a Zipf-like spread, outcomes flow 55 %, knowledge 20 %, smalltalk 10 %,
fallback 7 %, abstained 4 %, handoff 4 % (a handoff also records a handoff request), bot
replies with a payload as the gateway stores it. Rows go in by COPY.

Then it times `admin_api.analytics.summarise` for the whole period: the first call on a
fresh engine and --runs more (PostgreSQL's buffers may still hold the table from seeding;
the OS cache is not dropped), and, separately, the unanswered questions: fetching the latest
1,000 (admin_api.clusters.CAP) and grouping them, with the encoder's one-off load apart.

Measured 2026-11-28 on 2 CPUs shared with other test runs (load average 11-15), PostgreSQL
15 on the same host (shared_buffers 128 MB), 1,000,000 + 200,000 messages (630 MB with
indexes), ~214,600 conversations, a 90-day period ending today; two runs:
- from the messages alone (as if no day were rolled up): 7.3-8.7 s at the default work_mem
  (4 MB, the grouping spilled to disk) and JIT, 6.0-6.7 s with work_mem 64 MB and JIT off
  for that transaction (analytics.py sets both); a covering index (tenant_id, created_at)
  INCLUDE (sender_id, channel, direction, outcome, intent) did not help: PostgreSQL still
  scans the table, since the period is most of it;
- the first summary, rolling up the 89 finished days: 8.1 s, then 6.7 s (once per shop and
  time zone);
- then: median 183 / 200 ms, max 205 / 292 ms over 5 runs (rollups + today's ~11,000
  messages read live);
- the next day (one more day to roll up): 321 / 330 ms;
- unanswered questions: the latest 1,000 of 55,073 fetched in 52 ms, grouped in 10.8 /
  12.1 s the first time (mostly distinct texts; 7 ms a text on this loaded host), 31 / 62 ms
  again (vectors kept per text), encoder load 1.0 s once per process; 7 topics found for the
  7 seeded.

Usage, from the repository root:
    .venv/bin/python bench/admin_analytics.py [--database-url postgresql://...] \\
        [--messages 1000000] [--days 90] [--runs 5] [--keep]
Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import delete  # noqa: E402

from admin_api.analytics import Period, summarise, unanswered_texts  # noqa: E402
from admin_api.clusters import CAP, group_questions, shared_encoder  # noqa: E402
from admin_api.tables import AnalyticsDayRow, AnalyticsIntentRow  # noqa: E402
from core.db import create_engine, session_factory  # noqa: E402
from core.settings import async_database_url  # noqa: E402
from devtools.bootstrap import migrate  # noqa: E402
from tenants.models import TenantRow  # noqa: E402

log = logging.getLogger("bench.admin_analytics")

DATABASE = "bench_analytics"
CHANNELS = (("web", 50), ("whatsapp", 25), ("sms", 10), ("email", 10), ("rest", 5))
OUTCOMES = (("flow", 55), ("knowledge", 20), ("smalltalk", 10), ("fallback", 7),
            ("abstained", 4), ("handoff", 4))
INTENTS = ("order_status", "return_request", "greet", "goodbye", "thank", "ask_shipping",
           "ask_payment", "ask_opening_hours", "human_handoff", "affirm", "deny",
           "ask_size_guide", "ask_discount", "cancel_order", "change_address", "ask_stock",
           "ask_warranty", "complain", "ask_invoice", "ask_delivery_time", "bot_challenge",
           "ask_gift_card", "ask_exchange", "ask_price_match", "out_of_scope")
FLOW_TEXTS = ("where is my order?", "I want to return the shoes", "hi", "thanks a lot",
              "#1001", "alex@example.com", "how long does shipping take?", "yes", "no",
              "do you take paypal?", "when are you open?", "can I talk to a person")
# What visitors ask that the bot cannot answer: topics, each phrased several ways.
UNANSWERED_TOPICS = (
    ("Do you offer gift wrapping?", "can you wrap my order as a present",
     "is gift wrap available?", "can I get it gift wrapped"),
    ("how do loyalty points work", "how do I redeem my loyalty points",
     "where can I see my reward points"),
    ("do you ship to canada", "do you deliver internationally", "can you send it abroad"),
    ("is there a student discount", "do students get a discount"),
    ("can I pick up my order in store", "is click and collect possible"),
    ("are your products vegan", "is the leather real or vegan"),
    ("do you have a size chart for kids", "what size should my child take"),
)
# Said around a question, so that most unanswered texts are distinct (the worst case for
# grouping: fewer exact repeats to fold).
OPENINGS = ("", "hi, ", "hello! ", "quick question: ", "sorry, ", "Hey ")
ENDINGS = ("", "?", " please", " thanks", " - asking for order {n}", " (order #{n})")
BOT_TEXT = "Thanks! Your order #1001 was shipped on Monday and should arrive within 3 days."
COLUMNS = ("tenant_id", "sender_id", "channel", "direction", "message_id", "text", "payload",
           "created_at", "intent", "confidence", "outcome", "attempts")


def weighted(choices: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    return [c for c, _ in choices], [w for _, w in choices]


def conversations(tenant_id: str, messages: int, first: date, days: int,
                  rng: random.Random) -> Iterator[tuple[list[tuple[Any, ...]], tuple[Any, ...]
                                                       | None]]:
    """Conversations until `messages` rows: (message rows, handoff request row or None)."""
    channels, channel_weights = weighted(CHANNELS)
    outcomes, outcome_weights = weighted(OUTCOMES)
    intent_weights = [1 / (rank + 1) for rank in range(len(INTENTS))]
    start = datetime.combine(first, datetime.min.time(), UTC)
    # Until an hour ago (a conversation lasts minutes): the last day is today, partly over.
    span = min(days * 86400.0, (datetime.now(UTC) - start).total_seconds()) - 3600
    made = 0
    while made < messages:
        channel = rng.choices(channels, channel_weights)[0]
        sender = f"{tenant_id}:{channel}:{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"
        at = start + timedelta(seconds=rng.uniform(0, span))
        rows: list[tuple[Any, ...]] = []
        handoff: tuple[Any, ...] | None = None
        for _ in range(min(rng.choice((1, 2, 2, 2, 3, 4)), (messages - made + 1) // 2)):
            outcome = rng.choices(outcomes, outcome_weights)[0]
            if outcome in ("fallback", "abstained"):
                text = (rng.choice(OPENINGS) + rng.choice(rng.choice(UNANSWERED_TOPICS))
                        + rng.choice(ENDINGS).format(n=rng.randint(1000, 99999)))
                intent = "out_of_scope" if outcome == "fallback" else "ask_question"
            else:
                text = rng.choice(FLOW_TEXTS)
                intent = rng.choices(INTENTS, intent_weights)[0]
            provider_id = None if channel == "web" else uuid.UUID(
                int=rng.getrandbits(128)).hex
            rows.append((tenant_id, sender, channel, "in", provider_id, text, None, at, intent,
                         round(rng.uniform(0.3, 1.0), 3), outcome, 0))
            at += timedelta(seconds=rng.uniform(1, 5))
            payload: dict[str, Any] = {"messages": [{"recipient_id": sender, "text": BOT_TEXT}]}
            if outcome in ("knowledge", "abstained"):
                payload["knowledge"] = {"mode": "llm" if outcome == "knowledge" else "abstain",
                                        "sources": [{"document": "faq.md", "chunk": 3}]}
            rows.append((tenant_id, sender, channel, "out", None, BOT_TEXT, json.dumps(payload),
                         at, None, None, None, 0))
            at += timedelta(seconds=rng.uniform(5, 120))
            if outcome == "handoff" and handoff is None:
                handoff = (tenant_id, sender, channel, "visitor_asked", text, "open", at)
        made += len(rows)
        yield rows, handoff


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate(base: str, drop_only: bool = False) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {DATABASE}")


async def add_shops(url: str, ids: list[str]) -> None:
    engine = create_engine(async_database_url(url))
    sessions = session_factory(engine)
    async with sessions() as session:
        for n, tenant_id in enumerate(ids):
            session.add(TenantRow(id=tenant_id, slug=f"bench-{n}", name=f"Bench {n}"))
        await session.commit()
    await engine.dispose()


def seed(url: str, shops: list[tuple[str, int]], first: date, days: int) -> None:
    rng = random.Random(13)
    began = time.perf_counter()
    with psycopg.connect(url) as conn:
        for tenant_id, messages in shops:
            handoffs: list[tuple[Any, ...]] = []
            written = 0
            with conn.cursor() as cursor, cursor.copy(
                    f"COPY messages ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for rows, handoff in conversations(tenant_id, messages, first, days, rng):
                    for row in rows:
                        copy.write_row(row)
                    written += len(rows)
                    if handoff:
                        handoffs.append(handoff)
                    if written % 100_000 < len(rows):
                        print(f"  seeded {written:,} messages "
                              f"({time.perf_counter() - began:.0f} s)", file=sys.stderr)
            with conn.cursor() as cursor, cursor.copy(
                    "COPY handoff_requests (tenant_id, sender_id, channel, reason, "
                    "last_message, status, created_at) FROM STDIN") as copy:
                for handoff in handoffs:
                    copy.write_row(handoff)
            conn.commit()
            print(f"  shop {tenant_id[:8]}: {written:,} messages, {len(handoffs):,} handoffs",
                  file=sys.stderr)
    with psycopg.connect(url, autocommit=True) as conn:
        # What autovacuum does soon after a bulk load: statistics and the visibility map.
        conn.execute("VACUUM ANALYZE messages")
        conn.execute("VACUUM ANALYZE handoff_requests")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('messages'))"
                            ).fetchone()
    print(f"seeded in {time.perf_counter() - began:.0f} s; messages table with indexes: "
          f"{size[0] if size else '?'}", file=sys.stderr)


async def measure(url: str, shop: str, period: Period, runs: int) -> dict[str, Any]:
    engine = create_engine(async_database_url(url))
    sessions = session_factory(engine)
    result: dict[str, Any] = {}

    async def clock(**kwargs: Any) -> float:
        began = time.perf_counter()
        result["summary"] = await summarise(sessions, shop, period, **kwargs)
        return time.perf_counter() - began

    try:
        # As if no day had finished: every figure from the messages (no rollups used).
        result["plain"] = [await clock(now=datetime.combine(period.first, datetime.min.time(),
                                                             UTC)) for _ in range(2)]
        result["first"] = await clock()  # rolls up every finished day of the period
        result["warm"] = [await clock() for _ in range(runs)]
        # The next day: one more finished day to roll up.
        async with sessions() as session:
            yesterday = period.last - timedelta(days=1)
            for table in (AnalyticsDayRow, AnalyticsIntentRow):
                await session.execute(delete(table).where(table.day == yesterday))
            await session.commit()
        result["new_day"] = await clock()

        began = time.perf_counter()
        texts = await unanswered_texts(sessions, shop, period, CAP)
        result["fetch"] = time.perf_counter() - began
    finally:
        await engine.dispose()
    began = time.perf_counter()
    await asyncio.to_thread(shared_encoder)
    result["load"] = time.perf_counter() - began
    began = time.perf_counter()
    result["clusters"] = await group_questions(texts)
    result["grouping"] = time.perf_counter() - began
    began = time.perf_counter()
    await group_questions(texts)
    result["regrouping"] = time.perf_counter() - began
    result["texts"] = len(texts)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL server; the bench creates its own database there")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--reuse", action="store_true",
                        help="measure an already seeded bench database (from --keep)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    url = database_url(args.database_url, DATABASE)
    shop, neighbour = "b0000000-0000-4000-8000-000000000001", "b0000000-0000-4000-8000-000000000002"
    # The period ends today, as an owner's "last 90 days" does: today is read live.
    last = datetime.now(UTC).date()
    first = last - timedelta(days=args.days - 1)
    if not args.reuse:
        recreate(args.database_url)
        migrate(url)
        asyncio.run(add_shops(url, [shop, neighbour]))
        print(f"seeding {args.messages:,} messages over {args.days} days ...", file=sys.stderr)
        seed(url, [(shop, args.messages), (neighbour, args.messages // 5)], first, args.days)
    try:
        result = asyncio.run(measure(url, shop, Period(first, last), args.runs))
    finally:
        if not args.keep:
            recreate(args.database_url, drop_only=True)
    summary = result["summary"]
    totals = summary.totals
    warm = result["warm"]
    print(f"shop: {totals.messages_in + totals.messages_out:,} messages, "
          f"{totals.conversations:,} conversations over {args.days} days")
    print(f"summary ({args.days} days, ending today): from the messages alone "
          + ", ".join(f"{t * 1000:.0f}" for t in result["plain"])
          + f" ms; first call rolling up {args.days - 1} finished days "
          f"{result['first'] * 1000:.0f} ms; then median {statistics.median(warm) * 1000:.0f} "
          f"ms, max {max(warm) * 1000:.0f} ms over {len(warm)} runs; with one newly finished "
          f"day to roll up {result['new_day'] * 1000:.0f} ms")
    print(f"containment {totals.containment}, handoff rate {totals.handoff_rate}, "
          f"fallback rate {totals.fallback_rate}, knowledge answers "
          f"{totals.knowledge_answers:,}, abstentions {totals.abstentions:,}")
    print(f"unanswered: {summary.unanswered:,} in the period; latest {result['texts']:,} "
          f"fetched in {result['fetch'] * 1000:.0f} ms, grouped in "
          f"{result['grouping'] * 1000:.0f} ms (again: {result['regrouping'] * 1000:.0f} ms; "
          f"encoder load {result['load'] * 1000:.0f} ms, "
          f"once per process) into {len(result['clusters'])} clusters; largest: "
          + "; ".join(f"{c.question!r} x{c.count}" for c in result["clusters"][:3]))


if __name__ == "__main__":
    main()
