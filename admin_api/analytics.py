"""A shop's analytics for a range of days, computed from our conversation records.

What is counted (the owner page and `GET /analytics/summary` show these):

- a *conversation* is one visitor thread (a sender id, "{tenant}:{channel}:{user}") on one
  calendar day: a visitor who comes back another day starts another one, as Rasa starts a new
  session after an hour of silence; so the days and the channels add up to the totals;
- a conversation *involved a human* when the bot handed it off that day: an inbound message
  whose outcome is "handoff", or a handoff request (actions record one); handoff rate = the
  share that did;
- a conversation is *not answered* when no human was involved but at least one of its
  messages ended in a fallback or an abstention, and *contained* when neither: the
  Conversations tab's outcomes handoff, fallback and contained, from the one definition
  (core/conversations.py `conversation_outcome`); containment = the contained share. (Until
  2026-12 containment was every conversation without a human, so a conversation the list
  showed as "fallback" counted as contained: an owner saw two answers for the same data.)
- fallback rate = inbound messages whose outcome is "fallback" / inbound messages;
  knowledge answers and abstentions count inbound messages with those outcomes;
- top intents count inbound messages by the intent Rasa gave them (named for people by
  `intent_label`);
- unanswered messages (grouped into topics by admin_api/topics.py) are the ones the bot could
  not handle: outcome fallback or abstained, and the message a second misunderstanding in a
  row handed to a person (found through its handoff request, reason "misunderstood").

Speed (bench/admin_analytics.py, 1 million messages over 90 days): aggregating the messages
themselves reads every row of the period (the (tenant_id, created_at) index does not help
when the period is most of the shop's rows; with a covering index PostgreSQL still chose the
sequential scan) and took 6-8.7 s on a busy 2-CPU host. So finished days are rolled up
once into analytics_days / analytics_intents (per shop, time zone, day and channel: a few
hundred rows for 90 days), on the first summary that needs them, and only the unfinished
part of the period (today; yesterday until SETTLE after midnight) is read from the messages
on every call: 183-200 ms median there, ~330 ms when a new day is rolled up. The first
summary of a shop's whole history pays the full scan once (6.7-8.1 s there). Numbers in the
bench's docstring.

Rolled-up days are not recomputed: messages deleted later (retention, a visitor's erasure)
leave their day's counts, which hold no personal data; an outcome written more than SETTLE
after its day ended is not counted.

Days are calendar days in the caller's time zone (UTC by default; rollups are kept per zone).
PostgreSQL converts each timestamp exactly (AT TIME ZONE); SQLite, the embedded store for
small shops, shifts by the zone's offset at the start of the range (a DST change inside the
range moves that hour's messages by a day there).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from admin_api.tables import AnalyticsDayRow, AnalyticsIntentRow
from core.conversations import MISSED, HandoffRow, conversation_outcome
from tenants.models import TenantRow

MAX_DAYS = 366
TOP_INTENTS = 10
# A day is rolled up once it ended this long ago: its last turns are answered (outcome set)
# within seconds; an hour leaves room for a slow LLM answer or a gateway retry.
SETTLE = timedelta(hours=1)


class BadRange(ValueError):
    """The requested period cannot be summarised (reversed, too long, unknown zone)."""


@lru_cache(maxsize=1)
def zones() -> frozenset[str]:
    """IANA zone names (the same database PostgreSQL's AT TIME ZONE reads, checked: every
    one of these is in pg_timezone_names), so a name we accept never fails in SQL."""
    return frozenset(available_timezones())


@dataclass(frozen=True)
class Period:
    """Calendar days `first`..`last` (inclusive) in time zone `tz`."""

    first: date
    last: date
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise BadRange("`from` is after `to`")
        if self.days > MAX_DAYS:
            raise BadRange(f"at most {MAX_DAYS} days at once")
        if self.tz not in zones():
            raise BadRange(f"unknown time zone {self.tz!r} (an IANA name, e.g. Europe/Berlin)")

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def bounds(self) -> tuple[datetime, datetime]:
        """[start, end) in UTC: local midnight of the first day to local midnight after the
        last (zoneinfo resolves DST gaps)."""
        start = datetime.combine(self.first, time(), self.zone)
        end = datetime.combine(self.last + timedelta(days=1), time(), self.zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def each_day(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]


@dataclass(frozen=True)
class Figures:
    """Counts for one slice (a day, a channel, a day on a channel, or the whole period)."""

    conversations: int = 0
    handed_off: int = 0  # conversations with a human involved
    messages_in: int = 0
    messages_out: int = 0
    fallbacks: int = 0
    knowledge_answers: int = 0
    abstentions: int = 0
    not_answered: int = 0  # conversations without a human with a fallback or abstention

    @property
    def contained(self) -> int:
        """Conversations the bot handled alone, answering every message."""
        return self.conversations - self.handed_off - self.not_answered

    @property
    def containment(self) -> float | None:
        """Share of conversations contained (None without conversations)."""
        if not self.conversations:
            return None
        return round(self.contained / self.conversations, 4)

    @property
    def handoff_rate(self) -> float | None:
        if not self.conversations:
            return None
        return round(self.handed_off / self.conversations, 4)

    @property
    def fallback_rate(self) -> float | None:
        """Share of the visitors' messages the bot did not understand."""
        if not self.messages_in:
            return None
        return round(self.fallbacks / self.messages_in, 4)

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(a + b for a, b in zip(_counts(self), _counts(other), strict=True)))


