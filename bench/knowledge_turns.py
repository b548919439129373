"""What a knowledge turn costs on top of the LLM: full stack, fake Messages API with a fixed delay.

Starts its own stack (bootstrap with the demo knowledge base, Rasa, action server, gateway) in
a temporary folder, with the action server talking to a local fake of the Messages API that
answers every request after exactly --llm-delay seconds. Each visitor asks one question from
bench/data/knowledge_questions.yml through the gateway's REST channel (distinct questions,
so the answer cache does not hide the work). Overhead = turn latency - the fake's delay:
gateway + Rasa (NLU, policies, tracker) + action server + embedding + hybrid search + prompt.

Target (issue 3): the overhead is at most 50 ms.

Usage: .venv/bin/python -m bench.knowledge_turns [--llm-delay 0.5] [--questions 60]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.turns import pct  # noqa: E402
from tests.fakes.anthropic_server import AnthropicFake, grounded_responder  # noqa: E402
from tests.integration.stack import Stack  # noqa: E402

log = logging.getLogger("bench.knowledge_turns")
KEY = "sk-ant-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm-delay", type=float, default=0.5, help="seconds the fake API takes")
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    questions = [q["question"] for q in yaml.safe_load(
        (ROOT / "bench" / "data" / "knowledge_questions.yml").read_text())["questions"]]
    with AnthropicFake(api_key=KEY, responder=grounded_responder, delay=args.llm_delay) as fake:
        stack = Stack(Path(tempfile.mkdtemp(prefix="bench-knowledge-turns-")))
        stack.extra_env.update(ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=fake.base_url)
        log.info("starting the stack in %s (bootstrap ingests the demo knowledge base)",
                 stack.var_dir)
        stack.start(timeout=args.timeout)
        try:
            run(stack, fake, questions, args)
        finally:
            stack.stop()


def run(stack: Stack, fake: AnthropicFake, questions: list[str], args: argparse.Namespace) -> None:
    url = f"{stack.gateway}/channels/demo/rest/webhook"
    with httpx.Client(timeout=30, headers=stack.rest_headers()) as client:
        # Load everything once.
        for warm in ("hello", "do you have gift cards?", "where is my order?"):
            client.post(url, json={"sender": f"warm-{uuid.uuid4().hex[:8]}", "message": warm})
        latencies, modes = [], []
        for n, question in enumerate(questions[1:args.questions + 1], 1):
            before = len(fake.messages_requests)
            started = time.perf_counter()
            response = client.post(url, json={"sender": f"bench-{uuid.uuid4().hex[:8]}",
                                              "message": question})
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            knowledge = [r.get("custom", {}).get("knowledge") for r in response.json()
                         if r.get("custom")]
            mode = knowledge[0]["mode"] if knowledge else "not-knowledge"
            modes.append(mode)
            if len(fake.messages_requests) > before:  # only turns that really waited for the LLM
                latencies.append(elapsed - args.llm_delay * 1000)
            if n % 10 == 0:
                log.info("%d/%d turns", n, args.questions)
    print("Knowledge turns through the gateway with the LLM answering after "
          f"{args.llm_delay * 1000:.0f} ms")
    print(f"  turns: {len(modes)}; by route/mode: " + ", ".join(
        f"{m} {modes.count(m)}" for m in sorted(set(modes))))
    if latencies:
        print(f"  overhead beyond the LLM (turn latency - {args.llm_delay * 1000:.0f} ms) over "
              f"{len(latencies)} LLM turns: p50 {pct(latencies, 50):.1f} ms, "
              f"p95 {pct(latencies, 95):.1f} ms, "
              f"mean {statistics.mean(latencies):.1f} ms   (target <= 50 ms)")


if __name__ == "__main__":
    main()
