"""The web widget: one script tag on the shop's site, a signed visitor session over a socket."""

from connectors.channels.contract import Channel
from connectors.channels.web.routes import routes

CHANNEL = Channel(name="web", label="web widget", routes=routes)
