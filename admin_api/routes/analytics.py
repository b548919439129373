"""The shop's analytics for a range of days (owners and designers read them).

`GET /analytics/summary` answers the figures (admin_api/analytics.py says what each one
counts) with the unanswered questions grouped into topics (admin_api/clusters.py);
`GET /analytics/unanswered` answers the topics alone, with more of them. Grouping embeds up
to clusters.CAP texts (seconds the first time), so its result is kept per shop and period
(admin_api/topics.py), and the summary waits for it at most SUMMARY_WAIT: past that the figures
are answered with `unanswered.ready` false while the grouping goes on in the background; the
page asks `GET /analytics/unanswered` (which waits for it) or the summary again.

"Unanswered" is what the bot could not handle: fallbacks, abstentions, and the message a
second misunderstanding in a row handed to a person (admin_api/analytics.py).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from admin_api import analytics, clusters, topics
from admin_api.api import API, Call, Model
from admin_api.principal import DESIGNERS

log = logging.getLogger(__name__)

SUMMARY_WAIT = 2.0  # seconds the summary waits for the questions' grouping


DEFAULT_DAYS = 30  # the period when none is asked for: the last 30 days, today included


class RangeQuery(Model):
    first: date | None = Field(None, alias="from", description="first day (YYYY-MM-DD), "
                               f"inclusive; default: {DEFAULT_DAYS - 1} days before `to`")
    last: date | None = Field(None, alias="to", description="last day (YYYY-MM-DD), inclusive, "
                              f"at most {analytics.MAX_DAYS} days after `from`; default: today "
                              "in `tz`")
    tz: str = Field("UTC", max_length=64,
                    description="IANA time zone the days are counted in, e.g. Europe/Berlin")

    @model_validator(mode="after")
    def _a_period(self) -> RangeQuery:
        self.period()  # BadRange is a ValueError: pydantic reports it as a 422
        return self

    def period(self) -> analytics.Period:
        last = self.last
        if last is None:
            zone = self.tz if self.tz in analytics.zones() else "UTC"  # Period says it is bad
            last = datetime.now(ZoneInfo(zone)).date()
        first = self.first or last - timedelta(days=DEFAULT_DAYS - 1)
        return analytics.Period(first, last, self.tz)


class UnansweredQuery(RangeQuery):
    limit: int = Field(50, ge=1, le=500, description="how many topics, largest first")


class FiguresOut(Model):
    conversations: int = Field(description="visitor threads with a message, counted once per "
                                           "day they were active (days add up to the totals)")
    handed_off: int = Field(description="of these, conversations handed to a human")
    messages_in: int
    messages_out: int
    fallbacks: int = Field(description="visitor messages the bot did not understand")
    knowledge_answers: int = Field(description="visitor messages answered from the knowledge "
                                               "base")
    abstentions: int = Field(description="questions the knowledge base could not answer")
    not_answered: int = Field(description="conversations with no human involved in which the "
                                          "bot could not answer at least once (a fallback or "
                                          "an abstention): the Conversations tab's outcome "
                                          "'fallback'")
    contained: int = Field(description="conversations the bot handled alone, answering every "
                                       "message: the Conversations tab's outcome 'contained'")
    containment: float | None = Field(description="contained / conversations; null without "
                                                  "conversations")
    handoff_rate: float | None
    fallback_rate: float | None = Field(description="fallbacks / messages_in")

    @staticmethod
    def fields_of(figures: analytics.Figures) -> dict[str, Any]:
        return {"conversations": figures.conversations, "handed_off": figures.handed_off,
                "messages_in": figures.messages_in, "messages_out": figures.messages_out,
                "fallbacks": figures.fallbacks, "knowledge_answers": figures.knowledge_answers,
                "abstentions": figures.abstentions, "not_answered": figures.not_answered,
                "contained": figures.contained, "containment": figures.containment,
                "handoff_rate": figures.handoff_rate, "fallback_rate": figures.fallback_rate}


class ChannelOut(FiguresOut):
    channel: str


class DayOut(FiguresOut):
    date: date
    channels: list[ChannelOut] = Field(description="the day's figures per channel (channels "
                                                   "without messages that day are left out)")


class IntentCount(Model):
    name: str = Field(description="the intent's name in the training data, e.g. nlu_fallback")
    label: str = Field(description="what it means, for people: e.g. 'Not understood'")
    count: int


class ClusterOut(Model):
    question: str = Field(description="the phrasing that stands for the topic")
    count: int = Field(description="how many times a question of this topic was asked")
    examples: list[str] = Field(description="a few other phrasings")


class UnansweredOut(Model):
    total: int = Field(description="visitor messages of the period the bot could not answer "
                                   "(fallback, abstained, or handed to a person after a "
                                   "second misunderstanding in a row)")
    ready: bool = Field(description="false while the questions are still being grouped (the "
                                    "summary does not wait long): ask again shortly")
    grouped: int = Field(description=f"how many of the latest were grouped (at most "
                                     f"{clusters.CAP})")
    clusters: list[ClusterOut] = Field(description="topics, largest first")


class SummaryOut(Model):
    first_day: date
    last_day: date
    tz: str
    totals: FiguresOut
    days: list[DayOut] = Field(description="every day of the period, zeros included")
    channels: list[ChannelOut] = Field(description="per channel over the whole period")
    top_intents: list[IntentCount]
    top_intents_by_channel: dict[str, list[IntentCount]]
    unanswered: UnansweredOut


async def _unanswered(call: Call[Any, Any], period: analytics.Period, total: int,
                      limit: int, wait: float | None) -> UnansweredOut:
    """The period's unanswered questions as topics (admin_api/topics.py: cached, or grouped
    now waiting at most `wait` seconds; None: until done)."""
    entry = await topics.grouped(call, period, wait)
    if entry is None:
        return UnansweredOut(total=total, ready=False, grouped=0, clusters=[])
    return UnansweredOut(total=total, ready=True, grouped=entry.grouped, clusters=[
        ClusterOut(question=c.question, count=c.count, examples=list(c.examples))
        for c in entry.found[:limit]])


def _intents(pairs: list[tuple[str, int]]) -> list[IntentCount]:
    return [IntentCount(name=name, label=analytics.intent_label(name), count=count)
            for name, count in pairs]


@API.route("GET", "/analytics/summary", roles=DESIGNERS, query=RangeQuery,
           response=SummaryOut, summary="Summarise the shop's conversations for a period")
async def analytics_summary(call: Call[None, RangeQuery]) -> SummaryOut:
    """Totals, each day and each channel of the period: conversations, messages, containment,
    handoff and fallback rates, knowledge answers and abstentions, top intents, and the
    questions the bot could not answer grouped by meaning (the 10 largest topics)."""
    period = call.query.period()
    summary = await analytics.summarise(call.ctx.sessions, call.shop, period)
    misunderstood = await analytics.count_misunderstood_handoffs(call.ctx.sessions, call.shop,
                                                                 period)
    return SummaryOut(
        first_day=period.first, last_day=period.last, tz=period.tz,
        totals=FiguresOut(**FiguresOut.fields_of(summary.totals)),
        days=[DayOut(date=day.day, **FiguresOut.fields_of(day.figures), channels=[
            ChannelOut(channel=name, **FiguresOut.fields_of(figures))
            for name, figures in day.channels.items()]) for day in summary.days],
        channels=[ChannelOut(channel=name, **FiguresOut.fields_of(figures))
                  for name, figures in summary.channels.items()],
        top_intents=_intents(summary.top_intents),
        top_intents_by_channel={channel: _intents(pairs)
                                for channel, pairs in summary.intents_by_channel.items()},
        unanswered=await _unanswered(call, period, summary.unanswered + misunderstood, 10,
                                     SUMMARY_WAIT))


@API.route("GET", "/analytics/unanswered", roles=DESIGNERS, query=UnansweredQuery,
           response=UnansweredOut, summary="Group the questions the bot could not answer")
async def analytics_unanswered(call: Call[None, UnansweredQuery]) -> UnansweredOut:
    """The period's visitor messages that ended in a fallback or an abstention (or a handoff
    after a second misunderstanding in a row), grouped by meaning into topics with a
    representative question and a count, largest first."""
    period = call.query.period()
    total = await analytics.count_unanswered(call.ctx.sessions, call.shop, period)
    return await _unanswered(call, period, total, call.query.limit, None)


class DurationsOut(Model):
    count: int = Field(description="handoffs that have this span")
    average_seconds: float | None
    median_seconds: float | None
    p90_seconds: float | None = Field(description="nine in ten took at most this long")

    @classmethod
    def of(cls, d: analytics.Durations) -> DurationsOut:
        return cls(count=d.count, average_seconds=d.average, median_seconds=d.median,
                   p90_seconds=d.p90)


class RatingsOut(Model):
    count: int = Field(description="visitors who answered the satisfaction question")
    average: float | None = Field(description="their average rating, 1 (poor) to 5 (great)")

    @classmethod
    def of(cls, r: analytics.Ratings) -> RatingsOut:
        return cls(count=r.count, average=r.average)


class ChannelRatingsOut(RatingsOut):
    channel: str


class AgentOut(Model):
    id: str = Field(description="a person's user id, or key:<prefix> for an agent API key")
    name: str
    resolved: int = Field(description="handoffs they held when they were resolved")
    handling: DurationsOut
    satisfaction: RatingsOut


class HandoffsOut(Model):
    first_day: date
    last_day: date
    tz: str
    requested: int = Field(description="handoffs requested in the period (the figures below "
                                       "are about these)")
    answered: int = Field(description="of these, ones a person replied to")
    resolved: int = Field(description="of these, ones handed back to the bot")
    waiting: DurationsOut = Field(description="from the request to the first human reply")
    handling: DurationsOut = Field(description="from the claim (or the last transfer) to the "
                                               "resolution")
    conversations: int = Field(description="as in the summary: visitor threads per day")
    resolved_by_bot: int = Field(description="conversations the bot handled alone, answering "
                                             "every message (the summary's contained)")
    resolved_by_human: int = Field(description="conversations whose handoff a person resolved")
    satisfaction: RatingsOut
    satisfaction_by_channel: list[ChannelRatingsOut]
    agents: list[AgentOut] = Field(description="most resolved first")


@API.route("GET", "/analytics/handoffs", roles=DESIGNERS, query=RangeQuery,
           response=HandoffsOut, summary="Summarise the handoffs to people for a period")
async def analytics_handoffs(call: Call[None, RangeQuery]) -> HandoffsOut:
    """For the handoffs requested in the period: the waiting time to the first human reply,
    the handling time, conversations resolved by the bot alone versus by a person, and the
    visitors' satisfaction ratings overall, by channel and by agent."""
    period = call.query.period()
    found = await analytics.summarise_handoffs(call.ctx.sessions, call.shop, period)
    return HandoffsOut(
        first_day=period.first, last_day=period.last, tz=period.tz, requested=found.requested,
        answered=found.answered, resolved=found.resolved,
        waiting=DurationsOut.of(found.waiting), handling=DurationsOut.of(found.handling),
        conversations=found.conversations, resolved_by_bot=found.resolved_by_bot,
        resolved_by_human=found.resolved_by_human,
        satisfaction=RatingsOut.of(found.satisfaction),
        satisfaction_by_channel=[ChannelRatingsOut(channel=c, **RatingsOut.of(r).model_dump())
                                 for c, r in found.satisfaction_by_channel.items()],
        agents=[AgentOut(id=a.id, name=a.name, resolved=a.resolved,
                         handling=DurationsOut.of(a.handling),
                         satisfaction=RatingsOut.of(a.satisfaction)) for a in found.agents])
