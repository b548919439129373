"""Email: a Mailgun route or SendGrid Inbound Parse in, one threaded reply over SMTP out."""

from connectors.channels.contract import Channel
from connectors.channels.email import credentials
from connectors.channels.email.routes import routes
from connectors.channels.email.sender import SmtpSender

CHANNEL = Channel(name="email", label="email", routes=routes,
                  sender=lambda http, settings: SmtpSender(settings.destinations),
                  check_credentials=credentials.check,
                  check_destinations=credentials.check_destinations)
