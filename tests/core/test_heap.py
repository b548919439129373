"""Settling a serving process's heap (core/heap.py): what was alive is skipped by the collector
until released, what is made afterwards is collected as before."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from sanic import HTTPResponse, Request, Sanic, json

from core import heap
from tests.sanic_client import RunningAppClient, stop_app


class Model:
    """Holds a reference cycle, as Rasa's agents and graphs do: only the collector frees it."""

    def __init__(self) -> None:
        self.itself = self


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


def test_what_was_alive_when_settled_is_skipped_until_released() -> None:
    model = Model()
    alive = weakref.ref(model)
    heap.settle("model loaded")
    assert gc.get_freeze_count() > 0
    del model
    gc.collect()
    assert alive() is not None  # frozen: a full collection does not even look at it
    heap.release("model unloaded")
    assert alive() is None
    assert gc.get_freeze_count() > 0  # what still lives is settled again


def test_garbage_made_after_settling_is_still_collected() -> None:
    heap.settle("started")
    model = Model()
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


def test_a_held_collector_collects_again_once_settled() -> None:
    heap.hold()  # Rasa's start: nothing collected while it builds what it keeps
    try:
        model = Model()
        alive = weakref.ref(model)
        del model
        assert not gc.isenabled()
        heap.settle("base model loaded")
        assert alive() is None  # the one collection of settle found it
        assert gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.asyncio
async def test_a_sanic_app_settles_once_its_server_has_started() -> None:
    app = Sanic("heap-test")

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        return json({"status": "ok"})

    heap.settle_when_started(app)
    gc.unfreeze()
    model = Model()
    alive = weakref.ref(model)
    await RunningAppClient(app).get("/health")  # the app starts: its listeners run
    try:
        del model
        gc.collect()
        assert alive() is not None  # settled by the app's start
    finally:
        await stop_app(app)
