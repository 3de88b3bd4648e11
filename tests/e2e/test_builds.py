"""Dockerfile builds end to end, with every real process: ``manage.py serve`` (gunicorn, Daphne,
the Celery worker with beat), build workers (``python -m builder``) building with buildah, and
skopeo pulling the results back.

The server's build settings come from its environment (FEATURE_BUILD_SUPPORT, the registration
secret); builds are started through Quay's REST API with an OAuth token of alice, and watched
through it. A killed worker's build is requeued when its connection drops, with no timeout to
wait for; the heartbeat timeout stays generous because a loaded CI machine delays heartbeats.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.e2e.builds_support import (
    BUILD_SECONDS,
    SECRET,
    BuildServer,
    build_rows,
    build_setup,
    log_outline,
    phases_in_log,
    pulled_files,
    wait_registered,
    worker_pool,
)
from tests.e2e.conftest import PASSWORD, live_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from live_server(
        tmp_path_factory,
        "builds",
        BuildServer,
        FEATURE_BUILD_SUPPORT="1",
        BUILDER_REGISTRATION_SECRET=SECRET,
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32",
        BUILD_HEARTBEAT_TIMEOUT_SECONDS="45",
        BUILD_SWEEP_SECONDS="2",
    )


@pytest.fixture(scope="module")
def setup(server, clients, tmp_path_factory):
    """Alice's API, and busybox pushed as the private base image ``acme/base``."""
    return build_setup(server, clients, tmp_path_factory)


@pytest.fixture
def workers(server):
    yield from worker_pool(server)


def tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


# ---------------------------------------------------------------------------------------------


def test_a_dockerfile_with_a_run_step_from_a_private_base_image(server, setup, clients, workers, tmp_path):
    api = setup
    workers("alpha")
    wait_registered(server, "alpha")
    base = f"{server.host}/acme/base:latest"
    dockerfile = f"FROM {base}\nRUN echo built-by-run > /built.txt && echo hello-from-run\n".encode()
    file_id = api.upload(dockerfile, "text/plain")
    build = api.start("acme/app", file_id=file_id, docker_tags=["v1", "latest"], pull_robot="acme+ci")
    assert build["phase"] == "waiting" and build["tags"] == ["v1", "latest"]
    done = api.wait("acme/app", build["id"], "complete", "error", "internalerror")
    entries = api.logs("acme/app", build["id"])
    assert done["phase"] == "complete", entries
    phases = phases_in_log(entries)
    order = ["build-scheduled", "unpacking", "pulling", "building", "pushing", "complete"]
    assert [p for p in phases if p in order] == [p for p in order if p in phases]
    assert {"building", "pushing", "complete"} <= set(phases)
    assert any("hello-from-run" in e["message"] for e in entries)
    assert any(e.get("type") == "command" and "RUN" in e["message"] for e in entries)
    files = pulled_files(clients, server, f"{server.host}/acme/app:v1", tmp_path)
    assert files["built.txt"] == b"built-by-run\n"
    assert "bin/busybox" in files  # the base image's layer is there too
    inspected = clients.skopeo(
        "inspect", "--tls-verify=false", "--creds", f"alice:{PASSWORD}", f"docker://{server.host}/acme/app:latest"
    )
    row = build_rows(server, [build["id"]])[build["id"]]
    assert row["attempts"] == 1 and row["worker"] == "alpha"
    assert json.loads(inspected.stdout)["Digest"] in row["digests"]


def test_an_archive_build_sees_only_its_subdirectory(server, setup, clients, workers, tmp_path):
    api = setup
    workers("alpha")
    wait_registered(server, "alpha")
    base = f"{server.host}/acme/base:latest"
    archive = tar_gz(
        {
            "Dockerfile": b"FROM scratch\nthis root Dockerfile must not be the one built\n",
            "secret-outside.txt": b"not part of the context\n",
            "sub/Dockerfile": (
                f"FROM {base}\nCOPY file.txt /from-context.txt\nRUN test ! -e /secret-outside.txt\n"
            ).encode(),
            "sub/file.txt": b"inside the context\n",
        }
    )
    file_id = api.upload(archive, "application/gzip")
    build = api.start("acme/app", file_id=file_id, subdirectory="sub", docker_tags=["archive"], pull_robot="acme+ci")
    done = api.wait("acme/app", build["id"], "complete", "error", "internalerror")
    assert done["phase"] == "complete", log_outline(api.logs("acme/app", build["id"]))
    files = pulled_files(clients, server, f"{server.host}/acme/app:archive", tmp_path)
    assert files["from-context.txt"] == b"inside the context\n"

    # COPY of a file outside the chosen subdirectory fails: only the context is visible.
    escaping = tar_gz(
        {
            "outside.txt": b"x\n",
            "sub/Dockerfile": f"FROM {base}\nCOPY ../outside.txt /o.txt\n".encode(),
        }
    )
    build = api.start(
        "acme/app",
        file_id=api.upload(escaping, "application/gzip"),
        subdirectory="sub",
        docker_tags=["escape"],
        pull_robot="acme+ci",
    )
    failed = api.wait("acme/app", build["id"], "complete", "error", "internalerror")
    assert failed["phase"] == "error" and failed["error"], failed


