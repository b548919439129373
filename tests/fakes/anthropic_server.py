"""A local stand-in for the Anthropic Messages API (`POST /v1/messages`, non-streaming).

Point the real SDK at it::

    with AnthropicFake(api_key="sk-ant-test") as fake:
        client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.base_url,
                                          timeout=5, max_retries=0)

Wire format (as the real API):

* Request: headers `x-api-key` (or `authorization: Bearer <key>`, which is what the
  installed SDK, anthropic 2.14, actually sends for `api_key=`), `anthropic-version`,
  `content-type: application/json`; body
  `model`, `max_tokens`, `messages` [{role, content: string | [{type: "text", text}, ...]}],
  optional `system` (string or list of text blocks), `temperature` (0..1),
  `stop_sequences` (list of strings), `metadata` ({user_id}).
* Answer: `{"id": "msg_...", "type": "message", "role": "assistant", "model", "content":
  [{"type": "text", "text"}], "stop_reason", "stop_sequence", "usage": {"input_tokens",
  "output_tokens", "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
  "service_tier": "standard"}}`. Tokens are approximated as words. `stop_reason` is
  `end_turn`, or `stop_sequence` (text cut before the earliest stop sequence) or `max_tokens`
  (text cut after `max_tokens` words).
* Errors: `{"type": "error", "error": {"type", "message"}, "request_id": "req_..."}` with
  400 invalid_request_error, 401 authentication_error, 404 not_found_error,
  429 rate_limit_error (+ `retry-after`), 500 api_error, 529 overloaded_error. Every response
  carries a `request-id` header.

Validation like the real API: wrong/missing key (neither header matching) -> 401; missing
`anthropic-version`, missing/invalid `model`, `max_tokens` (integer >= 1) or `messages`
(non-empty, starting with `user`, strictly alternating user/assistant, string or block
content), bad `system`, `temperature`, `stop_sequences` or `metadata` -> 400. (The live API
nowadays merges consecutive same-role turns instead of rejecting them; this fake is
deliberately strict.)

The text of an answer comes from `responder(body) -> str` (the parsed request body). A
responder that raises makes the fake answer 500 api_error (the exception is kept in
`fake.responder_errors`).

Prompt contract of the default `grounded_responder`
----------------------------------------------------
The last `user` message (string content, or its text blocks joined with newlines) holds
passages followed by the question::

    <passage id="1" title="Returns" source="kb/returns.md">Text ...</passage>
    <passage id="2" title="Shipping" source="kb/shipping.md">Text ...</passage>
    <question>How long do refunds take?</question>

Attribute order is free; XML entities (`&amp;` ...) are unescaped. The responder:

1. turns the question and each passage's text (not its title) into *content words*:
   lower-cased `[a-z0-9]+` tokens, minus English stopwords (see `STOPWORDS`), minus
   one-letter tokens, then stemmed by `stem` (plural `-ies`->`-y`, `-sses`->`-ss`, trailing
   `-s` except after s/u/i; then `-ing`/`-ed` when >= 3 letters remain, undoubling a final
   double consonant; then a trailing `-e`), so `refunds`/`refunded`/`refund` and
   `shipped`/`ships`/`shipping` meet;
2. picks the passage sharing the most distinct content words with the question (ties: the
   earliest passage);
3. if no passage shares any (or there is no `<question>` or no passage), answers exactly
   `<no_answer/>`;
4. otherwise answers the first sentence of that passage (split after `.`, `!` or `?`,
   whitespace collapsed) that shares a content word with the question, followed by
   ` [N]` where N is the passage's `id`, e.g. `Refunds take 5 days. [1]`.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from tests.fakes import FakeServer, RecordedRequest, Response, _Failure

Responder = Callable[[dict[str, Any]], str]

NO_ANSWER = "<no_answer/>"
DEFAULT_API_KEY = "sk-ant-test-key"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_DEFAULT_MESSAGES = {
    400: "Invalid request",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "Not found",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "This request would exceed your organization's rate limit. Please try again later.",
    500: "Internal server error",
    529: "Overloaded",
}

# -- the grounded responder ----------------------------------------------------------------

STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren as at be because been
before being below between both but by can cannot could couldn did didn do does doesn doing
don down during each else ever few for from further get gets got had hadn has hasn have haven
having he her here hers herself him himself his how however i if in into is isn it its itself
just let like ll may me might more most much must mustn my myself need no nor not now of off
on once only or other ought our ours ourselves out over own please re same shall shan she
should shouldn so some such than that the their theirs them themselves then there these they
this those through to too under until up upon us ve very via want was wasn we were weren what
when where whether which while who whom whose why will with won would wouldn yes yet you your
yours yourself yourselves
""".split())