def _counts(figures: Figures) -> tuple[int, ...]:
    return (figures.conversations, figures.handed_off, figures.messages_in,
            figures.messages_out, figures.fallbacks, figures.knowledge_answers,
            figures.abstentions, figures.not_answered)


@dataclass(frozen=True)
class Day:
    day: date
    figures: Figures
    channels: dict[str, Figures]


@dataclass(frozen=True)
class Summary:
    period: Period
    totals: Figures
    days: list[Day]
    channels: dict[str, Figures]  # over the whole period
    top_intents: list[tuple[str, int]]
    intents_by_channel: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def unanswered(self) -> int:
        """Inbound messages that ended in a fallback or an abstention (the routes add the
        handoffs after a second misunderstanding: `count_misunderstood_handoffs`)."""
        return self.totals.fallbacks + self.totals.abstentions


def _day_sql(dialect: str, period: Period) -> tuple[str, dict[str, Any]]:
    """The SQL for the local calendar day of `created_at`, and its parameters."""
    if dialect == "postgresql":
        return "CAST((created_at AT TIME ZONE :tz) AS DATE)", {"tz": period.tz}
    offset = period.zone.utcoffset(datetime.combine(period.first, time()))
    minutes = int((offset or timedelta()).total_seconds() // 60)
    return "date(created_at, :offset)", {"offset": f"{minutes:+d} minutes"}


def _outcome_sql(dialect: Dialect) -> str:
    """A thread's outcome over the columns of `_figures_sql`'s threads, written by the one
    definition the Conversations tab's list uses."""
    outcome = conversation_outcome(literal_column("handed_off") == 1,
                                   literal_column("n_missed") > 0)
    return str(outcome.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


_MISSED_SQL = ", ".join(f"'{outcome}'" for outcome in MISSED)


def _figures_sql(day: str, dialect: Dialect) -> str:
    """Rows (day, channel, conversations, handed_off, messages_in, messages_out, fallbacks,
    knowledge_answers, abstentions, not_answered) from the messages themselves: grouped by
    day and thread, then by day and channel, so the database answers a few hundred rows."""
    return f"""
        WITH rows AS (
            SELECT {day} AS day, channel, sender_id, direction, outcome
            FROM messages
            WHERE tenant_id = :tenant AND created_at >= :start AND created_at < :end
            UNION ALL
            SELECT {day}, channel, sender_id, 'handoff', 'handoff'
            FROM handoff_requests
            WHERE tenant_id = :tenant AND created_at >= :start AND created_at < :end
        ), threads AS (
            SELECT day, channel, sender_id,
                   count(*) FILTER (WHERE direction = 'in') AS n_in,
                   count(*) FILTER (WHERE direction = 'out') AS n_out,
                   count(*) FILTER (WHERE direction = 'in' AND outcome = 'fallback') AS n_fb,
                   count(*) FILTER (WHERE direction = 'in' AND outcome = 'knowledge') AS n_kn,
                   count(*) FILTER (WHERE direction = 'in' AND outcome = 'abstained') AS n_ab,
                   count(*) FILTER (WHERE direction = 'in' AND outcome IN ({_MISSED_SQL}))
                       AS n_missed,
                   max(CASE WHEN outcome = 'handoff' THEN 1 ELSE 0 END) AS handed_off
            FROM rows GROUP BY day, channel, sender_id
        )
        SELECT day, channel, count(*), sum(handed_off), sum(n_in), sum(n_out), sum(n_fb),
               sum(n_kn), sum(n_ab),
               sum(CASE WHEN {_outcome_sql(dialect)} = 'fallback' THEN 1 ELSE 0 END)
        FROM threads GROUP BY day, channel"""


def _intents_sql(day: str) -> str:
    return f"""
        SELECT {day} AS day, channel, intent, count(*) FROM messages
        WHERE tenant_id = :tenant AND created_at >= :start AND created_at < :end
          AND direction = 'in' AND intent IS NOT NULL
        GROUP BY 1, channel, intent"""


# The messages the bot could not handle: outcome fallback or abstained, and the message a
# second misunderstanding in a row handed to a person (actions/escalation.py): that turn's
# outcome is "handoff", so it is found through its handoff request (reason "misunderstood",
# last_message its text; the first misunderstood turn of the two is a fallback or
# abstention already). Handoff requests are few next to messages and read by tenant_id.
_MISUNDERSTOOD_COUNT_SQL = """
    SELECT count(*) FROM handoff_requests
    WHERE tenant_id = :tenant AND created_at >= :start AND created_at < :end
      AND reason = 'misunderstood'"""

_UNANSWERED_COUNT_SQL = f"""
    SELECT (SELECT count(*) FROM messages
            WHERE tenant_id = :tenant AND created_at >= :start AND created_at < :end
              AND direction = 'in' AND outcome IN ('fallback', 'abstained'))
         + ({_MISUNDERSTOOD_COUNT_SQL})"""

# (text, the intent NLU gave it, when): the handoff's message has no stored parse here.
_UNANSWERED_SQL = """
    SELECT text, intent, created_at FROM messages
    WHERE tenant_id = :tenant AND created_at >= :start AND created_at < :end
      AND direction = 'in' AND outcome IN ('fallback', 'abstained') AND text IS NOT NULL
    UNION ALL
    SELECT last_message, NULL, created_at FROM handoff_requests
    WHERE tenant_id = :tenant AND created_at >= :start AND created_at < :end
      AND reason = 'misunderstood' AND last_message IS NOT NULL
    ORDER BY 3 DESC, 1
    LIMIT :cap"""


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@dataclass
class _Slices:
    """Figures and intent counts by (day, channel), as read from rollups or messages."""

    figures: dict[tuple[date, str], Figures] = field(default_factory=dict)
    intents: dict[tuple[date, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter))


async def _from_messages(session: AsyncSession, tenant_id: str, period: Period) -> _Slices:
    dialect = session.bind.dialect.name
    day, day_params = _day_sql(dialect, period)
    params = {"tenant": tenant_id, **_bounds(dialect, period), **day_params}
    if dialect == "postgresql" and period.days > 1:
        # For this transaction only: grouping a long period's rows by thread spills to disk
        # at the default 4 MB, and JIT compiling costs ~200 ms for a query run once
        # (measured on 1M messages: 4.9 -> 3.3 s).
        await session.execute(text("SET LOCAL work_mem = '64MB'"))
        await session.execute(text("SET LOCAL jit = off"))
    found = _Slices()
    figures_sql = _figures_sql(day, session.bind.dialect)
    for row in (await session.execute(text(figures_sql), params)).all():
        found.figures[(_as_date(row[0]), row[1])] = Figures(*(int(n or 0) for n in row[2:]))
    for on, channel, intent, count in (await session.execute(text(_intents_sql(day)),
                                                             params)).all():
        found.intents[(_as_date(on), channel)][intent] += int(count)
    return found


async def _from_rollups(session: AsyncSession, tenant_id: str, period: Period) -> _Slices:
    """The stored figures of the period's days; intents summed per channel by the database
    (keyed to the first day: the summary shows them per channel and overall only)."""
    found = _Slices()
    days = AnalyticsDayRow
    rows = await session.execute(select(
        days.day, days.channel, days.conversations, days.handed_off, days.messages_in,
        days.messages_out, days.fallbacks, days.knowledge_answers, days.abstentions,
        days.not_answered).where(
        days.tenant_id == tenant_id, days.tz == period.tz,
        days.day.between(period.first, period.last), days.channel != ""))
    for on, channel, *numbers in rows.all():
        found.figures[(on, channel)] = Figures(*(n or 0 for n in numbers))
    intents = AnalyticsIntentRow
    rows = await session.execute(select(
        intents.channel, intents.intent, func.sum(intents.count)).where(
        intents.tenant_id == tenant_id, intents.tz == period.tz,
        intents.day.between(period.first, period.last)).group_by(
        intents.channel, intents.intent))
    for channel, intent, count in rows.all():
        found.intents[(period.first, channel)][intent] += int(count)
    return found


def _settled(period: Period, now: datetime) -> date | None:
    """The last day of the period whose messages are all in and answered (it ended SETTLE
    ago), or None."""
    last = (now - SETTLE).astimezone(period.zone).date() - timedelta(days=1)
    return min(last, period.last) if last >= period.first else None


async def _roll_up(sessions: async_sessionmaker, tenant_id: str, period: Period) -> None:
    """Store the figures of the period's finished days that are not stored yet."""
    async with sessions() as session:
        stored = dict((await session.execute(select(
            AnalyticsDayRow.day, AnalyticsDayRow.not_answered).where(
            AnalyticsDayRow.tenant_id == tenant_id, AnalyticsDayRow.tz == period.tz,
            AnalyticsDayRow.day.between(period.first, period.last),
            AnalyticsDayRow.channel == ""))).all())
        older = sorted(d for d, not_answered in stored.items() if not_answered is None)
        if older:
            await _add_not_answered(session, tenant_id, Period(older[0], older[-1], period.tz))
        missing = [d for d in period.each_day() if d not in stored]
        if not missing:
            return
        span = Period(missing[0], missing[-1], period.tz)
        found = await _from_messages(session, tenant_id, span)
        key = {"tenant_id": tenant_id, "tz": period.tz}
        day_rows = [{**key, "day": d, "channel": "", **_zero()} for d in span.each_day()]
        day_rows += [{**key, "day": d, "channel": channel, **_columns(figures)}
                     for (d, channel), figures in found.figures.items()]
        intent_rows = [{**key, "day": d, "channel": channel, "intent": intent, "count": n}
                       for (d, channel), counts in found.intents.items()
                       for intent, n in counts.items()]
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        # Two summaries computing the same days at once store the same numbers: first wins.
        await session.execute(insert(AnalyticsDayRow).on_conflict_do_nothing(), day_rows)
        if intent_rows:
            await session.execute(insert(AnalyticsIntentRow).on_conflict_do_nothing(),
                                  intent_rows)
        await session.commit()


async def _add_not_answered(session: AsyncSession, tenant_id: str, span: Period) -> None:
    """Days rolled up before `not_answered` was counted (migration 0013 left it null): count
    it from the messages still kept. Their other figures stay as stored; a message deleted
    since (retention, an erasure) is missing from this one count only."""
    found = await _from_messages(session, tenant_id, span)
    days = AnalyticsDayRow
    stale = (days.tenant_id == tenant_id, days.tz == span.tz,
             days.day.between(span.first, span.last), days.not_answered.is_(None))
    for (on, channel), figures in found.figures.items():
        await session.execute(update(days).where(
            *stale, days.day == on, days.channel == channel).values(
            not_answered=figures.not_answered))
    await session.execute(update(days).where(*stale).values(not_answered=0))
    await session.commit()


def _zero() -> dict[str, int]:
    return _columns(Figures())


def _columns(figures: Figures) -> dict[str, int]:
    return {"conversations": figures.conversations, "handed_off": figures.handed_off,
            "messages_in": figures.messages_in, "messages_out": figures.messages_out,
            "fallbacks": figures.fallbacks, "knowledge_answers": figures.knowledge_answers,
            "abstentions": figures.abstentions, "not_answered": figures.not_answered}


async def roll_up_recent(sessions: async_sessionmaker, tenant_id: str, days: int = 90,
                         tz: str = "UTC", now: datetime | None = None) -> None:
    """Roll up the finished days among the last `days` ahead of time (a periodic job may
    call this), so that no owner's first summary pays for the scan."""
    now = now or datetime.now(UTC)
    today = now.astimezone(ZoneInfo(tz)).date()
    period = Period(today - timedelta(days=days - 1), today, tz)
    settled = _settled(period, now)
    if settled is not None:
        await _roll_up(sessions, tenant_id, Period(period.first, settled, tz))


async def roll_up_every_shop(sessions: async_sessionmaker, days: int = 90,
                             now: datetime | None = None) -> int:
    """`roll_up_recent` for every shop in UTC (the admin process's hourly housekeeping,
    admin_api/retention.py), so owners' first summaries read rollups; returns the shops."""
    async with sessions() as session:
        shop_ids = list((await session.execute(select(TenantRow.id))).scalars())
    for shop_id in shop_ids:
        await roll_up_recent(sessions, shop_id, days, now=now)
    return len(shop_ids)


async def summarise(sessions: async_sessionmaker, tenant_id: str, period: Period,
                    top: int = TOP_INTENTS, now: datetime | None = None) -> Summary:
    """The shop's figures for the period: totals, per day (each day of the period, zeros
    included, with its channels), per channel, top intents.

    Finished days come from the rollups (computed from the messages on first use); the
    rest of the period (today, and yesterday during SETTLE) from the messages each time."""
    settled = _settled(period, now or datetime.now(UTC))
    slices = _Slices()
    if settled is not None:
        closed = Period(period.first, settled, period.tz)
        await _roll_up(sessions, tenant_id, closed)
        async with sessions() as session:
            slices = await _from_rollups(session, tenant_id, closed)
    if settled is None or settled < period.last:
        first_open = period.first if settled is None else settled + timedelta(days=1)
        async with sessions() as session:
            live = await _from_messages(session, tenant_id,
                                        Period(first_open, period.last, period.tz))
        slices.figures.update(live.figures)
        for key, counts in live.intents.items():
            slices.intents[key].update(counts)

    by_day: dict[date, dict[str, Figures]] = defaultdict(dict)
    channels: dict[str, Figures] = {}
    per_channel: dict[str, Counter[str]] = defaultdict(Counter)
    for (on, channel), figures in slices.figures.items():
        by_day[on][channel] = figures
        channels[channel] = channels.get(channel, Figures()) + figures
    for (_, channel), counts in slices.intents.items():
        per_channel[channel].update(counts)
    days = [Day(d, sum(by_day.get(d, {}).values(), Figures()),
                dict(sorted(by_day.get(d, {}).items()))) for d in period.each_day()]
    overall: Counter[str] = Counter()
    for counts in per_channel.values():
        overall.update(counts)
    return Summary(period=period, totals=sum(channels.values(), Figures()), days=days,
                   channels=dict(sorted(channels.items())), top_intents=_top(overall, top),
                   intents_by_channel={c: _top(n, top) for c, n in sorted(per_channel.items())})


# What the base's intents (bot/domain/) mean, in the words of the owner page; a shop's own
# intents (training drafts) read as their names with spaces (`intent_label`).
INTENT_LABELS: dict[str, str] = {
    "affirm": "Said yes",
    "ask_question": "Asked a question",
    "bot_challenge": "Asked if it is a bot",
    "check_order_status": "Order status",
    "deny": "Said no",
    "goodbye": "Said goodbye",
    "greet": "Greeting",
    "human_handoff": "Asked for a person",
    "inform": "Gave details (order number, email, ...)",
    "nlu_fallback": "Not understood",
    "out_of_scope": "Off-topic question",
    "request_return": "Return request",
    "send_media": "Sent a picture or file",
    "stop": "Asked to stop",
    "thank": "Said thanks",
}


def intent_label(name: str) -> str:
    """An intent's name as people read it: "nlu_fallback" -> "Not understood", a shop's
    "gift_wrapping" -> "Gift wrapping"."""
    known = INTENT_LABELS.get(name)
    if known is not None:
        return known
    words = name.replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:] if words else name


def _top(counts: Counter[str], n: int) -> list[tuple[str, int]]:
    # Ties by name, so the same data always reads the same.
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def _sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


ANY_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))