class _DockerfileServer:
    """A local HTTP server (127.0.0.1) serving one Dockerfile, counting its requests."""

    def __init__(self, body: bytes):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/Dockerfile"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_url_build_from_a_local_server_the_operator_allows(server, setup, clients, workers, tmp_path):
    api = setup
    workers("alpha")
    wait_registered(server, "alpha")
    source = _DockerfileServer(f"FROM {server.host}/acme/base:latest\nRUN echo from-url > /url.txt\n".encode())
    try:
        build = api.start("acme/app", archive_url=source.url, docker_tags=["url"], pull_robot="acme+ci")
        done = api.wait("acme/app", build["id"], "complete", "error", "internalerror")
    finally:
        source.stop()
    assert done["phase"] == "complete", log_outline(api.logs("acme/app", build["id"]))
    # The server fetched it once; the worker got it from the server, not from the URL.
    assert source.requests == 1
    assert pulled_files(clients, server, f"{server.host}/acme/app:url", tmp_path)["url.txt"] == b"from-url\n"


def _processes_with(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_cancel_during_the_build_stops_it_and_pushes_nothing(server, setup, clients, workers):
    api = setup
    workers("alpha")
    wait_registered(server, "alpha")
    marker = f"cancel-me-{time.time_ns()}"
    dockerfile = f"FROM {server.host}/acme/base:latest\nRUN sleep 120 && echo {marker}\n".encode()
    build = api.start(
        "acme/app", file_id=api.upload(dockerfile, "text/plain"), docker_tags=["cancelled"], pull_robot="acme+ci"
    )
    api.wait("acme/app", build["id"], "building", timeout=BUILD_SECONDS)
    deadline = time.monotonic() + 60
    # The RUN step's shell names the marker; other tests' builds may run "sleep" at the same time.
    while not _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(marker), "the RUN step never started"
    response = api.request("DELETE", f"/repository/acme/app/build/{build['id']}")
    assert response.status_code == 201, response.text
    assert api.build("acme/app", build["id"])["phase"] == "cancelled"
    deadline = time.monotonic() + 30
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_with(marker), "buildah's RUN step survived the cancel"
    inspect = clients.skopeo(
        "inspect",
        "--tls-verify=false",
        "--creds",
        f"alice:{PASSWORD}",
        f"docker://{server.host}/acme/app:cancelled",
        check=False,
    )
    assert inspect.returncode != 0 and "manifest unknown" in inspect.stderr.lower()
    # The worker is free again: the next build runs.
    nxt = api.start(
        "acme/app",
        file_id=api.upload(f"FROM {server.host}/acme/base:latest\n".encode(), "text/plain"),
        docker_tags=["after-cancel"],
        pull_robot="acme+ci",
    )
    assert api.wait("acme/app", nxt["id"], "complete", "error", "internalerror")["phase"] == "complete"


def test_a_worker_killed_mid_build_loses_it_to_another(server, setup, workers):
    api = setup
    first = workers("first")
    wait_registered(server, "first")
    # Long enough that the first worker is still at it when killed: the check below runs
    # `manage.py shell`, seconds on a busy machine (with 4 s, the first worker once finished).
    dockerfile = f"FROM {server.host}/acme/base:latest\nRUN sleep 15 && echo survived > /s.txt\n".encode()
    build = api.start(
        "acme/app", file_id=api.upload(dockerfile, "text/plain"), docker_tags=["requeued"], pull_robot="acme+ci"
    )
    api.wait("acme/app", build["id"], "building")
    assert build_rows(server, [build["id"]])[build["id"]]["worker"] == "first"
    first.kill()
    workers("second")
    done = api.wait("acme/app", build["id"], "complete", "error", "internalerror")
    assert done["phase"] == "complete", log_outline(api.logs("acme/app", build["id"]))
    row = build_rows(server, [build["id"]])[build["id"]]
    assert row["attempts"] == 2 and row["worker"] == "second"
    phases = phases_in_log(api.logs("acme/app", build["id"]))
    assert "waiting" in phases[phases.index("building") :]  # requeued after the first building


def test_twenty_builds_over_two_workers_are_each_built_once(server, setup, workers):
    api = setup
    workers("one")
    workers("two")
    wait_registered(server, "one", "two")
    ids = []
    for n in range(20):
        dockerfile = f"FROM {server.host}/acme/base:latest\nRUN echo {n} > /n.txt\n".encode()
        build = api.start(
            "acme/app", file_id=api.upload(dockerfile, "text/plain"), docker_tags=[f"n{n}"], pull_robot="acme+ci"
        )
        ids.append(build["id"])
    for build_id in ids:
        assert api.wait("acme/app", build_id, "complete", "error", "internalerror", timeout=600)["phase"] == "complete"
    rows = build_rows(server, ids)
    assert len(rows) == 20
    assert all(row["attempts"] == 1 for row in rows.values()), rows
    for build_id in ids:  # one building phase each: nobody ran a build a second time
        assert phases_in_log(api.logs("acme/app", build_id)).count("building") == 1
    assert {row["worker"] for row in rows.values()} == {"one", "two"}
    tags = requests.get(
        f"{server.url}/api/v1/repository/acme/app/tag/",
        params={"limit": 100, "onlyActiveTags": "true"},
        headers=api.session.headers,
        timeout=30,
    ).json()["tags"]
    assert {f"n{n}" for n in range(20)} <= {t["name"] for t in tags}
