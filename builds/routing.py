"""Websocket routes of the build app (served by Daphne through quay_site/asgi.py)."""

from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier
from django.conf import settings
from django.urls import path

from builds.consumers import BuilderConsumer, BuildLogConsumer


class SameHostOriginValidator:
    """With ``ALLOWED_HOSTS = ["*"]`` (the embedded default) AllowedHostsOriginValidator lets any
    page open the socket with its visitor's session cookie; then the page must at least come
    from the host the socket is on (or SERVER_HOSTNAME), whatever the port: the web UI and the
    websocket process share a host name, not a port."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if "*" in settings.ALLOWED_HOSTS:
            headers = dict(scope.get("headers") or [])
            origin = headers.get(b"origin", b"").decode("latin1")
            allowed = {_hostname(headers.get(b"host", b"").decode("latin1"))}
            if settings.SERVER_HOSTNAME:
                allowed.add(_hostname(settings.SERVER_HOSTNAME))
            if not origin or urlsplit(origin).hostname not in allowed - {None}:
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def _hostname(host: str) -> str | None:
    return urlsplit(f"//{host}").hostname if host else None


websocket_urlpatterns = [
    # Workers are programs, not browsers: no Origin to check; the registration secret is the gate.
    path("ws/builder/", BuilderConsumer.as_asgi()),
    path(
        "ws/build/<uuid:build_uuid>/",
        SameHostOriginValidator(AllowedHostsOriginValidator(AuthMiddlewareStack(BuildLogConsumer.as_asgi()))),
    ),
]