_PASSAGE = re.compile(r"<passage\b(?P<attrs>[^>]*)>(?P<text>.*?)</passage\s*>", re.S | re.I)
_ATTR = re.compile(r"""(?P<name>[\w:-]+)\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""")
_QUESTION = re.compile(r"<question\b[^>]*>(?P<text>.*?)</question\s*>", re.S | re.I)
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_VOWELS = set("aeiou")


def stem(word: str) -> str:
    """A deliberately small stemmer (see the module docstring)."""
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and word[-2] not in "sui":
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if any(c in _VOWELS for c in base):
                word = base
                if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz" + "aeiou":
                    word = word[:-1]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, stopword-free, stemmed words of `text` (digits kept, one-letter dropped)."""
    return {
        stem(token)
        for token in _WORD.findall(text.lower())
        if token not in STOPWORDS and (len(token) > 1 or token.isdigit())
    }


@dataclass
class Passage:
    id: str
    title: str
    source: str
    text: str


def parse_prompt(text: str) -> tuple[list[Passage], str | None]:
    """The passages and question of a prompt written in the contract above."""
    passages: list[Passage] = []
    for match in _PASSAGE.finditer(text):
        attrs = {
            m.group("name").lower(): html.unescape(m.group("dq") if m.group("dq") is not None
                                                   else m.group("sq"))
            for m in _ATTR.finditer(match.group("attrs"))
        }
        passages.append(Passage(
            id=attrs.get("id", str(len(passages) + 1)),
            title=attrs.get("title", ""),
            source=attrs.get("source", ""),
            text=html.unescape(match.group("text")),
        ))
    question = _QUESTION.search(text)
    return passages, (html.unescape(question.group("text")) if question else None)


def message_text(content: Any) -> str:
    """The text of a message's `content` (a string, or text blocks joined with newlines)."""
    if isinstance(content, str):
        return content
    return "\n".join(
        block.get("text", "") for block in content or []
        if isinstance(block, dict) and block.get("type") == "text"
    )


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]


def grounded_responder(body: dict[str, Any]) -> str:
    """Answer from the best-matching passage, citing it, or abstain with `<no_answer/>`."""
    passages, question = parse_prompt(last_user_text(body))
    if not passages or question is None:
        return NO_ANSWER
    wanted = content_words(question)
    best: Passage | None = None
    best_score = 0
    for passage in passages:
        score = len(wanted & content_words(passage.text))
        if score > best_score:
            best, best_score = passage, score
    if best is None:
        return NO_ANSWER
    sentence = next(s for s in sentences(best.text) if wanted & content_words(s))
    return f"{sentence} [{best.id}]"


# -- the fake ------------------------------------------------------------------------------

_ALPHABET = string.ascii_letters + string.digits


