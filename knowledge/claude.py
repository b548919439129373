"""Grounded answers from Claude through `anthropic.AsyncAnthropic`, bounded in time and in harm.

Every call has one deadline (`timeout`, 8 s by default) that covers the SDK's retries too:
the SDK retries 429/529/5xx and connection errors at most `max_retries` times, but never past
the deadline. Any failure raises `LlmUnavailable`, and the caller answers extractively instead.

Per shop, and never across shops:
- circuit breakers (knowledge/breaker.py), one per shop and model: an API that keeps failing
  one shop's calls is not called for that shop for a while. A 404 (or a 400 about the model)
  is the shop's configuration, not an outage: it opens that shop's circuit at once, is logged
  as an error naming the shop and model (never the key or the question), and leaves every
  other shop's answers alone;
- the monthly token budget (knowledge/budget.py): checked before the call (`LlmOverBudget`),
  and every answer's usage, as the API reports it, is recorded after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import anthropic

from knowledge import metrics
from knowledge.breaker import Breakers
from knowledge.budget import LlmBudget
from knowledge.prompt import ReadAnswer, read_answer, system_prompt, user_prompt
from knowledge.retrieval import Passage
from tenants.models import Tenant

log = logging.getLogger(__name__)


class LlmUnavailable(RuntimeError):
    """No answer from the LLM: timeout, API error, open circuit, or an ungrounded answer."""


class LlmOverBudget(LlmUnavailable):
    """The shop's tokens for this month are spent: answer as without a key until it ends."""


def _configuration_error(exc: anthropic.APIStatusError) -> bool:
    """Will the API refuse every call of this shop alike? A 404 is an unknown model (the only
    resource we name); a 400 is the shop's too when it is about the model."""
    if isinstance(exc, anthropic.NotFoundError):
        return True
    if isinstance(exc, anthropic.BadRequestError) and isinstance(exc.body, dict):
        error = exc.body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        return isinstance(message, str) and message.lower().startswith("model")
    return False


class ClaudeAnswerer:
    def __init__(self, api_key: str, base_url: str | None = None, timeout: float = 8.0,
                 max_retries: int = 2, breakers: Breakers | None = None,
                 budget: LlmBudget | None = None) -> None:
        self.timeout = timeout
        self.breakers = Breakers() if breakers is None else breakers
        metrics.BREAKERS.watch(self.breakers)
        self.budget = budget
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, max_retries=max_retries,
            timeout=timeout,  # per attempt; the deadline in answer() bounds the retries too
        )

    async def answer(self, tenant: Tenant, question: str,
                     passages: Sequence[Passage]) -> ReadAnswer:
        if self.budget is not None and await self.budget.exhausted(tenant):
            metrics.llm_error("over_budget")
            raise LlmOverBudget("monthly token budget spent")
        breaker = self.breakers.get(tenant.id, tenant.llm_model)
        if not breaker.allow():
            metrics.llm_error("circuit_open")
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
        except anthropic.APIStatusError as exc:
            if _configuration_error(exc):
                metrics.llm_error("model")
                breaker.trip(self.breakers.config_cooldown)
                log.error("llm refused the shop's model: check its llm_model setting",
                          extra={"tenant_id": tenant.id, "model": tenant.llm_model,
                                 "status": exc.status_code, "request_id": exc.request_id,
                                 "breaker": breaker.state})
            else:
                metrics.llm_error(metrics.status_kind(exc.status_code))
                breaker.failed()
                log.warning("llm call failed",
                            extra={"tenant_id": tenant.id, "model": tenant.llm_model,
                                   "error": type(exc).__name__, "status": exc.status_code,
                                   "request_id": exc.request_id, "breaker": breaker.state})
            raise LlmUnavailable(type(exc).__name__) from exc
        except (TimeoutError, anthropic.APIError) as exc:
            timed_out = isinstance(exc, TimeoutError | anthropic.APITimeoutError)
            metrics.llm_error("timeout" if timed_out else "connection")
            breaker.failed()
            log.warning("llm call failed",
                        extra={"tenant_id": tenant.id, "model": tenant.llm_model,
                               "error": type(exc).__name__, "breaker": breaker.state})
            raise LlmUnavailable(type(exc).__name__) from exc
        except BaseException:  # cancelled: no verdict on the API, but free a trial slot
            breaker.release()
            raise
        breaker.succeeded()
        usage = message.usage
        # Prompt caching is not used, but if it were, cached input is still input spent.
        input_tokens = (usage.input_tokens + (usage.cache_creation_input_tokens or 0)
                        + (usage.cache_read_input_tokens or 0))
        metrics.llm_tokens(tenant.id, input_tokens, usage.output_tokens)
        if self.budget is not None:  # paid for even if the answer is dropped below
            await self.budget.record(tenant, tenant.llm_model, input_tokens, usage.output_tokens)
        raw = "".join(block.text for block in message.content if block.type == "text")
        read = read_answer(raw, passages)
        if not read.abstained and not read.cited:
            # An answer that cites none of the passages, or whose cited text does not rest on
            # them (a visitor's dictated "[1]"), is not grounded in them: do not show it.
            log.warning("llm answer without grounded citations dropped",
                        extra={"tenant_id": tenant.id})
            metrics.llm_error("ungrounded")
            raise LlmUnavailable("ungrounded answer")
        log.info("llm answered", extra={"tenant_id": tenant.id, "model": tenant.llm_model,
                                        "input_tokens": input_tokens,
                                        "output_tokens": usage.output_tokens,
                                        "abstained": read.abstained,
                                        "ms": round((time.perf_counter() - started) * 1000, 1)})
        return read

    async def close(self) -> None:
        await self._client.close()
