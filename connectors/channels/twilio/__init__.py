"""SMS and WhatsApp through Twilio: signed webhooks in, the Messages API out."""

from connectors.channels.contract import Channel
from connectors.channels.twilio import credentials
from connectors.channels.twilio.routes import routes
from connectors.channels.twilio.sender import TwilioSender

CHANNEL = Channel(
    name="twilio", label="Twilio", routes=routes,
    sender=lambda http, settings: TwilioSender(http, settings.twilio_api_url),
    check_credentials=credentials.check, status_path="status")
