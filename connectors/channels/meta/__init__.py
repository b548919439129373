"""WhatsApp through Meta's Cloud API: the signed webhook in, the Graph API out."""

from connectors.channels.contract import Channel
from connectors.channels.meta import credentials
from connectors.channels.meta.routes import routes
from connectors.channels.meta.sender import MetaWhatsAppSender

# Its URL segment and credentials section predate the registry: shops configured
# /channels/SHOP/whatsapp/webhook at Meta and stored their secrets under "meta_whatsapp".
CHANNEL = Channel(
    name="meta", label="WhatsApp Cloud API", routes=routes,
    sender=lambda http, settings: MetaWhatsAppSender(http, settings.graph_api_url),
    check_credentials=credentials.check, url_segment="whatsapp",
    credentials_section="meta_whatsapp")
