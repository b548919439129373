"""Twilio channel, outbound: the bot's answers as SMS or WhatsApp through the Messages API.

    POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json   (basic auth sid:token)
    To, From, Body | ContentSid, StatusCallback   ->  201 Message resource {"sid": "SM...", ...}

One attempt per message; the outbox retries on TransientSendError. Buttons arrive as
numbered choices (connectors.rendering). SMS and WhatsApp are cut by their channel's rules
(connectors.splitting): SMS into bodies of at most 10 segments, WhatsApp of 1600 characters.
Outside WhatsApp's 24-hour window only an
approved template may be sent: the shop's `whatsapp_template.content_sid`, or nothing, with
Twilio's own error code 63016 recorded. Credentials and bodies are never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from connectors.channels.twilio.payloads import WHATSAPP_PREFIX, bare_number, channel_of
from connectors.outbound import OutboundContext, PermanentSendError, Reply, TransientSendError
from connectors.rendering import messages_text
from connectors.splitting import plain_punctuation, split_for_sms, split_for_whatsapp

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
OUTSIDE_WINDOW_CODE = "63016"  # Twilio: free-form message outside the 24 h window


class TwilioSender:
    """Renders to Messages API forms (To, From, Body | ContentSid, StatusCallback)."""

    def __init__(self, http: httpx.AsyncClient, api_base: str = "https://api.twilio.com") -> None:
        self._http = http
        self._api_base = api_base.rstrip("/")

    def render(self, context: OutboundContext, replies: Sequence[Reply]) -> list[dict[str, str]]:
        if not context.credentials.get("account_sid") or not context.credentials.get("auth_token"):
            raise PermanentSendError("Twilio credentials are incomplete for this shop",
                                     code="20003")
        our_number = context.reply_context.get("to")
        if not our_number:
            raise PermanentSendError("no Twilio number to reply from (no inbound 'to')")
        channel = channel_of(our_number)
        to = f"{WHATSAPP_PREFIX}{bare_number(context.to)}" if channel == "whatsapp" else context.to
        base = {"To": to, "From": our_number}
        if context.status_callback_url:
            base["StatusCallback"] = context.status_callback_url

        text = messages_text(m for reply in replies for m in reply.messages)
        if not text.strip():
            return []  # nothing to say (custom payloads only): not even a template
        if channel == "whatsapp" and not context.window_open:
            return [{**base, **self._template(context)}]
        # Curly quotes and dashes from the LLM would make a whole SMS UCS-2 (3x the segments).
        bodies = (split_for_sms(plain_punctuation(text)) if channel == "sms"
                  else split_for_whatsapp(text))
        return [{**base, "Body": body} for body in bodies]

    @staticmethod
    def _template(context: OutboundContext) -> dict[str, str]:
        template = context.credentials.get("whatsapp_template") or {}
        content_sid = template.get("content_sid") if isinstance(template, Mapping) else None
        if not content_sid:
            raise PermanentSendError(
                "outside the 24-hour WhatsApp window and no approved template",
                code=OUTSIDE_WINDOW_CODE,
            )
        fields = {"ContentSid": str(content_sid)}
        variables = template.get("content_variables")
        if variables:
            fields["ContentVariables"] = json.dumps(variables)
        return fields

    async def deliver(self, context: OutboundContext, form: dict[str, str]) -> str:
        channel = channel_of(form["From"])
        # render() refused incomplete credentials before any part was made.
        account_sid = str(context.credentials["account_sid"])
        auth_token = str(context.credentials["auth_token"])
        url = f"{self._api_base}/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        try:
            response = await self._http.post(url, data=form, auth=(account_sid, auth_token))
        except httpx.TimeoutException:
            raise TransientSendError("Twilio did not answer in time") from None
        except httpx.TransportError as error:
            raise TransientSendError(f"could not reach Twilio ({type(error).__name__})") from None

        payload = _json(response)
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientSendError(_detail(response, payload), code=_code(payload))
        if response.status_code >= 400:
            log.warning(
                "twilio refused a message",
                extra={"tenant_id": context.tenant.id, "channel": channel,
                       "status": response.status_code, "error_code": _code(payload)},
            )
            raise PermanentSendError(_detail(response, payload), code=_code(payload))
        sid = payload.get("sid") if isinstance(payload, dict) else None
        if not isinstance(sid, str) or not sid:
            # Twilio took the request but we cannot tell which message it made; resending
            # could double it, so this is not retried.
            raise PermanentSendError(
                f"Twilio answered {response.status_code} without a message sid"
            )
        log.info(
            "twilio message created",
            extra={"tenant_id": context.tenant.id, "channel": channel, "message_sid": sid,
                   "template": "ContentSid" in form},
        )
        return sid


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _code(payload: Any) -> str | None:
    if isinstance(payload, dict) and payload.get("code") is not None:
        return str(payload["code"])
    return None


def _detail(response: httpx.Response, payload: Any) -> str:
    if isinstance(payload, dict) and payload.get("message"):
        return f"Twilio {response.status_code}: {payload['message']}"
    return f"Twilio answered {response.status_code}"
