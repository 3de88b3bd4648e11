"""The websocket consumers through the real ASGI application (Channels' WebsocketCommunicator):
a worker registers, is handed a job when a build is queued, reports phases, logs and its
result; a browser watches a build's log live. Wake-ups travel the way they do in production
(a datagram to this process's socket, or Redis when REDIS_URL is set)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from builds import services as build_services
from builds import wakeup
from builds.models import Build, BuildWorker, Phase
from quay_site.asgi import application
from tests.builds.manager_support import SECRET, builds_on, eager_celery, world

FIXTURES = (builds_on, eager_celery, world)  # pytest finds them here, by name
TIMEOUT = 5
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_layer(settings, tmp_path):
    """Each test its own socket directory; the listener and the layer's groups end with it."""
    settings.DATA_DIR = tmp_path
    yield
    wakeup.close_listener()
    layer = get_channel_layer()
    if hasattr(layer, "flush"):
        async_to_sync(layer.flush)()


def run(scenario):
    async_to_sync(scenario)()


async def connect_worker(*, secret=SECRET, capacity=1) -> tuple[WebsocketCommunicator, dict]:
    worker = WebsocketCommunicator(application, "/ws/builder/")
    connected, _ = await worker.connect(timeout=TIMEOUT)
    assert connected
    await worker.send_json_to(
        {"type": "register", "secret": secret, "host": "b1", "version": "1.0", "capacity": capacity}
    )
    return worker, await worker.receive_json_from(timeout=TIMEOUT)


def browser(build: Build, *, cookie: str | None, start: int = 0, origin: str = "http://testserver"):
    headers = [(b"host", b"testserver"), (b"origin", origin.encode())]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/build/{build.uuid}/?start={start}", headers=headers)


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def closed_with(communicator: WebsocketCommunicator) -> int:
    while True:
        output = await communicator.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            return output.get("code")


db = database_sync_to_async


# ---------------------------------------------------------------------------------------------
# Workers


def test_worker_takes_a_queued_build_and_reports_it(world, eager_celery):
    async def scenario():
        worker, registered = await connect_worker()
        assert registered["type"] == "registered" and registered["heartbeat_seconds"] == 5.0
        row = await db(BuildWorker.objects.get)(uuid=registered["worker_id"])
        assert row.state == "idle" and row.host == "b1"
        assert await worker.receive_nothing(timeout=0.2)

        # Queued after the worker connected: build_create -> dispatch task -> wake-up -> job.
        build = await db(world.build)()
        job = await worker.receive_json_from(timeout=TIMEOUT)
        assert (job["type"], job["build_id"], job["attempt"]) == ("job", str(build.uuid), 1)
        assert job["repository"] == "alice/app" and job["token"]

        await worker.send_json_to({"type": "phase", "build_id": job["build_id"], "attempt": 1, "phase": "building"})
        ack = await worker.receive_json_from(timeout=TIMEOUT)
        assert ack == {
            "type": "phase_ack",
            "build_id": job["build_id"],
            "phase": "building",
            "accepted": True,
            "reason": "",
        }
        await worker.send_json_to(
            {"type": "log", "build_id": job["build_id"], "attempt": 1, "entries": [{"stream": "STEP 1/1: FROM x\n"}]}
        )
        await worker.send_json_to({"type": "heartbeat", "build_id": job["build_id"]})
        await worker.send_json_to(
            {
                "type": "result",
                "build_id": job["build_id"],
                "attempt": 1,
                "ok": True,
                "image_id": "sha256:" + "1" * 64,
                "manifest_digests": ["sha256:" + "2" * 64],
            }
        )
        result_ack = await worker.receive_json_from(timeout=TIMEOUT)
        assert result_ack == {"type": "result_ack", "build_id": job["build_id"], "accepted": True, "reason": ""}
        done = await db(Build.objects.get)(pk=build.pk)
        assert done.phase == Phase.COMPLETE and done.manifest_digests == ["sha256:" + "2" * 64]
        assert done.logs_archived  # archived after the result, from the consumer's process

        # Another build goes to the now free worker at once.
        second = await db(world.build)()
        job = await worker.receive_json_from(timeout=TIMEOUT)
        assert job["build_id"] == str(second.uuid)
        await worker.disconnect()
        requeued = await db(Build.objects.get)(pk=second.pk)
        assert (requeued.phase, requeued.worker_id, requeued.access_token_id) == (Phase.WAITING, None, None)
        gone = await db(BuildWorker.objects.get)(uuid=registered["worker_id"])
        assert gone.state == "offline"

    run(scenario)