def _ident(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def _count_tokens(text: str) -> int:
    return len(text.split())


class InvalidRequest(Exception):
    """A 400 invalid_request_error with this message."""


@dataclass
class AnthropicRequest(RecordedRequest):
    data: Any = None  # the parsed JSON body (None when absent or not JSON)


@dataclass
class _AnthropicFailure(_Failure):
    message: str | None = None


class AnthropicFake(FakeServer):
    """`POST /v1/messages` over real HTTP; see the module docstring.

    Attributes tests may set at any time: `responder`, `delay` (seconds slept before
    answering every request, errors included), `api_key`. `most_delayed` is the most requests
    that were in their delay at once.
    """

    def __init__(self, api_key: str = DEFAULT_API_KEY, *,
                 responder: Responder | None = None, delay: float = 0.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.responder: Responder = responder or grounded_responder
        self.delay = delay
        self.responder_errors: list[BaseException] = []
        self._delayed = self.most_delayed = 0

    def _wait_delay(self) -> bool:
        """Sleep `delay`, counting the requests asleep at once; True when shutting down."""
        with self._lock:
            self._delayed += 1
            self.most_delayed = max(self.most_delayed, self._delayed)
        try:
            return self._stop.wait(self.delay)
        finally:
            with self._lock:
                self._delayed -= 1

    # -- misbehaviour -------------------------------------------------------------------
    def fail_next(
        self,
        status: int = 500,
        times: int = 1,
        retry_after: float | None = None,
        *,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
    ) -> None:
        """Answer the next `times` (matching) requests with the real error JSON for `status`
        (429 rate_limit_error, 529 overloaded_error, 500 api_error, ...). A 429 always carries
        `retry-after` (default "1", as the real API sends whole seconds; a float such as 0.05
        keeps tests fast and the SDK honours it); other statuses only when `retry_after` is
        given."""
        extra = dict(headers or {})
        if retry_after is None and status == 429:
            retry_after = 1
        if retry_after is not None:
            extra["retry-after"] = (str(int(retry_after)) if float(retry_after).is_integer()
                                    else str(retry_after))
        for _ in range(times):
            self._failures.append(_AnthropicFailure(
                "status", status=status, headers=dict(extra), match=match, message=message))

    def hang_next(self, seconds: float = 30.0, times: int = 1, *,
                  match: Callable[[RecordedRequest], bool] | None = None) -> None:
        """Hold the next `times` (matching) requests for `seconds` without answering, then
        close the connection. `stop()` releases hung requests at once."""
        for _ in range(times):
            self._failures.append(_Failure("hang", seconds=seconds, match=match))

    def lose_next_response(self, status: int = 502, *,
                           match: Callable[[RecordedRequest], bool] | None = None) -> None:
        raise NotImplementedError("use fail_next or hang_next with the Anthropic fake")

    # -- convenience ----------------------------------------------------------------------
    @property
    def messages_requests(self) -> list[AnthropicRequest]:
        return [r for r in self.requests  # all of them are: _dispatch records only these
                if isinstance(r, AnthropicRequest)
                and r.method == "POST" and r.path == "/v1/messages"]

    def start(self) -> Self:
        self._stop.clear()
        return super().start()

    # -- FakeServer -------------------------------------------------------------------------
    def authorized(self, request: RecordedRequest) -> bool:
        bearer = request.headers.get("authorization", "")
        return (request.headers.get("x-api-key") == self.api_key
                or bearer == f"Bearer {self.api_key}")

    def unauthorized(self, request: RecordedRequest) -> Response:
        if "x-api-key" not in request.headers and "authorization" not in request.headers:
            return self._error(401, "x-api-key header is required")
        return self._error(401, "invalid x-api-key")

    def route(self, request: RecordedRequest) -> Response:
        if request.path != "/v1/messages":
            return self._error(404, f"{request.method} {request.path} not found")
        if request.method != "POST":
            return self._error(405, f"Method {request.method} not allowed")  # invalid_request
        if not request.headers.get("anthropic-version"):
            return self._error(400, "anthropic-version: header is required")
        body = request.data if isinstance(request, AnthropicRequest) else request.json()
        try:
            self._validate(body)
        except InvalidRequest as exc:
            return self._error(400, str(exc))
        try:
            text = self.responder(body)
        except Exception as exc:  # a broken responder is a test bug; surface it as 500
            self.responder_errors.append(exc)
            return self._error(500, f"Internal server error (responder raised {exc!r})")
        return 200, {}, self._message(body, text)

    # -- the API ------------------------------------------------------------------------------
    @staticmethod
    def _validate(body: Any) -> None:
        if not isinstance(body, dict):
            raise InvalidRequest("request body must be a JSON object")
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                raise InvalidRequest(f"{name}: Field required")
        if not isinstance(body["model"], str) or not body["model"]:
            raise InvalidRequest("model: Input should be a valid string")
        max_tokens = body["max_tokens"]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise InvalidRequest("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise InvalidRequest("max_tokens: Input should be greater than or equal to 1")
        messages = body["messages"]
        if not isinstance(messages, list):
            raise InvalidRequest("messages: Input should be a valid list")
        if not messages:
            raise InvalidRequest("messages: at least one message is required")
        previous = None
        for index, message in enumerate(messages):
            where = f"messages.{index}"
            if not isinstance(message, dict):
                raise InvalidRequest(f"{where}: Input should be a valid dictionary")
            role = message.get("role")
            if role not in ("user", "assistant"):
                raise InvalidRequest(f"{where}.role: Input should be 'user' or 'assistant'")
            if index == 0 and role != "user":
                raise InvalidRequest('messages: first message must use the "user" role')
            if role == previous:
                raise InvalidRequest(
                    'messages: roles must alternate between "user" and "assistant", '
                    f'but found multiple "{role}" roles in a row')
            previous = role
            if "content" not in message:
                raise InvalidRequest(f"{where}.content: Field required")
            content = message["content"]
            if isinstance(content, str):
                if not content and index != len(messages) - 1:
                    raise InvalidRequest(
                        f"{where}: all messages must have non-empty content except for the "
                        "optional final assistant message")
            elif isinstance(content, list):
                for b, block in enumerate(content):
                    if not isinstance(block, dict) or "type" not in block:
                        raise InvalidRequest(f"{where}.content.{b}: Input should be a valid "
                                             "content block with a 'type'")
                    if block["type"] == "text" and not isinstance(block.get("text"), str):
                        raise InvalidRequest(f"{where}.content.{b}.text: Field required")
            else:
                raise InvalidRequest(f"{where}.content: Input should be a valid string or list")
        system = body.get("system")
        if system is not None and not isinstance(system, str):
            if not isinstance(system, list) or not all(
                isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
                for b in system
            ):
                raise InvalidRequest("system: Input should be a valid string or a list of "
                                     "text blocks")
        temperature = body.get("temperature")
        if temperature is not None:
            if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
                raise InvalidRequest("temperature: Input should be a valid number")
            if not 0 <= temperature <= 1:
                raise InvalidRequest("temperature: Input should be between 0 and 1")
        stops = body.get("stop_sequences")
        if stops is not None and (not isinstance(stops, list)
                                  or not all(isinstance(s, str) and s for s in stops)):
            raise InvalidRequest("stop_sequences: Input should be a list of non-empty strings")
        metadata = body.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
                raise InvalidRequest("metadata: only 'user_id' is allowed")
            user_id = metadata.get("user_id")
            if user_id is not None and not isinstance(user_id, str):
                raise InvalidRequest("metadata.user_id: Input should be a valid string")

    @staticmethod
    def _message(body: dict[str, Any], text: str) -> dict[str, Any]:
        stop_reason, stop_sequence = "end_turn", None
        cuts = [(text.find(s), s) for s in body.get("stop_sequences") or [] if s in text]
        if cuts:
            position, stop_sequence = min(cuts)
            text, stop_reason = text[:position], "stop_sequence"
        words = list(re.finditer(r"\S+", text))
        if len(words) > body["max_tokens"]:
            text = text[: words[body["max_tokens"] - 1].end()]
            stop_reason, stop_sequence = "max_tokens", None
        system = body.get("system")
        prompt = [system if isinstance(system, str) else message_text(system)]
        prompt += [message_text(m["content"]) for m in body["messages"]]
        return {
            "id": _ident("msg_01"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {
                "input_tokens": max(1, sum(_count_tokens(p) for p in prompt)),
                "output_tokens": _count_tokens(text),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }

    @staticmethod
    def _error(status: int, message: str | None = None) -> Response:
        kind = ERROR_TYPES.get(status) or (
            "api_error" if status >= 500 else "invalid_request_error")
        return status, {}, {
            "type": "error",
            "error": {"type": kind, "message": message or _DEFAULT_MESSAGES.get(status, kind)},
        }

    # -- plumbing ------------------------------------------------------------------------------
    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        request = AnthropicRequest(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=raw,
            data=data,
        )
        with self._lock:
            self.requests.append(request)

        failure = self._next_failure(request)
        if failure is not None and failure.kind == "hang":
            self._stop.wait(failure.seconds)
            handler.close_connection = True  # never answer; the connection just closes
            return
        if self.delay > 0 and self._wait_delay():
            handler.close_connection = True  # shutting down
            return

        if failure is not None and failure.kind == "status":
            message = failure.message if isinstance(failure, _AnthropicFailure) else None
            status, _, payload = self._error(failure.status, message)
            headers = failure.headers
        elif not self.authorized(request):
            status, headers, payload = self.unauthorized(request)
        elif raw and data is None:
            status, headers, payload = self._error(400, "request body is not valid JSON")
        else:
            status, headers, payload = self.route(request)
        self._reply(handler, status, headers, payload)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str],
               payload: Any) -> None:
        request_id = _ident("req_01")
        if isinstance(payload, dict) and payload.get("type") == "error":
            payload = {**payload, "request_id": request_id}
        FakeServer._send(handler, status, {"request-id": request_id, **headers}, payload)


__all__ = [
    "AnthropicFake",
    "AnthropicRequest",
    "DEFAULT_API_KEY",
    "NO_ANSWER",
    "STOPWORDS",
    "content_words",
    "grounded_responder",
    "parse_prompt",
    "stem",
]