def _bounds(dialect: str, period: Period | None) -> dict[str, Any]:
    """The SQL parameters `start` and `end` of `period` (None: any time)."""
    start, end = period.bounds() if period is not None else ANY_TIME
    if dialect == "sqlite":
        # SQLite stores these as "YYYY-MM-DD HH:MM:SS.ffffff" text in UTC; compare as text.
        return {"start": _sqlite_time(start), "end": _sqlite_time(end)}
    return {"start": start, "end": end}


async def unanswered_turns(sessions: async_sessionmaker, tenant_id: str, period: Period | None,
                           cap: int) -> list[tuple[str, str | None]]:
    """The latest `cap` visitor messages of the period (None: of any time) the bot could not
    handle (see _UNANSWERED_SQL), each with the intent NLU gave it (None when not stored)."""
    async with sessions() as session:
        params = {"tenant": tenant_id, "cap": cap, **_bounds(session.bind.dialect.name, period)}
        rows = (await session.execute(text(_UNANSWERED_SQL), params)).all()
    return [(str(row[0]), None if row[1] is None else str(row[1])) for row in rows]


async def unanswered_texts(sessions: async_sessionmaker, tenant_id: str, period: Period,
                           cap: int) -> list[str]:
    """The latest `cap` visitor messages of the period the bot could not handle."""
    return [said for said, _ in await unanswered_turns(sessions, tenant_id, period, cap)]