def test_a_waiting_build_goes_to_a_worker_as_it_registers(world, eager_celery):
    async def scenario():
        build = await db(world.build)()
        worker, registered = await connect_worker()
        assert registered["type"] == "registered"
        job = await worker.receive_json_from(timeout=TIMEOUT)
        assert job["build_id"] == str(build.uuid)
        await worker.disconnect()

    run(scenario)


def test_a_wrong_secret_is_refused(world):
    async def scenario():
        worker, refused = await connect_worker(secret="nope")
        assert refused == {"type": "refused", "reason": "bad registration secret"}
        assert await closed_with(worker) == 4003
        assert not await db(BuildWorker.objects.exists)()

    run(scenario)


@pytest.mark.parametrize("first", [{"type": "heartbeat", "build_id": None}, "not json", [1, 2]])
def test_anything_before_register_is_refused(world, first):
    async def scenario():
        worker = WebsocketCommunicator(application, "/ws/builder/")
        assert (await worker.connect(timeout=TIMEOUT))[0]
        if isinstance(first, str):
            await worker.send_to(text_data=first)
        else:
            await worker.send_json_to(first)
        refused = await worker.receive_json_from(timeout=TIMEOUT)
        assert refused["type"] == "refused"
        assert await closed_with(worker) == 4003

    run(scenario)


def test_cancel_reaches_the_worker_and_it_gets_no_job_until_it_lets_go(world, eager_celery):
    async def scenario():
        worker, _ = await connect_worker()
        first = await db(world.build)()
        job = await worker.receive_json_from(timeout=TIMEOUT)
        second = await db(world.build)()  # waits: the worker is busy
        assert await worker.receive_nothing(timeout=0.2)

        build = await db(Build.objects.get)(pk=first.pk)
        await db(build_services.build_cancel)(build=build, principal=world.principal())
        cancel = await worker.receive_json_from(timeout=TIMEOUT)
        assert cancel == {"type": "cancel", "build_id": job["build_id"], "attempt": 1, "reason": "cancelled"}
        # The second build is assigned but not sent while the worker still stops the first ...
        await worker.send_json_to({"type": "phase", "build_id": job["build_id"], "attempt": 1, "phase": "pushing"})
        ack = await worker.receive_json_from(timeout=TIMEOUT)
        assert (ack["accepted"], ack["reason"]) == (False, "cancelled")
        assert await worker.receive_nothing(timeout=0.2)
        # ... and is sent once the worker's heartbeat shows it let go.
        await worker.send_json_to({"type": "heartbeat", "build_id": None})
        job = await worker.receive_json_from(timeout=TIMEOUT)
        assert job["build_id"] == str(second.uuid)
        await worker.disconnect()

    run(scenario)


# ---------------------------------------------------------------------------------------------
# Browsers


