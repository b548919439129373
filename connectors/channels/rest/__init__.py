"""Rasa's REST channel for any client: JSON in, the bot's messages out in the same request."""

from connectors.channels.contract import Channel
from connectors.channels.rest.routes import routes

CHANNEL = Channel(name="rest", label="REST", routes=routes)
