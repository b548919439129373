"""A local stand-in for Twilio's Messages API, and for the status callbacks Twilio posts back.

Point the sender at it::

    with TwilioFake(account_sid="AC...", auth_token="secret") as twilio:
        sender = TwilioSender(httpx.AsyncClient(), api_base=twilio.base_url)

Wire format (as the real API):

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, HTTP basic auth
  ``AccountSid:AuthToken``, form fields ``To``, ``From`` (or ``MessagingServiceSid``),
  ``Body`` and/or ``ContentSid`` (+ ``ContentVariables``) or ``MediaUrl``, optional
  ``StatusCallback``.
* 201 with a Message resource (``sid`` "SM" + 32 hex, ``status`` "queued", RFC 2822 dates,
  ``num_segments`` counted like Twilio, ``uri`` and ``subresource_uris``).
* Errors are ``{"code", "message", "more_info", "status"}``: 401 code 20003 for wrong or
  missing credentials (or another account's path), 404 code 20404 for unknown resources,
  400 with 21604 (no To), 21603 (no From), 21602 (no Body, ContentSid or MediaUrl),
  21211 (To not a valid E.164 number, or a number listed in ``invalid_numbers``), 21910
  (From and To on different channels), 21617 (Body over 1600 characters).
  NB: Twilio's code for a missing body is 21602; 21604 is its code for a missing To.

Status callbacks: a message sent with ``StatusCallback`` gets, on request, form-encoded POSTs
to that URL shaped like Twilio's (``MessageSid``, ``MessageStatus``, ``SmsSid``,
``SmsStatus``, ``AccountSid``, ``From``, ``To``, ``ApiVersion``, ``ErrorCode`` on failure,
``ChannelPrefix``/``EventType`` on WhatsApp), signed with ``X-Twilio-Signature`` computed by
twilio's ``RequestValidator(auth_token).compute_signature``. Either call ``post_status`` /
``deliver`` yourself, or construct with ``auto_status=("sent", "delivered")`` to have them
posted in the background after each send.
"""

from __future__ import annotations

import re
import secrets
import threading
import urllib.error
import urllib.request
from base64 import b64decode
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlencode

from twilio.request_validator import RequestValidator

from connectors.splitting import segments
from tests.fakes import FakeServer, RecordedRequest, Response

DEFAULT_ACCOUNT_SID = "AC4f1d2e8b9c0a7f6e5d4c3b2a1908f7e6"
DEFAULT_AUTH_TOKEN = "twilio-test-auth-token-0123456789"
API_VERSION = "2010-04-01"
WHATSAPP = "whatsapp:"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_CREATE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")


def twilio_error(status: int, code: int, message: str) -> Response:
    return status, {}, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass(frozen=True)
class SentMessage:
    """One message the fake accepted."""

    sid: str
    to: str
    from_: str
    body: str | None
    content_sid: str | None
    status_callback: str | None
    form: dict[str, str]

    @property
    def channel(self) -> str:
        return "whatsapp" if self.to.startswith(WHATSAPP) else "sms"


@dataclass(frozen=True)
class StatusCallback:
    """A status callback as Twilio would post it: where, what, and its signature."""

    url: str
    form: list[tuple[str, str]]
    signature: str

    @property
    def body(self) -> bytes:
        return urlencode(self.form).encode("utf-8")

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Twilio-Signature": self.signature,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
        }


