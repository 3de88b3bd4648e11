"""/metrics in one process: requests by route and status, bytes pushed and pulled, upload and
manifest latencies, notification deliveries by result, bytes reclaimed by garbage collection,
builds by phase, and who may read it. (tests/settings.py gives each test process its own
metrics directory, so the counts here are this process's requests only.)"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

import pytest
from django.test import Client

from observability.processes import remove_dead_process_files
from registry.models import Repository
from tests.gc.conftest import HOUR, run_gc
from tests.notifications.conftest import as_principal, deliver_due, fast_retries, receiver, world  # noqa: F401
from tests.notifications.receivers import Reply
from tests.observability.conftest import scrape
from tests.registry.conftest import V2, make_image, sha256

pytestmark = pytest.mark.django_db


@pytest.fixture
def public_repo(alice):
    from registry import services
    from tests.registry.conftest import user_principal

    return services.repository_create(
        namespace=alice.namespace,
        name="metered",
        principal=user_principal(alice),
        visibility=Repository.Visibility.PUBLIC,
    )


def test_requests_are_counted_by_route_method_and_status_never_by_path(public_repo):
    client = Client()
    before = scrape(client)
    for name in ("alice/metered", "alice/metered", "alice/nothing-here"):
        client.get(f"/v2/{name}/manifests/latest")
    client.get("/v2/")
    client.get("/no/such/page/at/all")
    after = scrape(client)
    # A tag the public repository lacks is 404; an unknown repository asks an anonymous client to log in.
    assert after.delta(before, "quay_http_requests_total", route="v2-manifest", method="GET", status="404") == 2
    assert after.delta(before, "quay_http_requests_total", route="v2-manifest", method="GET", status="401") == 1
    assert after.delta(before, "quay_http_requests_total", route="v2-base", method="GET", status="401") == 1
    assert after.delta(before, "quay_http_requests_total", route="unmatched", method="GET", status="404") == 1
    # The previous scrape itself was counted, under its route name.
    assert after.delta(before, "quay_http_requests_total", route="metrics", method="GET", status="200") == 1
    assert after.delta(before, "quay_http_request_duration_seconds_count", route="v2-manifest", method="GET") == 3
    assert "alice" not in after.text and "/no/such" not in after.text
    # Every duration falls in some bucket: +Inf holds them all.
    assert after.value("quay_http_request_duration_seconds_bucket", route="v2-manifest", method="GET", le="+Inf") == (
        after.value("quay_http_request_duration_seconds_count", route="v2-manifest", method="GET")
    )


def test_push_and_pull_count_bytes_and_time_uploads_and_manifest_puts(alice, public_repo):
    v2 = V2("alice", "password-123")
    name = "alice/metered"
    before = scrape(v2.client)
    image = make_image("metrics", layers=2)
    headers = v2.push(name)
    # The config and the first layer in one request each (monolithic)...
    for blob in image.blobs[:2]:
        assert v2.upload_blob(name, blob, headers).status_code == 201
    # ... the second layer in a session: POST, PATCH, PUT.
    chunked = image.blobs[2]
    started = v2.client.post(f"/v2/{name}/blobs/uploads/", **headers)
    location = started["Location"]
    response = v2.client.patch(location, data=chunked[:10], content_type="application/octet-stream", **headers)
    assert response.status_code == 202
    response = v2.client.put(
        f"{location}?digest={sha256(chunked)}", data=chunked[10:], content_type="application/octet-stream", **headers
    )
    assert response.status_code == 201
    assert v2.put_manifest(name, "v1", image.raw, image.media_type, headers).status_code == 201
    layer = image.blobs[1]
    for _ in range(2):
        response = v2.client.get(f"/v2/{name}/blobs/{sha256(layer)}")
        assert b"".join(response.streaming_content) == layer
    response = v2.client.get(f"/v2/{name}/blobs/{sha256(layer)}", HTTP_RANGE="bytes=5-14")
    assert response.status_code == 206
    assert v2.client.head(f"/v2/{name}/blobs/{sha256(layer)}").status_code == 200  # no body: not counted
    after = scrape(v2.client)

    pushed = sum(len(blob) for blob in image.blobs)
    assert after.delta(before, "quay_registry_pushed_bytes_total") == pushed
    assert after.delta(before, "quay_registry_pulled_bytes_total") == 2 * len(layer) + 10
    assert after.delta(before, "quay_registry_blob_upload_duration_seconds_count") == 3
    assert after.delta(before, "quay_registry_manifest_put_duration_seconds_count") == 1
    assert after.delta(before, "quay_registry_manifest_put_duration_seconds_sum") > 0
    assert after.delta(before, "quay_http_requests_total", route="v2-manifest", method="PUT", status="201") == 1
    assert after.delta(before, "quay_http_requests_total", route="v2-upload", method="PATCH", status="202") == 1
    assert after.delta(before, "quay_http_requests_total", route="v2-upload", method="PUT", status="201") == 1
    assert after.delta(before, "quay_http_requests_total", route="v2-upload-start", method="POST", status="201") == 2
    assert after.delta(before, "quay_http_requests_total", route="v2-upload-start", method="POST", status="202") == 1
    assert after.delta(before, "quay_http_requests_total", route="v2-blob", method="GET", status="200") == 2
    assert after.delta(before, "quay_http_requests_total", route="v2-blob", method="GET", status="206") == 1
    assert after.delta(before, "quay_http_requests_total", route="v2-blob", method="HEAD", status="200") == 1


def test_blob_redirects_and_x_accel_count_the_bytes_handed_over(alice, public_repo, settings):
    v2 = V2("alice", "password-123")
    name = "alice/metered"
    image = v2.push_image(name, "v1", make_image("accel"))
    layer = image.blobs[1]
    settings.X_ACCEL_REDIRECT_PREFIX = "/_blobs"
    before = scrape(v2.client)
    response = v2.client.get(f"/v2/{name}/blobs/{sha256(layer)}")
    assert response.status_code == 200 and response["X-Accel-Redirect"]
    after = scrape(v2.client)
    assert after.delta(before, "quay_registry_pulled_bytes_total") == len(layer)


def test_notification_deliveries_are_counted_by_method_and_result(world, receiver, fast_retries):  # noqa: F811
    from notifications import services

    services.notification_create(
        repository=world.app,
        event="repo_push",
        method="webhook",
        config={"url": receiver.url("/hook")},
        event_config={},
        title="hook",
        principal=as_principal(world.alice),
        ip=None,
    )
    client = Client()
    before = scrape(client)
    receiver.reply(Reply(status=500), Reply(status=200))
    services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": ["v1"]})
    states = deliver_due()
    states += deliver_due()
    assert states == ["pending", "delivered"]
    after = scrape(client)
    assert after.delta(before, "quay_notification_deliveries_total", method="webhook", result="retrying") == 1
    assert after.delta(before, "quay_notification_deliveries_total", method="webhook", result="delivered") == 1
    assert after.delta(before, "quay_notification_deliveries_total", method="webhook", result="failed") == 0


def test_garbage_collection_counts_the_bytes_it_frees(alice, public_repo):
    v2 = V2("alice", "password-123")
    image = v2.push_image("alice/metered", "v1", make_image("gc", layers=3))
    response = v2.client.delete("/v2/alice/metered/manifests/v1", **v2.delete("alice/metered"))
    assert response.status_code == 202
    client = Client()
    before = scrape(client)
    run = run_gc(after=HOUR * 24 * 30)
    after = scrape(client)
    assert run.bytes_freed == sum(len(blob) for blob in image.blobs)
    assert after.delta(before, "quay_gc_reclaimed_bytes_total") == run.bytes_freed
    assert after.delta(before, "quay_gc_blobs_deleted_total") == run.blobs_deleted == len(image.blobs)
    assert after.delta(before, "quay_gc_runs_total", trigger=run.trigger, result="ok") == 1


def test_builds_by_phase_are_read_from_the_database(public_repo):
    from builds.models import Build, Phase

    for phase in (Phase.WAITING, Phase.WAITING, Phase.BUILDING, Phase.COMPLETE):
        Build.objects.create(
            repository=public_repo,
            namespace_id_cached=public_repo.namespace_id,
            source=Build.Source.DOCKERFILE,
            tags=["latest"],
            phase=phase,
        )
    result = scrape(Client())
    expected = dict.fromkeys(Phase.values, 0) | {"waiting": 2, "building": 1, "complete": 1}
    assert {dict(labels)["phase"]: value for labels, value in result.series("quay_builds").items()} == expected
    assert result.value("quay_metrics_source_up", source="database") == 1
    assert result.value("quay_metrics_source_up", source="celery_broker") == 1


# ---------------------------------------------------------------------------------------------
# Who may read /metrics


def test_metrics_are_refused_outside_the_allowed_networks(settings):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    response = Client().get("/metrics")
    assert response.status_code == 403
    assert b"quay_" not in response.content
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200


def test_a_proxy_on_loopback_does_not_open_metrics_to_its_clients(db):
    # deploy/nginx.conf proxies from 127.0.0.1 and appends the client's address.
    client = Client()
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    # A client claiming loopback through the proxy is still seen as itself.
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1, 203.0.113.9").status_code == 403
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="garbage").status_code == 403


# ---------------------------------------------------------------------------------------------
# The metrics directory between runs


def test_files_of_processes_that_exited_are_removed_and_live_ones_kept(tmp_path):
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (exited.pid, live.pid, os.getpid()):
            (tmp_path / f"counter_{pid}.db").write_bytes(b"")
            (tmp_path / f"histogram_{pid}.db").write_bytes(b"")
        (tmp_path / f"gauge_livesum_{exited.pid}.db").write_bytes(b"")
        (tmp_path / "unrelated.txt").write_text("kept")
        assert remove_dead_process_files(tmp_path) == 3
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [f"counter_{live.pid}.db", f"histogram_{live.pid}.db", f"counter_{os.getpid()}.db"]
            + [f"histogram_{os.getpid()}.db", "unrelated.txt"]
        )
    finally:
        live.kill()
        live.wait()
