"""Wake-ups across processes, against a live server (``manage.py serve``: gunicorn + Daphne):
a build dispatched or cancelled in another process (a ``manage.py shell``, as the Celery worker
or gunicorn would) reaches the worker connected to Daphne at once. Without REDIS_URL this goes
through the Unix datagram sockets of builds.wakeup; with it, through the Redis channel layer."""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from tests.builds.manager_support import SECRET
from tests.e2e.conftest import LiveRegistry, live_server

pytestmark = pytest.mark.e2e

# Runs in the server's environment, a process of its own: queue a build, dispatch it.
DISPATCH = """
import json, time
from builds import manager
from builds.models import Build
from registry.models import Repository
repo = Repository.objects.get(namespace__name="alice", name="public-images")
build = Build.objects.create(repository=repo, namespace_id_cached=repo.namespace_id, source="dockerfile", tags=["t"])
done = manager.dispatch_pending()
print("RESULT " + json.dumps({"build": str(build.uuid), "at": time.time(), "assigned": len(done)}))
"""

CANCEL = """
import json
from accounts.models import User
from builds import services
from builds.models import Build
from registry.permissions import Principal
build = Build.objects.get(uuid=BUILD)
services.build_cancel(build=build, principal=Principal(kind="user", user=User.objects.get(username="alice")))
print("RESULT " + json.dumps({"phase": Build.objects.get(uuid=BUILD).phase}))
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from live_server(tmp_path_factory, "buildws", LiveRegistry, BUILDER_REGISTRATION_SECRET=SECRET)


def result(output: str) -> dict:
    return json.loads(next(line[7:] for line in output.splitlines() if line.startswith("RESULT ")))


def receive(ws, kind: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        message = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
        if message["type"] == kind:
            return message


def test_dispatch_and_cancel_in_other_processes_reach_the_worker(server):
    url = f"ws://127.0.0.1:{server.env['WS_PORT']}/ws/builder/"
    deadline = time.monotonic() + 30
    while True:  # Daphne may still be starting when gunicorn already answers
        try:
            ws = connect(url, open_timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with ws:
        ws.send(json.dumps({"type": "register", "secret": SECRET, "host": "live", "version": "1", "capacity": 1}))
        assert receive(ws, "registered")["heartbeat_seconds"] == 5.0

        dispatched = result(server.shell(DISPATCH))
        job = receive(ws, "job")
        arrived = time.time()
        assert dispatched["assigned"] == 1 and job["build_id"] == dispatched["build"]
        # From the end of the other process's dispatch to the worker (the shell's own exit is
        # included): no polling interval in between.
        assert arrived - dispatched["at"] < 5
        ws.send(json.dumps({"type": "phase", "build_id": job["build_id"], "attempt": 1, "phase": "building"}))
        assert receive(ws, "phase_ack")["accepted"] is True

        cancelled = result(server.shell(f"BUILD = {job['build_id']!r}\n" + CANCEL))
        assert cancelled["phase"] == "cancelled"
        cancel = receive(ws, "cancel")
        assert (cancel["build_id"], cancel["reason"]) == (job["build_id"], "cancelled")


def test_a_wrong_secret_is_refused_by_the_live_server(server):
    with connect(f"ws://127.0.0.1:{server.env['WS_PORT']}/ws/builder/", open_timeout=30) as ws:
        ws.send(json.dumps({"type": "register", "secret": "wrong", "host": "x", "version": "1"}))
        assert json.loads(ws.recv(timeout=30)) == {"type": "refused", "reason": "bad registration secret"}
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=30)
        assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 4003
