"""Development tools: `make run`'s bootstrap, the demo shop, the provider sandbox,
provider-shaped signed requests and try_channel.

Not in the production image; nothing in the product (core, tenants, actions, knowledge,
connectors, admin_api) imports it. It may import any of them.
"""
