"""bench/admin_analytics.py's seed: the mix it promises (no database)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from bench.admin_analytics import conversations, database_url


def test_the_seed_has_the_promised_mix_and_is_reproducible() -> None:
    first = date(2026, 1, 1)
    made = list(conversations("shop", 20_000, first, 90, random.Random(13)))
    rows = [row for messages, _ in made for row in messages]
    assert len(rows) == 20_000
    assert 3.5 <= len(rows) / len(made) <= 5  # ~4 messages a conversation
    inbound = [row for row in rows if row[3] == "in"]
    assert len(inbound) == len(rows) // 2  # every visitor message has its reply
    outcomes = Counter(row[10] for row in inbound)
    assert abs(outcomes["flow"] / len(inbound) - 0.55) < 0.02
    assert abs(outcomes["fallback"] / len(inbound) - 0.07) < 0.01
    channels = Counter(row[2] for row in rows)
    assert abs(channels["web"] / len(rows) - 0.5) < 0.03 and set(channels) == {
        "web", "whatsapp", "sms", "email", "rest"}
    handed = {messages[0][1] for messages, handoff in made if handoff}
    assert handed == {messages[0][1] for messages, _ in made
                      if any(row[10] == "handoff" for row in messages)}
    start = datetime.combine(first, datetime.min.time(), UTC)
    assert all(start <= row[7] < start + timedelta(days=90) for row in rows)
    unanswered = {row[5] for row in inbound if row[10] in ("fallback", "abstained")}
    assert len(unanswered) > 500  # mostly distinct texts: grouping's worst case
    again = list(conversations("shop", 20_000, first, 90, random.Random(13)))
    assert [m for m, _ in again] == [m for m, _ in made]


def test_the_bench_works_in_a_database_of_its_own() -> None:
    assert database_url("postgresql://postgres@127.0.0.1:5432/test", "bench_analytics") == (
        "postgresql://postgres@127.0.0.1:5432/bench_analytics")
