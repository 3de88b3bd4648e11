"""Dockerfile builds in Chromium against a live server (gunicorn + Daphne from ``manage.py serve``):
start a build from the ``+`` menu's New Dockerfile Build, see it waiting on its page and on the
Builds tab, then watch its log and phase change without reloading while the build manager's own
functions (run in the server's environment, as a worker's messages would run them) store them;
once over the websocket, once with the websocket refused (the page polls the REST API instead);
and cancel a build from its page. The first tests drive the worker's side with ``builds.manager``
called from a ``manage.py shell`` of the server, which wakes Daphne's viewers the way the manager
always does, so each step is seen on its own; the last one has a real build worker (buildah) build
while the page watches.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.e2e.conftest import BASE_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SECRET = "ui-browser-build-secret"
DOCKERFILE = b"FROM busybox\nRUN echo hello > /hello\n"
BUILD_URL = re.compile(r".*/repository/alice/private-images/build/([0-9a-f-]{36})$")

# Runs in the server's environment: a worker registers, takes the waiting build and reports.
WORKER_SCRIPT = """
import json
from builds import manager
from builds.models import Build
build = Build.objects.get(uuid=BUILD_UUID)
if build.worker_id is None:
    worker = manager.worker_register(
        secret=SECRET, host="browser-test", version="1.0", capacity=1, channel_name="", remote_addr="127.0.0.1"
    )
    manager.dispatch_pending()
    build.refresh_from_db()
for phase in PHASES:
    accepted, reason = manager.phase_report(
        worker_id=build.worker_id, build_id=str(build.uuid), attempt=build.attempts, phase=phase
    )
    assert accepted, reason
if ENTRIES:
    manager.log_append(worker_id=build.worker_id, build_id=str(build.uuid), attempt=build.attempts, entries=ENTRIES)
build.refresh_from_db()
print("BUILD " + json.dumps({"phase": build.phase, "log_count": build.log_count}))
"""


def worker_reports(server, build_uuid: str, *, phases=(), entries=()) -> dict:
    code = (
        f"BUILD_UUID = {build_uuid!r}\nSECRET = {SECRET!r}\nPHASES = {list(phases)!r}\nENTRIES = {list(entries)!r}\n"
        + WORKER_SCRIPT
    )
    output = server.shell(code)
    return json.loads(next(line[6:] for line in output.splitlines() if line.startswith("BUILD ")))


@pytest.fixture(scope="module")
def builds_enabled(ui_registry):
    """Builds on (with a worker secret) for this module only: the other modules see no Builds tab."""
    ui_registry.shell(
        "from builds import services\n"
        f"services.build_settings_update(enabled=True, registration_secret={SECRET!r}, max_queued_per_namespace=50)"
    )
    yield
    ui_registry.shell("from builds import services\nservices.build_settings_update(enabled=False)")


def start_build(ui, *, tags: str, dockerfile: bytes = DOCKERFILE) -> str:
    """New Dockerfile Build from the + menu on the repository page; returns the build's uuid."""
    ui.goto("/repository/alice/private-images")
    ui.page.get_by_label("Create new").click()
    ui.page.get_by_role("link", name="New Dockerfile Build").click()
    ui.page.get_by_role("heading", name="New Dockerfile Build").wait_for()
    # The URL input belongs to the other source: hidden until that source is chosen.
    assert ui.page.get_by_label("URL", exact=True).is_hidden()
    ui.page.get_by_label("Dockerfile or archive").set_input_files(
        {"name": "Dockerfile", "mimeType": "text/plain", "buffer": dockerfile}
    )
    ui.page.get_by_label("Tags").fill(tags)
    ui.shot("build-new")
    ui.page.get_by_role("button", name="Start Build").click()
    ui.page.wait_for_url(BUILD_URL)
    return BUILD_URL.match(ui.page.url).group(1)


def phase_badge(ui):
    return ui.page.locator("#build-summary .phase")


