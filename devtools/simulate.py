"""Provider-shaped webhook requests, signed the way each provider signs them.

For trying channels locally (`python -m devtools.try_channel`), the channel benchmark and
the integration tests: one place that knows how Twilio, Meta and Mailgun call us.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate, make_msgid
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator


@dataclass(frozen=True)
class SignedRequest:
    url: str
    body: bytes
    headers: dict[str, str]
    message_id: str  # the provider's id for this message (dedupe key)


def twilio_message(gateway: str, slug: str, creds: dict[str, Any], sender: str, text: str,
                   whatsapp: bool = False, media: Sequence[tuple[str, str]] = (),
                   sid: str | None = None) -> SignedRequest:
    """An inbound SMS / WhatsApp message as Twilio posts it (X-Twilio-Signature)."""
    sid = sid or "SM" + secrets.token_hex(16)
    ours = (creds["whatsapp_numbers"] if whatsapp else creds["sms_numbers"])[0]
    prefix = "whatsapp:" if whatsapp else ""
    form = {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": str(len(media)),
        "ToCity": "", "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received",
        "FromCity": "", "Body": text, "FromCountry": "US", "To": prefix + ours,
        "MessagingServiceSid": "", "ToZip": "", "NumSegments": "1", "MessageSid": sid,
        "AccountSid": creds["account_sid"], "From": prefix + sender, "ApiVersion": "2010-04-01",
    }
    if whatsapp:
        form.update(ProfileName="Visitor", WaId=sender.lstrip("+"),
                    MessageType="image" if media and not text else "text")
    for i, (url, content_type) in enumerate(media):
        form[f"MediaUrl{i}"], form[f"MediaContentType{i}"] = url, content_type
    url = f"{gateway}/channels/{slug}/twilio/messages"
    signature = RequestValidator(creds["auth_token"]).compute_signature(url, form)
    return SignedRequest(url, urlencode(form).encode(), {
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature,
        "I-Twilio-Idempotency-Token": str(uuid.uuid4())}, sid)


def meta_message(gateway: str, slug: str, creds: dict[str, Any], sender: str, text: str,
                 wamid: str | None = None) -> SignedRequest:
    """An inbound WhatsApp Cloud API text message (X-Hub-Signature-256)."""
    wamid = wamid or "wamid.HBgL" + secrets.token_hex(20).upper()
    wa_id = sender.lstrip("+")
    payload = {"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881",
                         "phone_number_id": creds["phone_number_id"]},
            "contacts": [{"profile": {"name": "Visitor"}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": text}}]}}]}]}
    body = json.dumps(payload, separators=(",", ":")).encode()
    signature = hmac.new(creds["app_secret"].encode(), body, hashlib.sha256).hexdigest()
    return SignedRequest(f"{gateway}/channels/{slug}/whatsapp/webhook", body, {
        "Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}, wamid)


def mailgun_message(gateway: str, slug: str, creds: dict[str, Any], sender: str, subject: str,
                    text: str, message_id: str | None = None, in_reply_to: str = "",
                    references: str = "", authenticated: bool = True) -> SignedRequest:
    """An inbound email as a Mailgun route forwards it (signature over timestamp + token).

    `authenticated`: Mailgun found SPF and DKIM passing for the sender's own domain (a mail
    from its real address); False: a From anyone could have typed."""
    message_id = message_id or make_msgid(domain="mail.example.net")
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    signature = hmac.new(creds["mailgun_signing_key"].encode(), (timestamp + token).encode(),
                         hashlib.sha256).hexdigest()
    verdict = "Pass" if authenticated else "Fail"
    headers = [["X-Mailgun-Spf", verdict], ["X-Mailgun-Dkim-Check-Result", verdict],
               ["Received", "by mxa.mailgun.org with SMTP"],
               ["DKIM-Signature", f"v=1; a=rsa-sha256; d={sender.rpartition('@')[2]}; s=s1; "
                                  "bh=x; b=y"],
               ["From", sender],
               ["To", creds["address"]], ["Subject", subject], ["Message-Id", message_id],
               ["Date", formatdate(localtime=False)], ["Mime-Version", "1.0"],
               ["Content-Type", 'text/plain; charset="utf-8"']]
    if in_reply_to:
        headers += [["In-Reply-To", in_reply_to], ["References", references or in_reply_to]]
    form = {
        "recipient": creds["address"], "sender": sender, "from": sender, "subject": subject,
        "body-plain": text, "stripped-text": text, "stripped-signature": "",
        "Message-Id": message_id, "message-headers": json.dumps(headers),
        "timestamp": timestamp, "token": token, "signature": signature,
        "attachment-count": "0",
    }
    if in_reply_to:
        form["In-Reply-To"], form["References"] = in_reply_to, references or in_reply_to
    return SignedRequest(f"{gateway}/channels/{slug}/email/mailgun", urlencode(form).encode(),
                         {"Content-Type": "application/x-www-form-urlencoded"}, message_id)
