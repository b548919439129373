"""What the NLG endpoint adds to a turn: bench/turns.py with and without it, and the endpoint's
own round trip.

Rasa asks the admin service for every response it says (bot/nlg.py -> admin_api/nlg.py). This
runs bench/turns.py's own stack and conversations (all its options pass through) either as
committed (endpoints.yml has `nlg:`) or, with --without-nlg, with Rasa started on a copy of
endpoints.yml without the `nlg:` block (Rasa's own templated texts: the "before"). Before the
stack stops, it also times POST /nlg as bot/nlg.py sends it (kept-alive connection, slim body,
the demo shop), sequentially: the floor of what each response adds.

Usage, from the repository root (compare the two "p50 ms" tables):
    .venv/bin/python bench/nlg.py --without-nlg --concurrency 1,4 --conversations 40
    .venv/bin/python bench/nlg.py --concurrency 1,4 --conversations 40
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import turns  # noqa: E402
from core.settings import BotSettings  # noqa: E402
from devtools.demo_shop import DEMO_TENANT_ID  # noqa: E402
from tests.integration.stack import BOT_PY, TOKEN, Stack  # noqa: E402

ROUND_TRIPS = 500


def endpoints_without_nlg(var_dir: Path) -> Path:
    text = (ROOT / "endpoints.yml").read_text()
    stripped = re.sub(r"\nnlg:\n(?:[ \t]+.*\n?)*", "\n", text)
    assert "bot.nlg" not in stripped, "endpoints.yml's nlg block was not found"
    path = var_dir / "endpoints-without-nlg.yml"
    path.write_text(stripped)
    return path


class StackWithoutNlg(Stack):
    """Rasa on endpoints.yml without its `nlg:` block: the domain's texts, said by Rasa."""

    def start_rasa(self) -> None:
        self._spawn("bot", [str(BOT_PY), "-m", "bot.serve", "run", "--enable-api",
                            "-i", "127.0.0.1", "-p", str(self.rasa_port),
                            "--model", str(self.model),
                            "--endpoints", str(endpoints_without_nlg(self.var_dir)),
                            "--credentials", "credentials.yml"])


class StackTimingNlg(Stack):
    """The committed stack; before it stops, POST /nlg is timed on its admin service."""

    def stop(self) -> None:
        try:
            time_endpoint(self)
        except (httpx.HTTPError, AssertionError) as exc:  # a stack that never started
            print(f"NLG endpoint not timed: {exc}")
        finally:
            super().stop()


def time_endpoint(stack: Stack) -> None:
    """p50/p95 of POST /nlg as bot/nlg.py sends it, one after another on one connection."""
    token = BotSettings.from_env({"RASA_TOKEN": TOKEN}).nlg_token.reveal()
    body = {"response": "utter_ask_email", "arguments": {}, "channel": {"name": "collector"},
            "sender_id": f"{DEMO_TENANT_ID}:rest:bench-nlg",
            "slots": {"tenant_id": DEMO_TENANT_ID, "order_number": "1001", "email": None}}
    times = []
    with httpx.Client(base_url=stack.admin, headers={"Authorization": f"Bearer {token}"},
                      trust_env=False) as client:
        for i in range(ROUND_TRIPS + 20):
            started = time.perf_counter()
            reply = client.post("/nlg", json=body)
            if i >= 20:  # warm-up: the shop's overrides are read once per second
                times.append((time.perf_counter() - started) * 1000)
            assert reply.status_code == 200, reply.text
    times.sort()
    print(f"\nNLG endpoint, POST /nlg sequential x{ROUND_TRIPS} (kept-alive): "
          f"p50 {statistics.median(times):.2f} ms, p95 {times[int(len(times) * 0.95)]:.2f} ms")


def main() -> None:
    without = "--without-nlg" in sys.argv
    sys.argv = [arg for arg in sys.argv if arg != "--without-nlg"]
    print(f"NLG: {'off (Rasa templated texts)' if without else 'on (bot/nlg.py -> /nlg)'}")
    # bench/turns.py builds its stack from its module's `Stack`: ours stands in for it.
    turns.__dict__.update(Stack=StackWithoutNlg if without else StackTimingNlg)
    turns.main()


if __name__ == "__main__":
    main()
