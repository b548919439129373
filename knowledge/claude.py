"""Grounded answers from Claude through `anthropic.AsyncAnthropic`, bounded in time and in harm.

Every call has one deadline (`timeout`, 8 s by default) that covers the SDK's retries too:
the SDK retries 429/529/5xx and connection errors at most `max_retries` times, but never past
the deadline. A circuit breaker stops calling an API that keeps failing. Any failure raises
`LlmUnavailable`, and the caller answers extractively instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import anthropic

from knowledge.breaker import CircuitBreaker
from knowledge.prompt import ReadAnswer, read_answer, system_prompt, user_prompt
from knowledge.retrieval import Passage
from tenants.models import Tenant

log = logging.getLogger(__name__)


class LlmUnavailable(RuntimeError):
    """No answer from the LLM: timeout, API error, open circuit, or an uncited answer."""


class ClaudeAnswerer:
    def __init__(self, api_key: str, base_url: str | None = None, timeout: float = 8.0,
                 max_retries: int = 2, breaker: CircuitBreaker | None = None) -> None:
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=max_retries,
            timeout=timeout,  # per attempt; the deadline in answer() bounds the retries too
        )

    async def answer(self, tenant: Tenant, question: str,
                     passages: Sequence[Passage]) -> ReadAnswer:
        if not self.breaker.allow():
            raise LlmUnavailable("circuit open")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                message = await self._client.messages.create(
                    model=tenant.llm_model,
                    max_tokens=tenant.llm_max_tokens,
                    system=system_prompt(tenant.name),
                    messages=[{"role": "user", "content": user_prompt(question, passages)}],
                    metadata={"user_id": tenant.id},
                    # This SDK version has no `temperature` argument; the API still takes it.
                    extra_body={"temperature": tenant.llm_temperature},
                )
        except (TimeoutError, anthropic.APIError) as exc:
            self.breaker.failed()
            status = getattr(exc, "status_code", None)
            log.warning("llm call failed",
                        extra={"tenant_id": tenant.id, "error": type(exc).__name__,
                               "status": status, "breaker": self.breaker.state})
            raise LlmUnavailable(type(exc).__name__) from exc
        self.breaker.succeeded()
        raw = "".join(block.text for block in message.content if block.type == "text")
        read = read_answer(raw, len(passages))
        if not read.abstained and not read.cited:
            # An answer that cites none of the passages is not grounded in them: do not show it.
            log.warning("llm answer without citations dropped", extra={"tenant_id": tenant.id})
            raise LlmUnavailable("uncited answer")
        log.info("llm answered", extra={"tenant_id": tenant.id, "model": tenant.llm_model,
                                        "input_tokens": message.usage.input_tokens,
                                        "output_tokens": message.usage.output_tokens,
                                        "abstained": read.abstained,
                                        "ms": round((time.perf_counter() - started) * 1000, 1)})
        return read

    async def close(self) -> None:
        await self._client.close()
