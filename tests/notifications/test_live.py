"""Notifications on the real thing: a live server (``manage.py serve`` with gunicorn), a real
Celery worker process with its beat, skopeo pushing, and a local receiver.

- A push with skopeo produces exactly one signed ``repo_push`` with the pushed tag.
- A worker killed with SIGKILL in the middle of a delivery loses nothing: after its lease lapses,
  the next worker sends the same delivery again, with the same delivery id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from notifications import signing
from tests.e2e import images
from tests.e2e.conftest import BASE_DIR, PASSWORD, LiveRegistry, clients, live_server  # noqa: F401  (fixture)
from tests.notifications.receivers import Receiver, Reply

pytestmark = pytest.mark.e2e

# Short leases and a fast sweeper, so that a lost attempt is retried within seconds.
LIVE_ENV = {
    "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32",
    "OUTBOUND_TIMEOUT_SECONDS": "5",
    "NOTIFICATION_LEASE_SECONDS": "6",
    "NOTIFICATION_SWEEP_SECONDS": "1",
    "NOTIFICATION_RETRY_BASE_SECONDS": "0.5",
    "GC_INTERVAL_SECONDS": "0",
}


class Worker:
    """``celery worker --beat`` in the live server's environment, as ``manage.py serve`` runs it."""

    def __init__(self, server: LiveRegistry, name: str):
        self.server = server
        self.log_path = server.data_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "quay_site", "worker", "--loglevel=INFO", "--concurrency=1",
                 "--without-gossip", "--without-mingle", "--beat"],
                cwd=BASE_DIR,
                env=self.server.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    def kill(self) -> None:
        """SIGKILL to the worker and its pool child at once: no cleanup, no acknowledgement."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from live_server(tmp_path_factory, "notify", LiveRegistry, **LIVE_ENV)


@pytest.fixture(scope="module")
def token(server) -> str:
    out = server.shell(
        "from accounts import scopes, services\nfrom accounts.models import User\n"
        "_, token = services.oauth_token_create(user=User.objects.get(username='alice'), scopes=scopes.ALL)\n"
        "print('TOKEN ' + token)"
    )
    return next(line[6:] for line in out.splitlines() if line.startswith("TOKEN "))


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.stop()


@pytest.fixture
def workers(server):
    started: list[Worker] = []

    def start(name: str) -> Worker:
        worker = Worker(server, name).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def api(server, token, method: str, path: str, body=None):
    response = requests.request(
        method, f"{server.url}/api/v1/{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return response


def webhook(server, token, repository: str, url: str) -> dict:
    body = {"event": "repo_push", "method": "webhook", "config": {"url": url}, "eventConfig": {}, "title": "live"}
    response = api(server, token, "POST", f"repository/{repository}/notification/", body)
    assert response.status_code == 201, response.text
    return response.json()


def wait_for_delivery(server, token, repository: str, notification: str, state: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        listing = api(server, token, "GET", f"repository/{repository}/notification/{notification}/deliveries").json()
        found = [d for d in listing["deliveries"] if d["state"] == state]
        if found:
            path = f"repository/{repository}/notification/{notification}/deliveries/{found[0]['id']}"
            return api(server, token, "GET", path).json()
        if time.monotonic() > deadline:
            raise AssertionError(f"no {state} delivery: {json.dumps(listing)}")
        time.sleep(0.3)


def test_a_skopeo_push_sends_exactly_one_signed_repo_push(server, token, receiver, workers, clients, tmp_path):  # noqa: F811
    created = webhook(server, token, "alice/private-images", receiver.url("/push"))
    worker = workers("push-worker")
    layout = images.busybox_layout(tmp_path / "layout")
    clients.skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"alice:{PASSWORD}",
        f"oci:{layout}:latest",
        f"docker://{server.host}/alice/private-images:v1",
    )
    try:
        (request,) = receiver.wait_for(1, timeout=60)
    except AssertionError:
        raise AssertionError(worker.log()) from None
    assert request.json() == {
        "repository": "alice/private-images",
        "namespace": "alice",
        "name": "private-images",
        "docker_url": f"{server.host}/alice/private-images",
        "homepage": f"http://{server.host}/repository/alice/private-images",
        "updated_tags": ["v1"],
    }
    assert signing.verify(secret=created["config"]["secret"], headers=request.headers, body=request.body)
    # Several sweeps later there is still one request: nothing is sent twice.
    time.sleep(3)
    assert len(receiver.requests) == 1
    delivery = wait_for_delivery(server, token, "alice/private-images", created["uuid"], "delivered")
    assert delivery["id"] == request.headers["webhook-id"] and delivery["attempts"] == 1
    assert [(a["number"], a["success"], a["status_code"]) for a in delivery["attempt_log"]] == [(1, True, 200)]


def test_a_worker_killed_mid_delivery_is_replaced_and_the_delivery_sent_again(server, token, receiver, workers):
    hold = threading.Event()
    receiver.reply(Reply(hold=hold))
    created = webhook(server, token, "alice/public-images", receiver.url("/kill"))
    first_worker = workers("worker-1")
    server.shell(
        "from django.db import transaction\nfrom notifications.services import event_emit\n"
        "from registry.models import Repository\n"
        "with transaction.atomic():\n"
        "    event_emit(event='repo_push', repository=Repository.objects.get(name='public-images'),"
        " data={'updated_tags': ['k1']})\n"
    )
    try:
        (first,) = receiver.wait_for(1, timeout=60)
    except AssertionError:
        raise AssertionError(first_worker.log()) from None
    # The worker is now waiting for the receiver's answer, in the middle of the attempt.
    first_worker.kill()
    hold.set()
    second_worker = workers("worker-2")
    try:
        _, second = receiver.wait_for(2, timeout=60)
    except AssertionError:
        raise AssertionError(second_worker.log()) from None
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.body == first.body and second.json()["updated_tags"] == ["k1"]
    secret = created["config"]["secret"]
    assert signing.verify(secret=secret, headers=first.headers, body=first.body)
    assert signing.verify(secret=secret, headers=second.headers, body=second.body)
    delivery = wait_for_delivery(server, token, "alice/public-images", created["uuid"], "delivered")
    assert delivery["id"] == first.headers["webhook-id"] and delivery["attempts"] == 2
    log = [(a["number"], a["success"]) for a in delivery["attempt_log"]]
    assert log == [(1, False), (2, True)]
    assert "stopped during this attempt" in delivery["attempt_log"][0]["error"]
    time.sleep(2)
    assert len(receiver.requests) == 2
