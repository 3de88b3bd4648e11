"""The permission matrix of the websocket routes (builds/routing.py through quay_site/asgi.py):
every route x every kind of caller, through the real ASGI application.

``/ws/build/<uuid>/`` (a build's live log) takes a browser session: readers of the repository
get the log, a signed-in caller who may not read it is closed with 4404, one without a session
with 4401 (API tokens and robots cannot open it: they have no session). ``/ws/builder/`` is for
build workers, gated by the registration secret, which no caller here holds: every caller is
refused (4003) whatever session it has.

Websocket consumers reach the database from other threads, so these tests commit (transactional
database) and the cast is built once per test; all callers are checked in one test per route and
a mismatch names the route and caller.
"""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from builds import wakeup
from quay_site.asgi import application
from tests.security.matrix_routes import websocket_routes
from tests.security.matrix_world import CALLERS, Caller, build_world

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 5

SECRET = "matrix-registration-secret"


def build_log_expected(caller: Caller) -> str:
    if not caller.session:
        return "closed 4401"
    if caller.superuser or caller.repo_role:
        return "open"
    return "closed 4404"


WS_ENTRIES = {
    "ws/builder/": lambda caller: "closed 4003",
    "ws/build/<uuid:build_uuid>/": build_log_expected,
}


@pytest.fixture
def ws_world(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.FEATURE_BUILD_SUPPORT = True
    settings.BUILD_PACKAGE_DIR = tmp_path / "build-packages"
    settings.BUILDER_REGISTRATION_SECRET = SECRET
    world = build_world()
    yield world
    wakeup.close_listener()
    layer = get_channel_layer()
    if hasattr(layer, "flush"):
        async_to_sync(layer.flush)()


def headers_for(world, caller: Caller) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    if caller.session:
        headers.append((b"cookie", f"sessionid={world.sessions[caller.name]}".encode()))
    elif caller.name in world.bearers:
        headers.append((b"authorization", f"Bearer {world.bearers[caller.name]}".encode()))
    return headers


async def closed_with(communicator: WebsocketCommunicator) -> int | None:
    while True:
        output = await communicator.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            return output.get("code")


async def watch_build(world, caller: Caller) -> str:
    path = f"/ws/build/{world.values['build_uuid']}/"
    communicator = WebsocketCommunicator(application, path, headers=headers_for(world, caller))
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    output = await communicator.receive_output(timeout=TIMEOUT)
    await communicator.disconnect()
    if output["type"] == "websocket.close":
        return f"closed {output.get('code')}"
    return "open"


async def register_worker(world, caller: Caller) -> str:
    communicator = WebsocketCommunicator(application, "/ws/builder/", headers=headers_for(world, caller))
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    if not connected:
        return "refused"
    # A caller presents whatever it has (its session, its token) but not the secret.
    secret = world.bearers.get(caller.name, "")
    await communicator.send_json_to({"type": "register", "secret": secret, "host": "x", "version": "1", "capacity": 1})
    code = await closed_with(communicator)
    await communicator.disconnect()
    return f"closed {code}"


CHECKS = {"ws/builder/": register_worker, "ws/build/<uuid:build_uuid>/": watch_build}


def test_every_websocket_route_has_an_entry():
    assert sorted(websocket_routes()) == sorted(WS_ENTRIES) == sorted(CHECKS)


@pytest.mark.parametrize("route", sorted(WS_ENTRIES))
def test_websocket_permission(ws_world, route):
    mismatches = []
    for caller in CALLERS:
        got = async_to_sync(CHECKS[route])(ws_world, caller)
        expected = WS_ENTRIES[route](caller)
        if got != expected:
            mismatches.append(f"/{route} as {caller.name}: expected {expected}, got {got}")
    assert not mismatches, "\n".join(mismatches)
