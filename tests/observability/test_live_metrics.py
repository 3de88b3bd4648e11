"""/metrics and the health endpoints of a real `manage.py serve` with two gunicorn workers:
totals add up whichever worker answered (and survive a worker's restart), queued Celery tasks
show as the queue's length, and the health endpoints answer on the running server."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict

from tests.e2e.conftest import LiveRegistry, live_server
from tests.observability.conftest import Scrape, expected_health

pytestmark = pytest.mark.e2e

REQUESTS = 240


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The registry without a Celery worker (queued tasks stay queued), WEB_WORKERS=2."""
    yield from live_server(tmp_path_factory, "metrics", LiveRegistry)


def _scrape(server) -> Scrape:
    response = requests.get(f"{server.url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def _base_requests_by_process(server) -> dict[int, float]:
    """GET /v2/ answers (401) counted in each process's own file of the metrics directory."""
    counts = {}
    for path in (Path(server.data_dir) / "run" / "prometheus").glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            if name == "quay_http_requests_total" and labels == {"route": "v2-base", "method": "GET", "status": "401"}:
                counts[pid] = counts.get(pid, 0) + value
    return counts


def _hit_base(server, n: int) -> list[int]:
    # A new connection per request (no session), from 16 threads: both workers accept some.
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda _: requests.get(f"{server.url}/v2/", timeout=30).status_code, range(n)))


def test_totals_are_the_sum_over_the_web_workers(server):
    before, per_process_before = _scrape(server), _base_requests_by_process(server)
    assert _hit_base(server, REQUESTS) == [401] * REQUESTS
    after, per_process_after = _scrape(server), _base_requests_by_process(server)
    assert after.delta(before, "quay_http_requests_total", route="v2-base", method="GET", status="401") == REQUESTS
    answered = {
        pid: per_process_after[pid] - per_process_before.get(pid, 0)
        for pid in per_process_after
        if per_process_after[pid] > per_process_before.get(pid, 0)
    }
    assert len(answered) >= 2, f"one process answered everything: {answered}"
    assert sum(answered.values()) == REQUESTS


def test_a_restarted_worker_keeps_its_counts_in_the_totals(server):
    before = _scrape(server)
    counted = before.value("quay_http_requests_total", route="v2-base", method="GET", status="401")
    workers = [pid for pid in _base_requests_by_process(server) if _alive(pid)]
    assert workers, "no live worker has counted anything"
    os.kill(workers[0], signal.SIGTERM)  # gunicorn's master starts another in its place
    deadline = time.monotonic() + 30
    while _alive(workers[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(workers[0])
    after_restart = _scrape(server)
    assert after_restart.value("quay_http_requests_total", route="v2-base", method="GET", status="401") == counted
    assert _hit_base(server, 40) == [401] * 40
    final = _scrape(server)
    assert final.value("quay_http_requests_total", route="v2-base", method="GET", status="401") == counted + 40


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is gone for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_queued_celery_tasks_are_the_queue_length(server):
    before = _scrape(server)
    assert before.value("quay_metrics_source_up", source="celery_broker") == 1
    for queue in ("celery", "builds", "notifications"):
        assert before.has("quay_celery_queue_length", queue=queue)
    server.shell(
        "from quay_site.celery import app\n"
        "for _ in range(3):\n    app.send_task('notifications.sweep')\n"
        "app.send_task('builds.sweep')\n"
    )
    after = _scrape(server)
    # Each task counts in the queue it is routed to (settings.CELERY_TASK_ROUTES), once.
    assert after.delta(before, "quay_celery_queue_length", queue="notifications") == 3
    assert after.delta(before, "quay_celery_queue_length", queue="builds") == 1
    assert after.delta(before, "quay_celery_queue_length", queue="celery") == 0


def test_builds_by_phase_on_the_live_server(server):
    before = _scrape(server)
    server.shell(
        "from builds.models import Build\n"
        "from registry.models import Repository\n"
        "repo = Repository.objects.get(namespace__name='alice', name='public-images')\n"
        "for phase in ('waiting', 'pushing', 'pushing'):\n"
        "    Build.objects.create(repository=repo, namespace_id_cached=repo.namespace_id, source='dockerfile',\n"
        "                         tags=['latest'], phase=phase)\n"
    )
    after = _scrape(server)
    assert after.delta(before, "quay_builds", phase="waiting") == 1
    assert after.delta(before, "quay_builds", phase="pushing") == 2
    assert after.delta(before, "quay_builds", phase="complete") == 0


@pytest.mark.parametrize("depth", ["instance", "endtoend"])
def test_health_of_the_live_server(server, settings, depth):
    response = requests.get(f"{server.url}/health/{depth}", timeout=30)
    assert (response.json(), response.status_code) == expected_health(settings)


class _WithWorker(LiveRegistry):
    # The Celery worker (with beat) too: its processes count into the same directory.
    serve_args = ("--no-builder",)


@pytest.fixture(scope="module")
def server_with_worker(tmp_path_factory):
    # No periodic pass: the only garbage collections are the ones the test queues.
    yield from live_server(tmp_path_factory, "metrics-worker", _WithWorker, GC_INTERVAL_SECONDS="0")


def test_what_the_celery_worker_counts_is_in_the_web_servers_totals(server_with_worker):
    server = server_with_worker
    server.shell("from quay_site.celery import app\nfor _ in range(2):\n    app.send_task('registry.gc_periodic')\n")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        result = _scrape(server)
        if result.value("quay_gc_runs_total", trigger="periodic", result="ok") >= 2:
            break
        time.sleep(0.5)
    assert result.value("quay_gc_runs_total", trigger="periodic", result="ok") == 2
