"""Order backends (demo store, Shopify, WooCommerce) and return bookkeeping."""
