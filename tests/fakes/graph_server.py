"""A local stand-in for Meta's Graph API (WhatsApp Cloud API send endpoint), plus signed webhooks.

    POST /{version}/{phone_number_id}/messages      Authorization: Bearer <access_token>

Point the sender at it::

    with GraphFake(access_token="EAAG-test", phone_number_ids={"106540352242922"}) as graph:
        sender = MetaWhatsAppSender(httpx.AsyncClient(), api_base=graph.base_url)

Wire format (as the real API):

* Success: `{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}],
  "messages": [{"id": "wamid.…"}]}` (template sends add `"message_status": "accepted"`).
* Errors: `{"error": {"message", "type", "code", "error_data": {"messaging_product",
  "details"}, "error_subcode"?, "fbtrace_id"}}` — a wrong or missing token is 401 code 190
  (OAuthException); a bad body is 400 code 100 naming the parameter; an unknown phone number id
  is 400 code 100 subcode 33; a template the shop has not got approved is 404 code 132001.
* `fail_with(code)` makes the next send(s) answer Graph's error for that code (130429 rate
  limit, 131026 undeliverable, 131047 re-engagement, ...); the base class's `fail_next`,
  `hang_next` and `lose_next_response` still inject bare HTTP failures.

The real API accepts a free-form text outside the 24-hour window and reports 131047 later in a
`failed` status webhook; `status_webhook(...)` builds that webhook, signed like Meta signs it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tests.fakes import FakeServer, RecordedRequest, Response

DEFAULT_TOKEN = "EAAGm0PX4ZCpsBAtest"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_DISPLAY_NUMBER = "15550783881"
DEFAULT_WABA_ID = "102290129340398"
MAX_BODY = 4096

_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<phone>\d+)/messages$")
_KNOWN_TYPES = {"text", "template", "image", "document", "audio", "video", "sticker",
                "location", "contacts", "interactive", "reaction"}

# code -> (HTTP status, message, details, type)
GRAPH_ERRORS: dict[int, tuple[int, str, str, str]] = {
    4: (400, "(#4) Application request limit reached",
        "Too many API calls from this app.", "OAuthException"),
    80007: (400, "(#80007) Rate limit issues",
            "The WhatsApp Business Account has reached its rate limit.", "OAuthException"),
    130429: (400, "(#130429) Rate limit hit",
             "Cloud API message throughput has been reached.", "OAuthException"),
    131048: (400, "(#131048) Spam rate limit hit",
             "Message failed to send because there are restrictions on how many messages can "
             "be sent from this phone number.", "OAuthException"),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit",
             "Message failed to send because there were too many messages sent from this "
             "phone number to the same phone number in a short period of time.",
             "OAuthException"),
    131026: (400, "(#131026) Message undeliverable",
             "Message Undeliverable.", "OAuthException"),
    131047: (400, "(#131047) Re-engagement message",
             "Message failed to send because more than 24 hours have passed since the "
             "customer last replied to this number.", "OAuthException"),
    100: (400, "(#100) Invalid parameter", "Invalid parameter", "OAuthException"),
    190: (401, "Invalid OAuth access token - Cannot parse access token", "", "OAuthException"),
    132001: (404, "(#132001) Template name does not exist in the translation",
             "template name does not exist in the translation", "OAuthException"),
}

DEFAULT_SUBCODES = {130429: 2494055}  # as Meta sends with its throughput limit


def _trace_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()[:23]


def new_wamid() -> str:
    return "wamid." + base64.b64encode(b"\x1c\x18\x0b" + secrets.token_bytes(30)).decode()


def graph_error(code: int, *, details: str | None = None, message: str | None = None,
                subcode: int | None = None, status: int | None = None) -> Response:
    """Graph's error JSON for `code` (known codes get Meta's own message and HTTP status)."""
    default_status, default_message, default_details, kind = GRAPH_ERRORS.get(
        code, (400, f"(#{code}) Error", "", "OAuthException"))
    error: dict[str, Any] = {"message": message or default_message, "type": kind, "code": code}
    if code != 190:
        error["error_data"] = {"messaging_product": "whatsapp",
                               "details": details or default_details}
    subcode = subcode if subcode is not None else DEFAULT_SUBCODES.get(code)
    if subcode is not None:
        error["error_subcode"] = subcode
    error["fbtrace_id"] = _trace_id()
    headers = ({"www-authenticate": 'OAuth "Facebook Platform" "invalid_token"'}
               if code == 190 else {})
    return status or default_status, headers, {"error": error}


class InvalidParameter(Exception):
    """A 400 code 100 with this `details`."""


@dataclass
class _GraphFailure:
    code: int
    status: int | None
    details: str | None
    match: Callable[[RecordedRequest], bool] | None


@dataclass(frozen=True)
class Sent:
    phone_number_id: str
    version: str
    body: dict[str, Any]
    wamid: str

    @property
    def text(self) -> str | None:
        return self.body.get("text", {}).get("body") if self.body.get("type") == "text" else None


class GraphFake(FakeServer):
    def __init__(self, access_token: str = DEFAULT_TOKEN, *,
                 phone_number_ids: Iterable[str] = (DEFAULT_PHONE_NUMBER_ID,),
                 templates: Iterable[tuple[str, str]] | None = None) -> None:
        """`templates`: approved (name, language code) pairs; None approves any template."""
        super().__init__()
        self.access_token = access_token
        self.phone_number_ids = set(phone_number_ids)
        self.templates = set(templates) if templates is not None else None
        self.sent: list[Sent] = []
        self._graph_failures: deque[_GraphFailure] = deque()

    # -- misbehaviour -------------------------------------------------------------------
    def fail_with(self, code: int, *, times: int = 1, status: int | None = None,
                  details: str | None = None,
                  match: Callable[[RecordedRequest], bool] | None = None) -> None:
        """Answer the next `times` authorized sends with Graph's error for `code`."""
        for _ in range(times):
            self._graph_failures.append(_GraphFailure(code, status, details, match))

    # -- convenience ----------------------------------------------------------------------
    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.sent if s.text is not None]

    # -- FakeServer -------------------------------------------------------------------------
    def authorized(self, request: RecordedRequest) -> bool:
        header = request.headers.get("authorization", "")
        return hmac.compare_digest(header, f"Bearer {self.access_token}")

    def unauthorized(self, request: RecordedRequest) -> Response:
        return graph_error(190)

    def route(self, request: RecordedRequest) -> Response:
        match = _PATH.match(request.path)
        if match is None:
            return graph_error(100, status=400, message=(
                f"Unknown path components: {request.path}"), details="Unknown path")
        if request.method != "POST":
            return graph_error(100, message="(#100) Unsupported get request.")
        phone = match.group("phone")
        if phone not in self.phone_number_ids:
            return graph_error(100, subcode=33, message=(
                f"Unsupported post request. Object with ID '{phone}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation."))
        failure = self._next_graph_failure(request)
        if failure is not None:
            return graph_error(failure.code, status=failure.status, details=failure.details)
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            return graph_error(100, details="Request body is not valid JSON")
        try:
            self._validate(body)
        except InvalidParameter as exc:
            return graph_error(100, details=str(exc))
        if body["type"] == "template" and self.templates is not None:
            template = body["template"]
            if (template["name"], template["language"]["code"]) not in self.templates:
                return graph_error(132001, details=(
                    f"template name ({template['name']}) does not exist in "
                    f"{template['language']['code']}"))
        wamid = new_wamid()
        with self._lock:
            self.sent.append(Sent(phone, match.group("version"), body, wamid))
        message: dict[str, Any] = {"id": wamid}
        if body["type"] == "template":
            message["message_status"] = "accepted"
        to = body["to"]
        return 200, {}, {"messaging_product": "whatsapp",
                         "contacts": [{"input": to, "wa_id": re.sub(r"\D", "", to)}],
                         "messages": [message]}

    def _next_graph_failure(self, request: RecordedRequest) -> _GraphFailure | None:
        with self._lock:
            for failure in self._graph_failures:
                if failure.match is None or failure.match(request):
                    self._graph_failures.remove(failure)
                    return failure
        return None

    # -- validation like Graph -----------------------------------------------------------
    @staticmethod
    def _validate(body: Any) -> None:
        if not isinstance(body, dict):
            raise InvalidParameter("Request body must be a JSON object")
        if body.get("messaging_product") != "whatsapp":
            raise InvalidParameter("The parameter messaging_product is required.")
        if body.get("recipient_type", "individual") not in ("individual", "group"):
            raise InvalidParameter("Parameter 'recipient_type' is invalid.")
        to = body.get("to")
        if not isinstance(to, str) or not to:
            raise InvalidParameter("The parameter to is required.")
        if not re.fullmatch(r"\+?\d{6,15}", to):
            raise InvalidParameter("Parameter 'to' is invalid.")
        kind = body.get("type", "text")
        if kind not in _KNOWN_TYPES:
            raise InvalidParameter(f"Parameter 'type' is invalid: {kind!r}")
        body.setdefault("type", kind)
        if kind == "text":
            text = body.get("text")
            if not isinstance(text, dict):
                raise InvalidParameter("The parameter text is required.")
            text_body = text.get("body")
            if not isinstance(text_body, str) or not text_body.strip():
                raise InvalidParameter("The parameter text['body'] is required.")
            if len(text_body) > MAX_BODY:
                raise InvalidParameter(
                    f"Param text['body'] must be at most {MAX_BODY} characters long.")
            if "preview_url" in text and not isinstance(text["preview_url"], bool):
                raise InvalidParameter("Parameter 'preview_url' must be a boolean.")
        if kind == "template":
            template = body.get("template")
            if not isinstance(template, dict) or not isinstance(template.get("name"), str) \
                    or not template["name"]:
                raise InvalidParameter("The parameter template['name'] is required.")
            language = template.get("language")
            if not isinstance(language, dict) or not isinstance(language.get("code"), str) \
                    or not language["code"]:
                raise InvalidParameter("The parameter template['language']['code'] is required.")


