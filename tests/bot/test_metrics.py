"""Rasa's metrics (issue 12, point 10): bot/serve.py instruments the app Rasa builds and serves
the counts of all its Sanic workers on BOT_METRICS_PORT, with route patterns, never sender ids,
as labels.

Runs inside Rasa's interpreter (.venv-bot): Rasa's own `configure_app` builds the API and the
REST channel (no model is loaded: the answers are errors, counted all the same) and Sanic serves
it with two forked workers, as compose runs it; one NLU parse goes through Rasa's
`MessageProcessor.parse_message` with a stand-in interpreter.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]
BOT_PY = ROOT / ".venv-bot" / "bin" / "python"
SENDER = "sam@example.com"

SCRIPT = r"""
import asyncio, os, sys
from core.settings import BotSettings
from bot.serve import serve_rasa_metrics

settings = BotSettings.from_env()
serve_rasa_metrics(settings)

import rasa.core.run
from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.processor import MessageProcessor


class Interpreter:
    async def parse(self, message):
        return {"text": message.text, "intent": {"name": "greet", "confidence": 1.0},
                "entities": []}


class Processor(MessageProcessor):
    def __init__(self):
        self.http_interpreter = Interpreter()

    def _check_for_unseen_features(self, parse_data):
        pass


asyncio.run(Processor().parse_message(UserMessage("hi, I am sam@example.com")))
app = rasa.core.run.configure_app([RestInput()], enable_api=True, port=int(sys.argv[1]),
                                  jwt_secret=settings.rasa_jwt_key.reveal(), jwt_method="HS256")
app.run(host="127.0.0.1", port=int(sys.argv[1]), workers=2, access_log=False)
"""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_requests_of_every_worker_are_counted_by_route_pattern(tmp_path: Path) -> None:
    if not BOT_PY.exists():
        pytest.skip("Rasa's environment (.venv-bot) is not installed")
    api_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SWITCHBOARD_VAR_DIR=str(tmp_path), RASA_TOKEN="t", METRICS_HOST="127.0.0.1",
               BOT_METRICS_PORT=str(metrics_port), PYTHONPATH=str(ROOT),
               RASA_TELEMETRY_ENABLED="false")
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BOT_PY), "-c", SCRIPT, str(api_port)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{api_port}"
    try:
        wait_until_ready(proc, log, lambda: httpx.get(f"{api}/", timeout=2).status_code == 200,
                         seconds=120)
        before = samples(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text)
        for _ in range(6):  # no key: 401, counted under the route's pattern
            assert httpx.get(f"{api}/conversations/{SENDER}/tracker",
                             timeout=5).status_code == 401
        for _ in range(4):  # no model loaded: an error, counted all the same
            httpx.post(f"{api}/webhooks/rest/webhook",
                       json={"sender": SENDER, "message": f"hi, I am {SENDER}"}, timeout=10)
        assert httpx.get(f"{api}/no/such/{SENDER}", timeout=5).status_code == 404
        found = samples(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return found.get(key, 0.0) - before.get(key, 0.0)

    requests = "switchboard_bot_requests_total"
    tracker = "/conversations/{conversation_id}/tracker"
    assert delta(requests, endpoint=tracker, method="GET", status="401") == 6
    assert delta("switchboard_bot_request_seconds_count", endpoint=tracker) == 6
    webhook = sum(value for (name, labels), value in found.items() if name == requests
                  and ("endpoint", "/webhooks/rest/webhook") in labels)
    assert webhook == 4
    assert sum(v for (n, labels), v in found.items()
               if n == requests and ("endpoint", "other") in labels) >= 1  # the 404
    assert found[("switchboard_bot_parse_seconds_count", ())] == 1
    labels = {value for _, pairs in found for _, value in pairs}
    assert not [v for v in labels if SENDER in v or "no/such" in v], labels
