"""Rasa's REST channel for any client: JSON in, the bot's messages out in the same request.

It needs no credentials (requests carry the shop's API key); a shop may set where agents'
later replies are pushed (its `rest` section: connectors/channels/rest/credentials.py)."""

from connectors.channels.contract import Channel
from connectors.channels.rest import credentials
from connectors.channels.rest.routes import routes

CHANNEL = Channel(name="rest", label="REST", routes=routes,
                  optional_credentials=credentials.check,
                  check_destinations=credentials.check_destinations)
