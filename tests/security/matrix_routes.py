"""Every endpoint the project serves, read from the URL configuration and the websocket router.

A route is the full pattern text (the matrix's key) with the HTTP methods its view answers. The
methods come from the view: a class-based view answers the methods it has handlers for; a
function view declares them here (Django keeps no list of what ``require_POST`` allows). HEAD is
listed only where a view implements it itself (elsewhere Django answers it with GET's handler),
and OPTIONS (DRF's metadata, same permission checks as the method it describes) is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

HANDLER_METHODS = ("get", "head", "post", "put", "patch", "delete")

# Function views: their methods, by dotted name. A new function view must be added here.
FUNCTION_VIEW_METHODS = {
    "triggers.views.push_webhook": ("POST",),
    "triggers.views.provider_webhook": ("POST",),
    "triggers.views.oauth_callback": ("GET",),
    "builds.views.build_package_download": ("GET",),
    "django.views.static.serve": ("GET",),
    "observability.views.health_instance": ("GET",),
    "observability.views.health_endtoend": ("GET",),
    "observability.views.metrics": ("GET",),
}

# Django's admin: every page is the admin site's (staff only); requests use GET.
ADMIN_PREFIX = "admin/"


@dataclass(frozen=True)
class Route:
    pattern: str  # the full pattern text, e.g. "api/v1/repository/<apirepopath:repository>"
    kwargs: tuple[str, ...]  # the names of its path parameters
    view: str  # dotted name of the view, for messages
    methods: tuple[str, ...]

    @property
    def family(self) -> str:
        """How callers present credentials on it: v2 bearer, squash basic, api, or web session."""
        if self.pattern.startswith("v2/"):
            return "v2"
        if self.pattern.startswith("^c1/squash/"):
            return "squash"
        if self.pattern.startswith("api/v1/"):
            return "api"
        if self.pattern.startswith(ADMIN_PREFIX):
            return "admin"
        return "web"


def _view_of(pattern: URLPattern):
    callback = pattern.callback
    cls = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    name = f"{callback.__module__}.{getattr(callback, '__qualname__', callback.__name__)}"
    if cls is not None:
        name = f"{cls.__module__}.{cls.__qualname__}"
    return cls, name


def _methods(pattern_text: str, pattern: URLPattern) -> tuple[str, ...]:
    cls, name = _view_of(pattern)
    if pattern_text.startswith(ADMIN_PREFIX):
        return ("GET",)
    if cls is not None:
        allowed = {m.lower() for m in getattr(cls, "http_method_names", HANDLER_METHODS)}
        return tuple(m.upper() for m in HANDLER_METHODS if m in allowed and callable(getattr(cls, m, None)))
    # An undeclared function view gets the pseudo-method "?", which has no matrix entry: the
    # completeness test names it.
    return FUNCTION_VIEW_METHODS.get(name, ("?",))


def _kwargs(pattern) -> tuple[str, ...]:
    regex = pattern.pattern.regex
    return tuple(regex.groupindex)


def _walk(patterns, prefix: str, kwargs: tuple[str, ...]):
    for entry in patterns:
        text = prefix + str(entry.pattern)
        names = kwargs + _kwargs(entry)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, text, names)
        else:
            yield text, names, entry


def http_routes() -> list[Route]:
    routes = []
    for text, names, pattern in _walk(get_resolver().url_patterns, "", ()):
        _, view = _view_of(pattern)
        routes.append(Route(pattern=text, kwargs=names, view=view, methods=_methods(text, pattern)))
    return routes


def websocket_routes() -> list[str]:
    """The websocket router's patterns (quay_site/asgi.py routes ``websocket`` to these)."""
    from channels.routing import URLRouter

    from quay_site.asgi import application

    router = application.application_mapping["websocket"]
    while not isinstance(router, URLRouter):  # under middleware (request ids, auth)
        router = next(getattr(router, name) for name in ("app", "inner", "application") if hasattr(router, name))
    return [str(route.pattern) for route in router.routes]


def build_path(route: Route, values: dict[str, str]) -> str:
    """The URL of ``route`` with its parameters filled from ``values`` (kwarg name -> text)."""
    missing = [name for name in route.kwargs if name not in values]
    if missing:
        raise KeyError(f"{route.pattern}: no value for path parameter(s) {', '.join(missing)}")
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: values[m.group(1)], route.pattern)
    text = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], text)
    text = text.replace("^", "").replace("$", "").replace("/?", "/")
    return "/" + text
