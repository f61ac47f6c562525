"""Permission-matrix rows kept in one module per feature: each module here defines `ROUTES`
(a list of tests.support.matrix.Route), and the matrix tests every one of them for every persona."""

import importlib
import pkgutil


def extra_routes() -> list:
    routes = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        routes += importlib.import_module(f"{__name__}.{module.name}").ROUTES
    return routes
