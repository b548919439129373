"""Billing's background work in the admin process, with billing on only: usage reported to
Stripe's meters every few seconds (billing/meters.py) and limit warnings mailed to owners
every few minutes (admin_api/billing_notices.py). Started after the server starts (the
connections and `app.ctx.stripe` are open then), cancelled before it stops.
BILLING_WORKER=False in the app's config keeps them off (tests that drive them directly)."""

from __future__ import annotations

import asyncio
import contextlib

from sanic import Sanic

from admin_api.billing_notices import UsageNotices
from billing.meters import MeterReporter
from billing.plans import billing_enabled, pricing

TASKS = ("meter_reporter", "usage_notices")


def install(app: Sanic) -> None:
    @app.after_server_start
    async def start_billing_tasks(app: Sanic) -> None:
        settings = app.ctx.settings
        if not app.config.get("BILLING_WORKER", True) or not billing_enabled(settings):
            return
        if getattr(app.ctx, "stripe", None) is not None:
            reporter = MeterReporter(app.ctx.sessions, app.ctx.stripe, pricing(settings))
            app.ctx.meter_reporter = asyncio.create_task(reporter.run(),
                                                         name="meter-reporter")
        notices = UsageNotices(app.ctx.sessions, app.ctx.billing, settings)
        app.ctx.usage_notices = asyncio.create_task(notices.run(), name="usage-notices")

    @app.before_server_stop
    async def stop_billing_tasks(app: Sanic) -> None:
        for name in TASKS:
            task = getattr(app.ctx, name, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
