"""The public gateway: channels in, the bot's turns, replies out.

    app.py          the app factory: connections, the registry's channels mounted, error answers
    channels/       one folder per provider (rest, web, twilio, meta, email) and the registry;
                    channels/contract.py is the inbound contract every channel follows
    messages.py     InboundMessage, StatusUpdate, Recipient: what channels translate to
    inbox.py        accept + dedupe, per-conversation order, crash recovery, Rasa turns
    outbox.py       rendering, splitting, retries, partial sends, deliveries, WhatsApp window
    outbound.py     the sender contract (render, deliver) and its errors
    rasa_client.py  Rasa on loopback (bot/channel.py: messages + what it understood), bounded waits
    rendering.py    buttons as numbered choices for text-only channels, and the pick read back
    splitting.py    long texts cut by each channel's rules (SMS segments, WhatsApp length)
"""
