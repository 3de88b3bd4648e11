"""ASGI entry point for the websocket process (Daphne with Channels).

Plain HTTP is served by gunicorn (see README: Architecture); this process hosts websockets:
build workers (``/ws/builder/``) and live build logs (``/ws/build/<uuid>/``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quay_site.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from builds.routing import websocket_urlpatterns  # noqa: E402
from quay_site.request_id import RequestIdASGIMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # One request id per websocket connection, in every line its consumer logs.
        "websocket": RequestIdASGIMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
