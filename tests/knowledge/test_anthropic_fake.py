"""The Anthropic fake, exercised through the real `anthropic` SDK over HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import Message, TextBlock

from tests.fakes.anthropic_server import (
    NO_ANSWER,
    AnthropicFake,
    AnthropicRequest,
    content_words,
    grounded_responder,
)

KEY = "sk-ant-test-fake"
MODEL = "claude-test-model"

KB_PROMPT = """Answer only from the passages.
<passage id="1" title="Shipping" source="kb/shipping.md">We ship worldwide. \
Orders are shipped within 2 business days. Tracking links arrive by email.</passage>
<passage id="2" title="Returns" source="kb/returns.md">Returns are free for 30 days. \
Refunds are issued to the original payment method within 5 days of receiving the parcel.</passage>
<passage id="3" title="Gift cards" source="kb/gift-cards.md">\
Gift cards never expire &amp; can be combined.</passage>
<question>{question}</question>"""


@pytest.fixture
def fake() -> Iterator[AnthropicFake]:
    with AnthropicFake(api_key=KEY) as server:
        yield server


def client(fake: AnthropicFake, *, key: str = KEY, timeout: float = 5.0,
           max_retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=key, base_url=fake.base_url, timeout=timeout,
                                    max_retries=max_retries)


async def ask(fake: AnthropicFake, question: str, **kwargs: Any) -> Message:
    async with client(fake, **kwargs) as api:
        return await api.messages.create(
            model=MODEL, max_tokens=200,
            messages=[{"role": "user", "content": KB_PROMPT.format(question=question)}],
        )


def raw_post(fake: AnthropicFake, body: Any, headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], dict[str, Any]]:
    """POST /v1/messages without the SDK (to send what the SDK never would)."""
    sent = {"x-api-key": KEY, "anthropic-version": "2023-06-01",
            "content-type": "application/json", **(headers or {})}
    request = urllib.request.Request(
        fake.base_url + "/v1/messages", data=json.dumps(body).encode(), method="POST",
        headers={k: v for k, v in sent.items() if v is not None})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def first_text(message: Message) -> str:
    """The text of the first content block (the fake answers with one text block)."""
    block = message.content[0]
    assert isinstance(block, TextBlock), block
    return block.text


def error_body(error: anthropic.APIStatusError) -> dict[str, Any]:
    """The parsed JSON of an error answer (the SDK types it `object`)."""
    assert isinstance(error.body, dict), error.body
    return error.body


VALID = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_answer_is_parsed_into_a_message_with_text_and_usage(fake: AnthropicFake) -> None:
    fake.responder = lambda body: "Hello from the fake model."
    async with client(fake) as api:
        message = await api.messages.create(
            model=MODEL,
            max_tokens=64,
            system=[{"type": "text", "text": "You are terse."}],
            messages=[{"role": "user", "content": [{"type": "text", "text": "Say hello please"}]}],
            stop_sequences=["###"],
            metadata={"user_id": "tenant-1"},
            # anthropic 2.14's messages.create() has no `temperature` keyword any more
            extra_body={"temperature": 0.0},
        )
    assert isinstance(message, Message)
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == MODEL
    assert message.content[0].type == "text"
    assert first_text(message) == "Hello from the fake model."
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == 5
    assert message.usage.input_tokens == 6  # "You are terse." + "Say hello please"
    assert message._request_id and message._request_id.startswith("req_")

    (request,) = fake.requests
    assert isinstance(request, AnthropicRequest)  # what this fake records
    assert (request.method, request.path) == ("POST", "/v1/messages")
    # anthropic 2.14 sends the key as a bearer token, not x-api-key; the fake takes both
    assert request.headers.get("x-api-key") == KEY or request.headers["authorization"] == (
        f"Bearer {KEY}")
    assert request.headers["anthropic-version"]
    assert request.headers["content-type"].startswith("application/json")
    assert request.data["system"] == [{"type": "text", "text": "You are terse."}]
    assert request.data["metadata"] == {"user_id": "tenant-1"}
    assert request.data["temperature"] == 0.0


@pytest.mark.asyncio
async def test_responder_set_at_construction_sees_the_request_body() -> None:
    seen: list[dict[str, Any]] = []

    def echo(body: dict[str, Any]) -> str:
        seen.append(body)
        return f"model={body['model']}"

    with AnthropicFake(api_key=KEY, responder=echo) as fake:
        async with client(fake) as api:
            message = await api.messages.create(
                model=MODEL, max_tokens=5, system="plain string system",
                messages=[{"role": "user", "content": "hi"}])
    assert first_text(message) == f"model={MODEL}"
    assert seen[0]["system"] == "plain string system"


@pytest.mark.asyncio
async def test_stop_sequences_and_max_tokens_cut_the_text(fake: AnthropicFake) -> None:
    fake.responder = lambda body: "one two three STOP four five"
    async with client(fake) as api:
        stopped = await api.messages.create(
            model=MODEL, max_tokens=50, stop_sequences=["STOP"],
            messages=[{"role": "user", "content": "count"}])
        truncated = await api.messages.create(
            model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "count"}])
    assert first_text(stopped) == "one two three "
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "STOP")
    assert first_text(truncated) == "one two"
    assert truncated.stop_reason == "max_tokens" and truncated.usage.output_tokens == 2


# -- the grounded responder ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_grounded_responder_cites_the_passage_that_shares_most_words(
    fake: AnthropicFake,
) -> None:
    refund = await ask(fake, "How is my refund issued?")
    assert first_text(refund) == (
        "Refunds are issued to the original payment method within 5 days of receiving the "
        "parcel. [2]")
    shipping = await ask(fake, "When will my order ship?")
    assert first_text(shipping) == "We ship worldwide. [1]"
    gift = await ask(fake, "Do gift cards expire?")
    assert first_text(gift) == "Gift cards never expire & can be combined. [3]"
    # the *first* sentence sharing a word is the answer, even if a later one fits better
    days = await ask(fake, "How many days until my refund is issued?")
    assert first_text(days) == "Returns are free for 30 days. [2]"


@pytest.mark.asyncio
async def test_grounded_responder_abstains_when_no_passage_shares_a_word(
    fake: AnthropicFake,
) -> None:
    message = await ask(fake, "Is the pizza vegan?")
    assert first_text(message) == NO_ANSWER
    assert message.stop_reason == "end_turn"


def test_grounded_responder_contract_edges() -> None:
    def body(text: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}

    assert grounded_responder(body("<question>Where is my order?</question>")) == NO_ANSWER
    assert grounded_responder(body('<passage id="7">Orders ship.</passage>')) == NO_ANSWER
    # attribute order is free; a tie goes to the earliest passage
    text = ('<passage source="a" id="a1" title="A">Parcels travel fast.</passage>'
            '<passage id="b2">Parcels travel slowly.</passage>'
            "<question>How do parcels travel?</question>")
    assert grounded_responder(body(text)) == "Parcels travel fast. [a1]"
    assert content_words("The refunds were refunded, refunding!") == {"refund"}
    assert content_words("shipped ships shipping") == {"ship"}


# -- errors and retries ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_429_is_retried_by_the_sdk_then_succeeds(fake: AnthropicFake) -> None:
    fake.fail_next(429, retry_after=0.05)
    started = time.monotonic()
    message = await ask(fake, "When will my order ship?", max_retries=1)
    assert first_text(message).endswith("[1]")
    assert len(fake.requests) == 2
    assert time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_429_carries_retry_after_and_the_real_error_json(fake: AnthropicFake) -> None:
    fake.fail_next(429)
    with pytest.raises(anthropic.RateLimitError) as caught:
        await ask(fake, "anything")
    error = caught.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "1"
    assert error_body(error)["type"] == "error"
    assert error_body(error)["error"]["type"] == "rate_limit_error"
    assert error_body(error)["request_id"] == error.response.headers["request-id"]


@pytest.mark.asyncio
async def test_529_surfaces_as_an_internal_server_error_without_retries(
    fake: AnthropicFake,
) -> None:
    fake.fail_next(529)
    with pytest.raises(anthropic.InternalServerError) as caught:
        await ask(fake, "anything", max_retries=0)
    assert isinstance(caught.value, anthropic.APIStatusError)
    assert caught.value.status_code == 529
    assert error_body(caught.value)["error"] == {"type": "overloaded_error",
                                                 "message": "Overloaded"}
    assert len(fake.requests) == 1


@pytest.mark.asyncio
async def test_500_then_success_with_default_backoff(fake: AnthropicFake) -> None:
    fake.fail_next(500, times=1, retry_after=0.05)
    message = await ask(fake, "Do gift cards expire?", max_retries=2)
    assert first_text(message).endswith("[3]")
    assert len(fake.requests) == 2


@pytest.mark.asyncio
async def test_hang_raises_api_timeout_error_quickly(fake: AnthropicFake) -> None:
    fake.hang_next(30)
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        await ask(fake, "anything", timeout=0.5, max_retries=0)
    assert time.monotonic() - started < 3


def test_stop_does_not_wait_for_a_hung_request() -> None:
    fake = AnthropicFake(api_key=KEY).start()
    fake.hang_next(60)
    status: list[Any] = []

    def call() -> None:
        try:
            status.append(raw_post(fake, VALID)[0])
        except Exception as exc:  # the connection closes without an answer
            status.append(type(exc).__name__)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 2
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    fake.stop()
    caller.join(timeout=3)
    assert time.monotonic() - started < 2
    assert status and status[0] != 200  # no answer was ever sent


@pytest.mark.asyncio
async def test_wrong_api_key_is_an_authentication_error(fake: AnthropicFake) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await ask(fake, "anything", key="sk-ant-wrong")
    assert caught.value.status_code == 401
    assert error_body(caught.value)["error"]["type"] == "authentication_error"


@pytest.mark.asyncio
async def test_delay_is_applied_to_every_request(fake: AnthropicFake) -> None:
    fake.delay = 0.3
    started = time.monotonic()
    await ask(fake, "anything")
    assert time.monotonic() - started >= 0.3


# -- validation (raw HTTP, to send what the SDK would not) ----------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind", "fragment"),
    [
        (VALID, {"x-api-key": None}, 401, "authentication_error", "x-api-key header is required"),
        (VALID, {"x-api-key": "sk-ant-wrong"}, 401, "authentication_error", "invalid x-api-key"),
        (VALID, {"x-api-key": None, "authorization": "Bearer nope"}, 401,
         "authentication_error", "invalid"),
        (VALID, {"anthropic-version": None}, 400, "invalid_request_error", "anthropic-version"),
        ({**VALID, "model": None}, {}, 400, "invalid_request_error", "model"),
        ({k: v for k, v in VALID.items() if k != "model"}, {}, 400, "invalid_request_error",
         "model: Field required"),
        ({k: v for k, v in VALID.items() if k != "max_tokens"}, {}, 400,
         "invalid_request_error", "max_tokens: Field required"),
        ({k: v for k, v in VALID.items() if k != "messages"}, {}, 400,
         "invalid_request_error", "messages: Field required"),
        ({**VALID, "max_tokens": 0}, {}, 400, "invalid_request_error", "max_tokens"),
        ({**VALID, "messages": []}, {}, 400, "invalid_request_error", "at least one message"),
        ({**VALID, "messages": [{"role": "assistant", "content": "Hi"}]}, {}, 400,
         "invalid_request_error", "first message"),
        ({**VALID, "messages": [{"role": "user", "content": "a"},
                                {"role": "user", "content": "b"}]}, {}, 400,
         "invalid_request_error", "alternate"),
        ({**VALID, "system": 5}, {}, 400, "invalid_request_error", "system"),
        ({**VALID, "temperature": 1.5}, {}, 400, "invalid_request_error", "temperature"),
    ],
)
def test_validation_like_the_real_api(
    fake: AnthropicFake, body: Any, headers: dict[str, str], status: int, kind: str,
    fragment: str,
) -> None:
    got, response_headers, payload = raw_post(fake, body, headers)
    assert got == status
    assert payload["type"] == "error"
    assert payload["error"]["type"] == kind
    assert fragment in payload["error"]["message"]
    lowered = {k.lower(): v for k, v in response_headers.items()}
    assert payload["request_id"] == lowered["request-id"]


def test_valid_raw_request_and_unknown_path(fake: AnthropicFake) -> None:
    status, headers, payload = raw_post(fake, VALID)
    assert status == 200 and payload["type"] == "message"
    assert {k.lower() for k in headers} >= {"request-id", "content-type"}
    request = urllib.request.Request(fake.base_url + "/v1/complete", data=b"{}", method="POST",
                                     headers={"x-api-key": KEY})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 404
    assert json.loads(caught.value.read())["error"]["type"] == "not_found_error"


@pytest.mark.asyncio
async def test_sdk_bad_request_for_a_conversation_starting_with_assistant(
    fake: AnthropicFake,
) -> None:
    async with client(fake) as api:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await api.messages.create(model=MODEL, max_tokens=5,
                                      messages=[{"role": "assistant", "content": "Hi"}])
    assert error_body(caught.value)["error"]["type"] == "invalid_request_error"


@pytest.mark.asyncio
async def test_delay_is_per_request_so_concurrent_requests_overlap(fake: AnthropicFake) -> None:
    fake.delay = 1.0
    async with client(fake) as api:
        answers = await asyncio.gather(*(
            api.messages.create(model=MODEL, max_tokens=5,
                                messages=[{"role": "user", "content": f"hi {n}"}])
            for n in range(8)))
    assert len(answers) == 8 and len(fake.requests) == 8
    assert fake.most_delayed > 1  # asleep side by side (a delay under a lock would show 1)