async def count_unanswered(sessions: async_sessionmaker, tenant_id: str,
                           period: Period) -> int:
    """How many visitor messages of the period the bot could not handle: fallbacks,
    abstentions and handoffs after a second misunderstanding."""
    async with sessions() as session:
        params = {"tenant": tenant_id, **_bounds(session.bind.dialect.name, period)}
        return int((await session.execute(text(_UNANSWERED_COUNT_SQL), params)).scalar_one())


async def count_misunderstood_handoffs(sessions: async_sessionmaker, tenant_id: str,
                                       period: Period) -> int:
    """Handoffs of the period after a second misunderstanding in a row (the summary's
    unanswered total adds them to its fallbacks and abstentions)."""
    async with sessions() as session:
        params = {"tenant": tenant_id, **_bounds(session.bind.dialect.name, period)}
        return int((await session.execute(text(_MISUNDERSTOOD_COUNT_SQL), params)
                    ).scalar_one())


# -- handoffs: people's side ------------------------------------------------------------------
# Counted over the handoffs *requested* in the period (handoff_requests.created_at), so a
# period's figures do not change when a handoff of last month is resolved today. The shop's
# handoffs are few next to its messages (one per escalation): read once per summary through
# the tenant_id index and measured in Python, the same way on both databases.


@dataclass(frozen=True)
class Durations:
    """Seconds of a span (waiting, handling) over the handoffs that have it."""

    count: int = 0
    average: float | None = None
    median: float | None = None
    p90: float | None = None

    @classmethod
    def of(cls, seconds: list[float]) -> Durations:
        if not seconds:
            return cls()
        ordered = sorted(seconds)

        def rank(share: float) -> float:  # nearest rank: a value that occurred
            return round(ordered[max(0, math.ceil(len(ordered) * share) - 1)], 1)

        return cls(len(ordered), round(sum(ordered) / len(ordered), 1), rank(0.5), rank(0.9))


