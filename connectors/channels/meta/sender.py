"""Outbound WhatsApp through Meta's Cloud API: one Graph call per message, one attempt.

    POST {api_base}/{GRAPH_API_VERSION}/{phone_number_id}/messages
    Authorization: Bearer <access_token>
    {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "<digits>",
     "type": "text", "text": {"preview_url": false, "body": "…"}}
    -> {"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid.…"}]}

Buttons become numbered choices (connectors.rendering); long answers are cut by WhatsApp's
rules (connectors.splitting), the same as through Twilio. Outside the 24-hour customer-service
window WhatsApp accepts only approved templates: the shop's template when it has one, otherwise
a PermanentSendError that records why nothing was sent. Retries live in the outbox; this
module only says whether an error is worth retrying.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from connectors.channels.meta.payloads import DEFAULT_GRAPH_BASE, GRAPH_API_VERSION
from connectors.outbound import OutboundContext, PermanentSendError, Reply, TransientSendError
from connectors.rendering import messages_text
from connectors.splitting import split_for_whatsapp

log = logging.getLogger(__name__)

# Graph codes that mean "slow down, then try again": app/account/pair/spam rate limits, plus
# 2 (temporary downtime). Meta often answers them with HTTP 400, so the status alone misses them.
TRANSIENT_CODES = frozenset({2, 4, 80007, 130429, 131048, 131056})
WINDOW_CLOSED_CODE = "131047"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)
_URL = re.compile(r"https?://", re.I)


def _recipient(context: OutboundContext) -> str:
    digits = re.sub(r"\D", "", context.to)  # "+16505551234" -> "16505551234"
    if not digits:
        raise PermanentSendError(f"not a WhatsApp number: {context.to!r}")
    return digits


def _template(credentials: Mapping[str, Any]) -> dict[str, Any] | None:
    template = credentials.get("template")
    if not isinstance(template, Mapping) or not template.get("name"):
        return None
    language = template.get("language") or "en"
    code = language.get("code") if isinstance(language, Mapping) else language
    return {"name": template["name"], "language": {"code": code}}


class MetaWhatsAppSender:
    """Renders to Graph API message payloads (text, or the shop's template)."""

    def __init__(self, http: httpx.AsyncClient, api_base: str = DEFAULT_GRAPH_BASE, *,
                 timeout: httpx.Timeout | float = TIMEOUT) -> None:
        self._http = http
        self._api_base = api_base.rstrip("/")
        self._timeout = timeout

    def render(self, context: OutboundContext, replies: Sequence[Reply]) -> list[dict[str, Any]]:
        credentials = context.credentials
        if not credentials.get("access_token") or not credentials.get("phone_number_id"):
            raise PermanentSendError("WhatsApp access_token or phone_number_id not configured")
        base = {"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": _recipient(context)}

        text = messages_text(m for reply in replies for m in reply.messages)
        if not text.strip():
            return []  # nothing to say (custom payloads only): not even a template
        if not context.window_open:
            template = _template(credentials)
            if template is None:
                raise PermanentSendError(
                    "outside the 24-hour WhatsApp window and no approved template",
                    code=WINDOW_CLOSED_CODE)
            return [{**base, "type": "template", "template": template}]
        return [{**base, "type": "text",
                 "text": {"preview_url": bool(_URL.search(body)), "body": body}}
                for body in split_for_whatsapp(text)]

    async def deliver(self, context: OutboundContext, payload: dict[str, Any]) -> str:
        phone_number_id = str(context.credentials["phone_number_id"])
        token = str(context.credentials["access_token"])
        url = f"{self._api_base}/{GRAPH_API_VERSION}/{phone_number_id}/messages"
        try:
            response = await self._http.post(
                url, json=payload, headers={"Authorization": f"Bearer {token}"},
                timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise TransientSendError(f"Graph API timed out: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise TransientSendError(f"Graph API unreachable: {type(exc).__name__}") from exc

        try:
            data: Any = response.json()
        except ValueError:
            data = None
        if response.is_success:
            messages = data.get("messages") if isinstance(data, dict) else None
            wamid = messages[0].get("id") if isinstance(messages, list) and messages \
                and isinstance(messages[0], dict) else None
            if not isinstance(wamid, str):
                # Meta may have sent it; retrying could deliver twice, so do not.
                raise PermanentSendError("Graph API answered without a message id")
            log.info("whatsapp message sent", extra={
                "tenant": context.tenant.slug, "wamid": wamid, "type": payload["type"]})
            return wamid

        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        code = error.get("code")
        detail = str(error.get("message") or f"HTTP {response.status_code}")
        log.warning("whatsapp send failed", extra={
            "tenant": context.tenant.slug, "http_status": response.status_code, "code": code,
            "subcode": error.get("error_subcode"), "fbtrace_id": error.get("fbtrace_id")})
        code_str = str(code) if code is not None else str(response.status_code)
        if response.status_code == 429 or response.status_code >= 500 or code in TRANSIENT_CODES:
            raise TransientSendError(detail, code=code_str)
        raise PermanentSendError(detail, code=code_str)