class TwilioFake(FakeServer):
    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        invalid_numbers: Sequence[str] = (),
        auto_status: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.invalid_numbers = set(invalid_numbers)
        self.auto_status = tuple(auto_status)
        self.sent: list[SentMessage] = []
        # (sid, status, HTTP status of the callback or None when unreachable)
        self.callbacks: list[tuple[str, str, int | None]] = []
        self._threads: list[threading.Thread] = []

    # -- FakeServer --------------------------------------------------------------------------
    def authorized(self, request: RecordedRequest) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        match = _CREATE.match(request.path)
        path_account = match.group("account") if match else self.account_sid
        return (user, password) == (self.account_sid, self.auth_token) and path_account == user

    def unauthorized(self, request: RecordedRequest) -> Response:
        return twilio_error(401, 20003, "Authenticate")

    def route(self, request: RecordedRequest) -> Response:
        if request.method == "POST" and _CREATE.match(request.path):
            form = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
            return self._create(dict(form))
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")

    # -- the Messages API ----------------------------------------------------------------------
    def _create(self, form: dict[str, str]) -> Response:
        to, from_ = form.get("To", ""), form.get("From", "")
        body, content_sid = form.get("Body"), form.get("ContentSid")
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not from_ and not form.get("MessagingServiceSid"):
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not body and not content_sid and not form.get("MediaUrl"):
            return twilio_error(400, 21602, "Message body is required.")
        bare_to = to.removeprefix(WHATSAPP)
        if not _E164.match(bare_to) or bare_to in self.invalid_numbers:
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {bare_to}")
        if from_ and to.startswith(WHATSAPP) != from_.startswith(WHATSAPP):
            return twilio_error(
                400, 21910, "Invalid From and To pair. From and To should be of the same channel"
            )
        if body is not None and len(body) > 1600:
            return twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )

        sid = "SM" + secrets.token_hex(16)
        message = SentMessage(sid=sid, to=to, from_=from_, body=body, content_sid=content_sid,
                              status_callback=form.get("StatusCallback"), form=form)
        with self._lock:
            self.sent.append(message)
        if message.status_callback and self.auto_status:
            thread = threading.Thread(target=self._post_statuses, args=(message,), daemon=True)
            self._threads.append(thread)
            thread.start()
        return 201, {}, self.resource(message)

    def resource(self, message: SentMessage) -> dict[str, Any]:
        now = formatdate(usegmt=True).replace("GMT", "+0000")
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message.body or "",
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(segments(message.body or "")),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": "queued",
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": message.to,
            "uri": f"{base}.json",
        }

    # -- convenience ------------------------------------------------------------------------------
    def messages_to(self, number: str) -> list[SentMessage]:
        """Messages sent to `number` (`+1555...` matches SMS and `whatsapp:+1555...` alike)."""
        bare = number.removeprefix(WHATSAPP)
        with self._lock:
            return [m for m in self.sent if m.to == number or m.to.removeprefix(WHATSAPP) == bare]

    # -- status callbacks -------------------------------------------------------------------
    def status_callback(self, sid: str, status: str,
                        error_code: str | None = None) -> StatusCallback:
        """The signed status callback Twilio would post for message `sid`."""
        message = next(m for m in self.sent if m.sid == sid)
        if not message.status_callback:
            raise ValueError(f"message {sid} was sent without a StatusCallback")
        form: list[tuple[str, str]] = []
        if error_code:
            form.append(("ErrorCode", error_code))
        if message.channel == "whatsapp":
            form += [("EventType", status.upper()), ("ChannelPrefix", "whatsapp")]
        form += [
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", message.to),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid),
            ("From", message.from_),
            ("ApiVersion", API_VERSION),
        ]
        signature = RequestValidator(self.auth_token).compute_signature(
            message.status_callback, dict(form)
        )
        return StatusCallback(url=message.status_callback, form=form, signature=signature)

    def post_status(self, sid: str, status: str, error_code: str | None = None,
                    timeout: float = 5.0) -> int | None:
        """POST a signed status callback to the message's StatusCallback URL, like Twilio.

        Returns the HTTP status the receiver answered, or None when it could not be reached.
        """
        callback = self.status_callback(sid, status, error_code)
        request = urllib.request.Request(callback.url, data=callback.body,
                                         headers=callback.headers, method="POST")
        answer: int | None
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer = response.status
        except urllib.error.HTTPError as error:
            answer = error.code
        except (urllib.error.URLError, OSError):
            answer = None
        with self._lock:
            self.callbacks.append((sid, status, answer))
        return answer

    def deliver(self, sid: str) -> list[int | None]:
        """Report the message sent, then delivered (what a handset that got it causes)."""
        return [self.post_status(sid, "sent"), self.post_status(sid, "delivered")]

    def _post_statuses(self, message: SentMessage) -> None:
        # Like Twilio, report after the create call has answered (the sender knows the sid).
        if self._stop.wait(0.05):
            return
        for status in self.auto_status:
            if self._stop.is_set():
                return
            self.post_status(message.sid, status)

    def wait_for_callbacks(self, timeout: float = 5.0) -> None:
        """Join the background status posts started by `auto_status`."""
        for thread in list(self._threads):
            thread.join(timeout)