def test_start_a_build_and_watch_its_log_live(ui, builds_enabled):
    ui.sign_in("alice")
    build_uuid = start_build(ui, tags="latest v1")
    assert phase_badge(ui).inner_text() == "Waiting"
    assert "latest" in ui.text("#build-facts") and "v1" in ui.text("#build-facts")
    assert ui.page.locator("#build-log").is_visible()
    assert "Nothing printed yet" in ui.text(".build-log-panel")

    # Listed as waiting on the Builds tab, with its link back to the page.
    ui.goto("/repository/alice/private-images?tab=builds")
    row = ui.page.locator(f'#builds tr[data-build="{build_uuid}"]')
    assert row.locator(".phase").inner_text() == "Waiting"
    assert "alice" in row.inner_text() and "Dockerfile" in row.inner_text()
    ui.shot("builds-tab")
    row.get_by_role("link", name=build_uuid[:8]).click()
    ui.page.wait_for_url(BUILD_URL)
    ui.page.locator("#build-log-state", has_text="Live.").wait_for()

    # The worker's reports reach the open page: no reload (the marker set on this page survives).
    ui.page.evaluate("window.__sameDocument = true")
    state = worker_reports(
        ui.server,
        build_uuid,
        phases=["pulling", "building"],
        entries=[{"stream": "STEP 1/2: FROM busybox\n"}, {"stream": "STEP 2/2: RUN echo hello > /hello\n"}],
    )
    assert state["phase"] == "building"
    ui.page.locator(".log-command", has_text="STEP 2/2: RUN echo hello > /hello").wait_for()
    ui.page.locator("#build-summary .phase", has_text="Building").wait_for()
    assert ui.page.locator(".log-phase", has_text="Phase: Building").count() == 1
    assert ui.page.locator("#build-cancel").is_visible()

    worker_reports(ui.server, build_uuid, entries=[{"stream": "hello\n"}, {"error": "exit status 1"}])
    ui.page.locator(".log-error", has_text="exit status 1").wait_for()
    # Every stored entry once, in order, as the server would render it.
    lines = ui.page.locator("#build-log .log-line").all_inner_texts()
    assert lines == [
        "Phase: Starting",
        "Phase: Pulling base image",
        "Phase: Building",
        "STEP 1/2: FROM busybox",
        "STEP 2/2: RUN echo hello > /hello",
        "hello",
        "exit status 1",
    ]
    assert ui.page.evaluate("window.__sameDocument") is True
    ui.shot("build-live")

    # Pushing: no Cancel any more, also without a reload.
    worker_reports(ui.server, build_uuid, phases=["pushing"])
    ui.page.locator("#build-summary .phase", has_text="Pushing").wait_for()
    ui.page.locator("#build-cancel").wait_for(state="hidden")
    assert ui.page.evaluate("window.__sameDocument") is True


def test_without_the_websocket_the_page_polls(ui, builds_enabled):
    ui.sign_in("alice")
    build_uuid = start_build(ui, tags="polled")
    # Refuse the websocket as a proxy without websocket support would: the page falls back to
    # polling the REST API every second.
    ui.page.route_web_socket(re.compile(r".*/ws/build/.*"), lambda socket: socket.close())
    ui.page.reload()
    ui.page.locator("#build-log-state", has_text="checking every second").wait_for()
    ui.page.evaluate("window.__sameDocument = true")
    worker_reports(ui.server, build_uuid, phases=["building"], entries=[{"stream": "STEP 1/1: FROM busybox\n"}])
    ui.page.locator(".log-command", has_text="STEP 1/1: FROM busybox").wait_for()
    ui.page.locator("#build-summary .phase", has_text="Building").wait_for()
    assert ui.page.evaluate("window.__sameDocument") is True
    ui.shot("build-polled")


def test_cancel_a_build_from_its_page(ui, builds_enabled):
    ui.sign_in("alice")
    start_build(ui, tags="cancelled")
    ui.page.get_by_role("button", name="Cancel Build").click()  # the confirmation is accepted
    ui.page.locator(".messages li", has_text="Cancelled build").wait_for()
    assert phase_badge(ui).inner_text() == "Cancelled"
    assert ui.page.locator("#build-cancel").count() == 0
    assert "Phase: Cancelled (cancelled by alice)" in ui.text("#build-log")


# Runs in the server's environment: the stand-in worker of the tests above lets go of its builds,
# and every build still open is cancelled, so that the real worker below takes only ours.
QUIESCE = """
from accounts.models import User
from builds import manager, services
from builds.models import FINAL_PHASES, Build, BuildWorker
from registry.permissions import Principal
for worker in BuildWorker.objects.exclude(state="offline"):
    manager.worker_disconnected(worker_id=worker.pk)
alice = Principal(kind="user", user=User.objects.get(username="alice"))
for build in Build.objects.exclude(phase__in=FINAL_PHASES):
    services.build_cancel(build=build, principal=alice)
"""


def test_a_real_workers_build_is_seen_live(ui, builds_enabled, tmp_path):
    """A build worker program (buildah) connects while the page is open: its phases and the
    lines buildah prints appear as they come, and the page ends on Complete, never reloaded."""
    ui.server.shell(QUIESCE)
    ui.sign_in("alice")
    build_uuid = start_build(ui, tags="by-worker", dockerfile=b"FROM scratch\nLABEL built-by=worker\n")
    ui.page.locator("#build-log-state", has_text="Live.").wait_for()
    ui.page.evaluate("window.__sameDocument = true")
    work_dir = tempfile.mkdtemp(prefix="qbu-")  # short: buildah's run root lives under it
    env = {
        **os.environ,
        "SERVER": f"ws://127.0.0.1:{ui.server.env['WS_PORT']}",
        "BUILDER_REGISTRATION_SECRET": SECRET,
        "BUILDER_WORK_DIR": work_dir,
        "BUILDER_HOST": "browser-real-worker",
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "builder"],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ui.page.locator("#build-summary .phase", has_text="Complete").wait_for(timeout=180_000)
        lines = ui.page.locator("#build-log .log-line").all_inner_texts()
        assert "Phase: Building" in lines and lines[-1].startswith("Phase: Complete"), lines
        assert any(line.startswith("STEP 2/2: LABEL") for line in lines), lines
        assert ui.page.evaluate("window.__sameDocument") is True
        assert ui.page.url.endswith(build_uuid)
        ui.shot("build-real-worker")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        shutil.rmtree(work_dir, ignore_errors=True)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()