@dataclass(frozen=True)
class Ratings:
    """The visitors' 1-5 answers to the satisfaction question."""

    count: int = 0
    average: float | None = None

    @classmethod
    def of(cls, ratings: list[int]) -> Ratings:
        if not ratings:
            return cls()
        return cls(len(ratings), round(sum(ratings) / len(ratings), 2))


@dataclass(frozen=True)
class AgentFigures:
    id: str
    name: str
    resolved: int  # handoffs they held when it was resolved
    handling: Durations
    satisfaction: Ratings


@dataclass(frozen=True)
class HandoffSummary:
    period: Period
    requested: int
    answered: int  # a person replied at least once
    resolved: int
    waiting: Durations  # requested -> the first human reply
    handling: Durations  # assigned (claimed or last transferred) -> resolved
    conversations: int  # as in Summary: threads per day
    resolved_by_bot: int  # of these, no human involved (contained)
    resolved_by_human: int  # thread-days whose handoff a person resolved
    satisfaction: Ratings
    satisfaction_by_channel: dict[str, Ratings]
    agents: list[AgentFigures]


def _seconds(end: datetime | None, start: datetime | None) -> float | None:
    if end is None or start is None:
        return None
    return max(0.0, (end - start).total_seconds())


async def summarise_handoffs(sessions: async_sessionmaker, tenant_id: str, period: Period,
                             now: datetime | None = None) -> HandoffSummary:
    """Waiting time to the first human reply, handling time, who resolved the period's
    conversations (the bot alone or a person) and the visitors' ratings by channel and by
    agent."""
    start, end = period.bounds()
    h = HandoffRow
    async with sessions() as session:
        rows = (await session.execute(select(
            h.sender_id, h.channel, h.status, h.created_at, h.assigned_at, h.first_reply_at,
            h.resolved_at, h.resolved_by, h.assignee_id, h.assignee_name, h.rating).where(
            h.tenant_id == tenant_id, h.created_at >= start, h.created_at < end))).all()
    waiting: list[float] = []
    handling: list[float] = []
    ratings: list[int] = []
    by_channel: dict[str, list[int]] = defaultdict(list)
    agents: dict[str, dict[str, Any]] = {}
    human_days: set[tuple[str, date]] = set()
    resolved = answered = 0
    for row in rows:
        wait = _seconds(row.first_reply_at, row.created_at)
        if wait is not None:
            answered += 1
            waiting.append(wait)
        if row.rating is not None:
            ratings.append(row.rating)
            by_channel[row.channel].append(row.rating)
        if row.status != "resolved":
            continue
        resolved += 1
        human_days.add((row.sender_id, row.created_at.astimezone(period.zone).date()))
        held = _seconds(row.resolved_at, row.assigned_at)
        if held is not None:
            handling.append(held)
        who = row.assignee_id or row.resolved_by
        if who is None:
            continue
        agent = agents.setdefault(who, {"name": row.assignee_name or who, "resolved": 0,
                                        "handling": [], "ratings": []})
        agent["resolved"] += 1
        if held is not None:
            agent["handling"].append(held)
        if row.rating is not None:
            agent["ratings"].append(row.rating)
    totals = (await summarise(sessions, tenant_id, period, now=now)).totals
    return HandoffSummary(
        period=period, requested=len(rows), answered=answered, resolved=resolved,
        waiting=Durations.of(waiting), handling=Durations.of(handling),
        conversations=totals.conversations,
        resolved_by_bot=totals.contained,
        resolved_by_human=len(human_days), satisfaction=Ratings.of(ratings),
        satisfaction_by_channel={c: Ratings.of(r) for c, r in sorted(by_channel.items())},
        agents=sorted((AgentFigures(who, a["name"], a["resolved"], Durations.of(a["handling"]),
                                    Ratings.of(a["ratings"])) for who, a in agents.items()),
                      key=lambda a: (-a.resolved, a.name, a.id)))