def test_browser_gets_the_backlog_then_live_entries(world, eager_celery):
    async def scenario():
        worker, _ = await connect_worker()
        build = await db(world.build)()
        job = await worker.receive_json_from(timeout=TIMEOUT)
        await worker.send_json_to({"type": "phase", "build_id": job["build_id"], "attempt": 1, "phase": "building"})
        await worker.receive_json_from(timeout=TIMEOUT)
        lines = [{"stream": "STEP 1/2: FROM x\n"}, {"stream": "hello\n"}]
        await worker.send_json_to({"type": "log", "build_id": job["build_id"], "attempt": 1, "entries": lines})
        await worker.send_json_to({"type": "heartbeat", "build_id": job["build_id"]})  # a round trip: stored
        await asyncio.sleep(0.1)

        cookie = await db(session_of)(world.alice)
        viewer = browser(build, cookie=cookie, start=1)
        assert (await viewer.connect(timeout=TIMEOUT))[0]
        backlog = await viewer.receive_json_from(timeout=TIMEOUT)
        assert "datetime" in backlog["entries"][0].pop("data")  # when the phase began
        assert backlog == {
            "type": "logs",
            "start": 1,
            "total": 4,
            "entries": [
                {"message": "building", "type": "phase"},
                {"message": "STEP 1/2: FROM x", "type": "command"},
                {"message": "hello"},
            ],
        }
        assert await viewer.receive_json_from(timeout=TIMEOUT) == {
            "type": "phase",
            "phase": "building",
            "status": {"current_command": 1, "total_commands": 2},
        }

        await worker.send_json_to(
            {"type": "log", "build_id": job["build_id"], "attempt": 1, "entries": [{"stream": "live line\n"}]}
        )
        live = await viewer.receive_json_from(timeout=TIMEOUT)
        assert (live["start"], live["entries"]) == (4, [{"message": "live line"}])
        await worker.send_json_to({"type": "phase", "build_id": job["build_id"], "attempt": 1, "phase": "pushing"})
        entry = await viewer.receive_json_from(timeout=TIMEOUT)
        assert "datetime" in entry["entries"][0].pop("data")
        assert entry["entries"] == [{"message": "pushing", "type": "phase"}]
        phase = await viewer.receive_json_from(timeout=TIMEOUT)
        assert (phase["type"], phase["phase"]) == ("phase", "pushing")
        await viewer.disconnect()
        await worker.disconnect()

    run(scenario)


def test_browser_without_access_is_closed(world, bob):
    async def scenario():
        build = await db(world.build)()
        stranger = browser(build, cookie=await db(session_of)(bob))
        assert (await stranger.connect(timeout=TIMEOUT))[0]
        assert await closed_with(stranger) == 4404
        anonymous = browser(build, cookie=None)
        assert (await anonymous.connect(timeout=TIMEOUT))[0]
        assert await closed_with(anonymous) == 4401
        # Another site's page may not use the visitor's session.
        elsewhere = browser(build, cookie=await db(session_of)(world.alice), origin="http://evil.example")
        connected, _ = await elsewhere.connect(timeout=TIMEOUT)
        assert not connected

    run(scenario)


def test_wakeup_datagrams_carry_only_known_groups(tmp_path, settings):
    """What the socket accepts: the three kinds of group and the two handlers, nothing else."""
    assert wakeup._parse(json.dumps({"g": "builder-1", "t": "builder.wake"}).encode()) == ("builder-1", "builder.wake")
    assert wakeup._parse(json.dumps({"g": "build-1", "t": "build.changed"}).encode()) == ("build-1", "build.changed")
    assert wakeup._parse(json.dumps({"g": "builders", "t": "builder.wake"}).encode()) == ("builders", "builder.wake")
    assert wakeup._parse(json.dumps({"g": "other", "t": "builder.wake"}).encode()) is None
    assert wakeup._parse(json.dumps({"g": "build-1", "t": "websocket.disconnect"}).encode()) is None
    assert wakeup._parse(b"\xff not json") is None


def test_wake_up_sockets_work_under_a_data_dir_too_deep_for_a_socket_path(tmp_path, settings):
    """A Unix socket address holds 107 bytes; a deep DATA_DIR still gets its wake-ups (the
    socket is bound and reached through a descriptor of its directory)."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    settings.DATA_DIR = deep
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    from channels.layers import channel_layers

    channel_layers.backends.clear()  # the layer of the settings above

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(wakeup.BUILDERS_GROUP, channel)
        await wakeup.ensure_listener()
        socket_file = deep / "run" / f"ws-{os.getpid()}.sock"
        assert len(str(socket_file)) > 107 and socket_file.exists()
        sent = await asyncio.to_thread(wakeup._send_datagrams, {"g": wakeup.BUILDERS_GROUP, "t": "builder.wake"})
        assert sent == 1
        assert await asyncio.wait_for(layer.receive(channel), TIMEOUT) == {"type": "builder.wake"}

    try:
        asyncio.run(scenario())
    finally:
        wakeup.close_listener()
        channel_layers.backends.clear()