# -- signed webhooks, as Meta sends them -------------------------------------------------------


def sign(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends for `body`."""
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signed(app_secret: str, payload: Any) -> tuple[bytes, dict[str, str]]:
    """Serialize `payload` like Meta (compact JSON) and sign it; returns (body, headers)."""
    body = payload if isinstance(payload, bytes) else json.dumps(
        payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return body, {"Content-Type": "application/json",
                  "X-Hub-Signature-256": sign(app_secret, body)}


def status_webhook(app_secret: str, phone_number_id: str, wamid: str, status: str, *,
                   recipient_id: str = "16505551234", error_code: int | None = None,
                   error_title: str | None = None, error_details: str | None = None,
                   timestamp: int | None = None,
                   display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
                   waba_id: str = DEFAULT_WABA_ID) -> tuple[bytes, dict[str, str]]:
    """A signed `statuses` webhook like Meta's for one of our sends (body bytes, headers)."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(timestamp or int(time.time())),
        "recipient_id": recipient_id,
    }
    if status in ("sent", "delivered", "read"):
        entry["conversation"] = {"id": secrets.token_hex(16), "origin": {"type": "service"}}
        entry["pricing"] = {"billable": False, "pricing_model": "PMP", "category": "service",
                            "type": "free_customer_service"}
    if error_code is not None:
        _, message, details, _ = GRAPH_ERRORS.get(error_code, (400, "", "", ""))
        title = error_title or re.sub(r"^\(#\d+\)\s*", "", message) or "Error"
        entry["errors"] = [{
            "code": error_code,
            "title": title,
            "message": title,
            "error_data": {"details": error_details or details or title},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }]
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": display_phone_number,
                             "phone_number_id": phone_number_id},
                "statuses": [entry],
            },
            "field": "messages",
        }]}],
    }
    return signed(app_secret, payload)
