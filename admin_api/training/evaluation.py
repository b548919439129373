"""A trained version's tests and comparison (issue 15), the admin's half: what the workshop is
given (bot/workshop.py POST /evaluate) and how the `model.train` job follows it once the
training is done (admin_api/training/jobs.py).

The version is compared with the shop's active version as it is when the training ends (its
snapshot's drafts, so the workshop can compute that data set's held-out figures; cached there
by fingerprint) or, when the shop serves the base model, with the base. The visitor messages
are the shop's distinct visitor texts of the last DAYS days, newest first, at most
MAX_MESSAGES, with their personal data masked (admin_api/visitor_text.py) before they leave
this process: they come back as the routing change's examples, which GET /models/{id} shows to
designers. Button payloads ("/affirm") are
left out: they name their intent and no model routes them differently.

An evaluation never fails the version: the model trained, and a designer may still want it.
Whatever goes wrong (the workshop's error, a missing model file, no answer for UNREACHABLE
seconds, past DEADLINE) is stored as `{"error": "<sentence>"}` and the version is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from admin_api.training.models import get_active, get_version
from admin_api.visitor_text import masked
from admin_api.workshop import (
    Evaluation,
    TrainingConflict,
    UnknownVersion,
    WorkshopClient,
    WorkshopUnavailable,
)
from core.conversations import MessageRow
from core.db import utcnow

log = logging.getLogger(__name__)

DAYS = 30
MAX_MESSAGES = 2000
# Measured here (2 cores): base + a small overlay, nothing cached, 39-47 s with the process's
# start (held out 29-33 s of it); with the base's held-out figures cached about 25 s. A queue
# of other shops' trainings may come first.
DEADLINE = 1800.0
UNREACHABLE = 300.0  # as for training (admin_api/training/jobs.py)




async def visitor_texts(sessions: async_sessionmaker, tenant_id: str, days: int = DAYS,
                        cap: int = MAX_MESSAGES) -> list[str]:
    """The shop's distinct visitor texts of the last `days`, newest first, masked."""
    last = func.max(MessageRow.created_at).label("last")
    async with sessions() as session:
        rows = (await session.execute(
            select(MessageRow.text, last)
            .where(MessageRow.tenant_id == tenant_id, MessageRow.direction == "in",
                   MessageRow.created_at >= utcnow() - timedelta(days=days),
                   MessageRow.text.is_not(None), ~MessageRow.text.startswith("/"))
            .group_by(MessageRow.text).order_by(last.desc(), MessageRow.text).limit(cap))).all()
    shown: dict[str, None] = {}  # two texts may mask to one
    for text, _ in rows:
        cleaned = masked(str(text))
        if cleaned:
            shown.setdefault(cleaned, None)
    return list(shown)


async def comparison(sessions: async_sessionmaker,
                     tenant_id: str) -> tuple[str | None, dict[str, str]]:
    """What to compare with: the shop's active version and its drafts, or (None, {}) for the
    base."""
    active = await get_active(sessions, tenant_id)
    if active.version_id is None:
        return None, {}
    version = await get_version(sessions, tenant_id, active.version_id)
    if version is None:  # cannot be (a foreign key), but the base is a sound comparison
        return None, {}
    return version.id, version.files


Say = Callable[[str], Awaitable[None]]


async def follow(workshop: WorkshopClient, shop: str, version_id: str,
                 files: Mapping[str, str], against: str | None,
                 against_files: Mapping[str, str], messages: list[str], *, say: Say,
                 report: Callable[[float], None], poll: float,
                 unreachable: float = UNREACHABLE,
                 deadline: float = DEADLINE) -> dict[str, Any]:
    """The workshop's result, or {"error": ...}; submits again when the workshop forgot it."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + deadline
    silent_since: float | None = None
    submitted = False
    extra = {"tenant_id": shop, "version": version_id}
    while True:
        status: Evaluation | None = None
        try:
            if submitted:
                status = await workshop.evaluation(version_id)
            else:
                status = await workshop.evaluate(shop, version_id, files, against,
                                                 against_files, messages)
                submitted = True
            silent_since = None
        except UnknownVersion as exc:
            if not submitted:  # POST: a model file is missing there
                return {"error": f"the version could not be tested: {exc}"}
            submitted = False
            continue  # the workshop restarted: submit again at once
        except TrainingConflict as exc:
            silent_since = None
            await say(f"trained; waiting to test it: {exc}")
        except WorkshopUnavailable as exc:
            silent_since = silent_since if silent_since is not None else loop.time()
            log.warning("the workshop did not answer about an evaluation: %s", exc, extra=extra)
            if loop.time() - silent_since > unreachable:
                await _give_up(workshop, version_id)
                return {"error": f"the workshop did not answer for {unreachable / 60:.0f} "
                                 "minutes while testing; the version was not tested"}
        if status is not None:
            if status.state == "failed":
                log.info("evaluation failed in the workshop",
                         extra={**extra, "error": status.error})
                return {"error": status.error or "testing failed; the workshop gave no reason"}
            if status.state == "done":
                if status.result is None:
                    return {"error": "the workshop finished testing without a result"}
                return status.result
            report(status.progress)
            await say(f"testing: {status.stage}" + (
                f" ({_ordinal(status.position)} in the workshop's queue)"
                if status.position else ""))
        if loop.time() > give_up_at:
            await _give_up(workshop, version_id)
            return {"error": f"testing did not end within {deadline / 60:.0f} minutes and was "
                             "stopped"}
        await asyncio.sleep(poll)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


async def _give_up(workshop: WorkshopClient, version_id: str) -> None:
    with contextlib.suppress(UnknownVersion, TrainingConflict, WorkshopUnavailable):
        await workshop.cancel_evaluation(version_id)
