"""One module per resource; importing this package declares every route on `api.API`.

Modules are found, not listed: a new resource module is one new file here."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
