"""Repairs running beside real pushes: a live registry (gunicorn, SQLite, filesystem storage) with
no grace period, so that only the locks a repair shares with garbage collection keep it from
taking the bytes of a push between their publication and their row; ``storage_check --repair``
runs in a loop in other processes while images are pushed over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.consistency.conftest import image_of, layer
from tests.registry.conftest import sha256
from tests.storage.conftest import BASE_DIR, LiveRegistry, live_data_dir, wait_for  # noqa: F401  (fixture)


def _answers_401(url: str) -> bool:
    try:
        return requests.get(f"{url}/v2/", timeout=10).status_code == 401
    except requests.RequestException:
        return False


@pytest.fixture
def registry(live_data_dir):  # noqa: F811
    server = LiveRegistry(live_data_dir)
    # Any orphan may be taken at once: a repair is kept off a push's bytes by the digest lock only.
    server.env["GC_GRACE_SECONDS"] = "0"
    try:
        server.start()
    except requests.ReadTimeout:
        # The start-up probe allows two seconds for the first answer; a busy machine takes longer.
        wait_for(lambda: _answers_401(server.url), timeout=60, what="registry server", process=server.process)
    yield server
    server.stop()


def _repair(registry) -> dict:
    result = subprocess.run(
        [sys.executable, "manage.py", "storage_check", "--repair", "--json"],
        cwd=BASE_DIR,
        env=registry.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def test_pushes_beside_repairs_are_never_harmed(registry):
    headers = {"Authorization": f"Bearer {registry.token('repository:alice/app:pull,push')}"}
    shared = layer("shared", 40_000)
    stop = threading.Event()
    reports: list[dict] = []
    failures: list[BaseException] = []

    def repairs():
        try:
            while not stop.is_set():
                reports.append(_repair(registry))
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=repairs)
    thread.start()
    pushed = []
    deadline = time.monotonic() + 120
    try:
        # Keep pushing until repair passes ran meanwhile.
        while len(reports) < 2 and time.monotonic() < deadline and not failures:
            n = len(pushed)
            image = image_of(f"image{n}", shared, layer(f"own{n}", 8_000))
            for blob in image.blobs:
                response = requests.post(
                    f"{registry.url}/v2/alice/app/blobs/uploads/?digest={sha256(blob)}",
                    data=blob,
                    headers={**headers, "Content-Type": "application/octet-stream"},
                    timeout=30,
                )
                assert response.status_code == 201, response.text
            response = requests.put(
                f"{registry.url}/v2/alice/app/manifests/tag{n}",
                data=image.raw,
                headers={**headers, "Content-Type": image.media_type},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            pushed.append(image)
    finally:
        stop.set()
        thread.join(150)
    assert not failures, failures
    assert len(reports) >= 2 and len(pushed) >= 2

    for n, image in enumerate(pushed):
        response = requests.get(f"{registry.url}/v2/alice/app/manifests/tag{n}", headers=headers, timeout=30)
        assert response.status_code == 200 and response.content == image.raw
        for blob in image.blobs:
            response = requests.get(f"{registry.url}/v2/alice/app/blobs/{sha256(blob)}", headers=headers, timeout=30)
            assert response.status_code == 200 and response.content == blob, sha256(blob)
    assert not any(f["kind"] == "blob_missing" for report in reports for f in report["findings"])
    final = _repair(registry)
    assert final["clean"], final
