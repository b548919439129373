"""One module per resource; importing this package declares every route on `api.API`."""

from admin_api.routes import keys  # noqa: F401
