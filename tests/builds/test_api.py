"""Quay's build API over real HTTP (Django's test client): filedrop and upload, starting builds
from files and URLs, listing, logs, cancelling, the workers' package download, the switch, the
admin pages."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse

from builds import packages, selectors
from builds.models import Build, BuildLogEntry, BuildPackage, BuildSettings, BuildWorker, Phase
from notifications import services as notification_services
from notifications.models import NotificationEvent
from registry.models import RepositoryAccessToken, UsageLog
from tests.builds.api_support import (
    DOCKERFILE,
    Api,
    Reply,
    as_principal,
    builds_on,
    file_server,
    job_token,
    package_dir,
    plain_tar,
    problem,
    queued_build,
    tar_gz,
    upload,
    world,
    zip_bytes,
)

BUILDS = "repository/acme/app/build/"

FIXTURES = (builds_on, file_server, package_dir, world)  # pytest finds them here, by name


def stored_files(directory) -> list[str]:
    """Published packages (the spool directory aside)."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_file())


def spool_files(directory) -> list[str]:
    spool = directory / "tmp"
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


# ---------------------------------------------------------------------------------------------
# The switch


def test_it_answers_404_with_a_clear_message_while_builds_are_off(world):
    alice = world.api("admin")
    body = problem(alice.post("filedrop/", {"mimeType": "text/plain"}), 404, "not_found")
    assert "not enabled" in body["detail"]
    problem(alice.get(BUILDS), 404)
    problem(alice.post(BUILDS, {"archive_url": "http://example.com/x"}), 404)
    assert not BuildPackage.objects.exists()


def test_the_environment_wins_over_the_superusers_switch(world, builds_on):
    alice = world.api("admin")
    with override_settings(FEATURE_BUILD_SUPPORT=False):
        problem(alice.get(BUILDS), 404)
    assert alice.get(BUILDS).status_code == 200
    BuildSettings.objects.filter(pk=1).update(enabled=False)
    problem(alice.get(BUILDS), 404)
    with override_settings(FEATURE_BUILD_SUPPORT=True):
        assert alice.get(BUILDS).status_code == 200


# ---------------------------------------------------------------------------------------------
# Uploads and builds from files


def test_it_builds_an_uploaded_dockerfile(world, builds_on, package_dir):
    alice = world.api("admin")
    file_id, put = upload(alice, DOCKERFILE, "text/plain")
    assert put.status_code == 200, put.content
    assert put.json()["sha256"] == hashlib.sha256(DOCKERFILE).hexdigest()
    assert put.json()["mime_type"] == packages.MIME_DOCKERFILE
    response = alice.post(BUILDS, {"file_id": file_id, "docker_tags": ["v1", "latest"]})
    assert response.status_code == 201, response.content
    body = response.json()
    build = Build.objects.get(uuid=body["id"])
    assert response["Location"] == f"http://testserver/api/v1/repository/acme/app/build/{build.uuid}/status"
    assert body["phase"] == "waiting"
    assert body["tags"] == ["v1", "latest"]
    assert body["display_name"] == hashlib.sha256(DOCKERFILE).hexdigest()[:7]
    assert body["resource_key"] == file_id
    assert body["manual_user"] == "alice"
    assert body["is_writer"] is True
    assert body["repository"] == {"namespace": "acme", "name": "app"}
    assert (body["dockerfile_path"], body["context"], body["subdirectory"]) == ("Dockerfile", "", "")
    assert build.source == Build.Source.DOCKERFILE
    assert build.namespace_id_cached == world.acme.pk
    assert build.started_by == world.alice
    assert (package_dir / file_id).read_bytes() == DOCKERFILE
    assert spool_files(package_dir) == []
    entry = UsageLog.objects.get(kind="build_dockerfile")
    assert entry.repository == world.app
    assert entry.metadata["build_uuid"] == str(build.uuid)
    assert entry.metadata["fileid"] == file_id
    assert entry.metadata["docker_tags"] == ["v1", "latest"]


def test_it_builds_a_tar_gz_from_a_subdirectory(world, builds_on):
    alice = world.api("admin")
    data = tar_gz({"sub/Dockerfile": DOCKERFILE, "sub/hello": b"hi", "other": b"x"})
    file_id, put = upload(alice, data, "application/gzip")
    assert put.json()["mime_type"] == packages.MIME_GZIP
    response = alice.post(BUILDS, {"file_id": file_id, "subdirectory": "/sub/"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["subdirectory"], body["dockerfile_path"], body["context"]) == ("sub", "sub/Dockerfile", "sub")
    assert body["tags"] == ["latest"]
    build = Build.objects.get(uuid=body["id"])
    assert build.source == Build.Source.ARCHIVE
    assert packages.package_kind(build.package) == "archive"


def test_it_builds_a_zip_with_a_dockerfile_path(world, builds_on):
    alice = world.api("admin")
    file_id, put = upload(alice, zip_bytes({"app/Dockerfile.prod": DOCKERFILE}))
    assert put.json()["mime_type"] == packages.MIME_ZIP
    response = alice.post(BUILDS, {"file_id": file_id, "dockerfile_path": "/app/Dockerfile.prod"})
    assert response.status_code == 201, response.content
    assert (response.json()["dockerfile_path"], response.json()["context"]) == ("app/Dockerfile.prod", "app")


def test_it_recognises_a_plain_tar(world, builds_on):
    file_id, put = upload(world.api("admin"), plain_tar({"Dockerfile": DOCKERFILE}))
    assert put.json()["mime_type"] == packages.MIME_TAR


def test_it_refuses_an_upload_that_is_no_build_source(world, builds_on, package_dir):
    alice = world.api("admin")
    file_id, put = upload(alice, b"\x7fELF\x02\x01\x01\x00" + bytes(64))
    assert "neither a Dockerfile nor" in problem(put, 400)["detail"]
    assert stored_files(package_dir) == [] and spool_files(package_dir) == []
    assert BuildPackage.objects.get(uuid=file_id).uploaded is None
    problem(alice.post(BUILDS, {"file_id": file_id}), 400)


def test_an_upload_over_the_cap_is_refused_with_413(world, builds_on, package_dir, settings):
    settings.BUILD_PACKAGE_MAX_BYTES = 100
    alice = world.api("admin")
    file_id, put = upload(alice, b"FROM scratch\n" + b"# padding\n" * 20)
    assert "larger than the limit" in problem(put, 413)["detail"]
    assert stored_files(package_dir) == [] and spool_files(package_dir) == []
    assert BuildPackage.objects.get(uuid=file_id).uploaded is None


def test_an_upload_is_taken_once_and_only_from_its_owner(world, builds_on):
    alice = world.api("admin")
    file_id, put = upload(alice, DOCKERFILE)
    assert put.status_code == 200
    again = alice.client.put(f"/filedrop/{file_id}", data=b"FROM busybox\n", content_type="text/plain", **alice.headers)
    problem(again, 409)
    eve = world.api("other_org")
    problem(eve.client.put(f"/filedrop/{file_id}", data=DOCKERFILE, content_type="text/plain", **eve.headers), 404)
    anonymous = Api()
    assert anonymous.client.put(f"/filedrop/{file_id}", data=DOCKERFILE, content_type="text/plain").status_code == 401
    # eve cannot build from alice's file either
    eve_repo = "repository/globex/app/build/"
    problem(eve.post(eve_repo, {"file_id": file_id}), 404)  # no such repository
    assert BuildPackage.objects.get(uuid=file_id).sha256 == hashlib.sha256(DOCKERFILE).hexdigest()


def test_a_file_builds_once(world, builds_on):
    alice = world.api("admin")
    file_id, _ = upload(alice, DOCKERFILE)
    assert alice.post(BUILDS, {"file_id": file_id}).status_code == 201
    assert "already used" in problem(alice.post(BUILDS, {"file_id": file_id}), 400)["detail"]


# ---------------------------------------------------------------------------------------------
# Builds from a URL


def test_it_builds_from_a_url_on_an_allowed_local_server(world, builds_on, file_server, package_dir):
    data = tar_gz({"Dockerfile": DOCKERFILE})
    file_server.default = Reply(status=200, body=data, headers={"Content-Type": "application/gzip"})
    url = file_server.url("/context.tar.gz")
    response = world.api("admin").post(BUILDS, {"archive_url": url, "docker_tags": ["from-url"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["archive_url"] == url
    assert body["display_name"] == url
    build = Build.objects.get(uuid=body["id"])
    assert build.source == Build.Source.URL
    assert build.package.sha256 == hashlib.sha256(data).hexdigest()
    assert build.package.mime_type == packages.MIME_GZIP
    assert (package_dir / str(build.package.uuid)).read_bytes() == data
    assert [r.path for r in file_server.requests] == ["/context.tar.gz"]
    # A reader does not see the URL.
    assert "archive_url" not in world.api("member").get(f"{BUILDS}{build.uuid}").json()


def test_it_refuses_a_url_to_a_private_address(world, builds_on, package_dir):
    from tests.notifications.receivers import Receiver

    server = Receiver()  # on 127.0.0.1, which the guard does not allow by default
    try:
        response = world.api("admin").post(BUILDS, {"archive_url": server.url("/x.tar.gz")})
    finally:
        server.stop()
    assert "not allowed" in problem(response, 400)["detail"]
    assert server.requests == []
    assert not Build.objects.exists() and not BuildPackage.objects.exists()
    assert stored_files(package_dir) == [] and spool_files(package_dir) == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.tar.gz", "http://10.0.0.1/x.tar.gz"])
def test_it_refuses_other_schemes_and_private_literals(world, builds_on, url):
    assert "not allowed" in problem(world.api("admin").post(BUILDS, {"archive_url": url}), 400)["detail"]
    assert not Build.objects.exists()


def test_it_refuses_a_redirect(world, builds_on, file_server):
    file_server.default = Reply(status=302, body=b"", headers={"Location": "http://10.0.0.1/x.tar.gz"})
    response = world.api("admin").post(BUILDS, {"archive_url": file_server.url("/moved")})
    assert "redirect" in problem(response, 400)["detail"]
    assert len(file_server.requests) == 1
    assert not Build.objects.exists() and not BuildPackage.objects.exists()


def test_it_refuses_a_url_whose_body_is_over_the_cap(world, builds_on, file_server, settings, package_dir):
    settings.BUILD_PACKAGE_MAX_BYTES = 1000
    file_server.default = Reply(status=200, body=b"FROM scratch\n" + b"#" * 5000)
    response = world.api("admin").post(BUILDS, {"archive_url": file_server.url("/big")})
    assert "larger than the limit" in problem(response, 413)["detail"]
    assert not BuildPackage.objects.exists()
    assert stored_files(package_dir) == [] and spool_files(package_dir) == []


def test_it_refuses_a_url_answering_an_error(world, builds_on, file_server):
    file_server.default = Reply(status=404, body=b"nope")
    assert "HTTP 404" in problem(world.api("admin").post(BUILDS, {"archive_url": file_server.url("/x")}), 400)["detail"]


# ---------------------------------------------------------------------------------------------
# Bad input and limits


def test_it_answers_429_over_the_namespace_queue_limit(world, builds_on):
    BuildSettings.objects.filter(pk=1).update(max_queued_per_namespace=2)
    alice = world.api("admin")
    ids = []
    for _ in range(2):
        file_id, _ = upload(alice, DOCKERFILE)
        response = alice.post(BUILDS, {"file_id": file_id})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    file_id, _ = upload(alice, DOCKERFILE)
    assert "Maximum queued build" in problem(alice.post(BUILDS, {"file_id": file_id}), 429)["detail"]
    assert Build.objects.count() == 2
    # A finished build frees its place.
    assert alice.delete(f"{BUILDS}{ids[0]}").status_code == 201
    assert alice.post(BUILDS, {"file_id": file_id}).status_code == 201


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"docker_tags": ["bad tag"]}, "Invalid tag name"),
        ({"docker_tags": []}, "non-empty"),
        ({"docker_tags": ["a", "a"]}, "twice"),
        ({"docker_tags": ["-leading-dash"]}, "Invalid tag name"),
        ({"subdirectory": "../up"}, "'..' is not allowed"),
        ({"dockerfile_path": "sub/../../Dockerfile"}, "'..' is not allowed"),
        ({"context": "a/..", "dockerfile_path": "a/Dockerfile"}, "'..' is not allowed"),
        ({"dockerfile_path": "other/Dockerfile", "context": "sub"}, "inside the build context"),
        ({"file_id": None}, "file_id or archive_url required"),
    ],
)
def test_it_refuses_bad_tags_and_paths(world, builds_on, fields, message):
    alice = world.api("admin")
    file_id, _ = upload(alice, tar_gz({"sub/Dockerfile": DOCKERFILE}))
    body = problem(alice.post(BUILDS, {"file_id": file_id, **fields}), 400)
    assert message in body["detail"]
    assert not Build.objects.exists()


def test_a_single_dockerfile_takes_no_subdirectory(world, builds_on):
    alice = world.api("admin")
    file_id, _ = upload(alice, DOCKERFILE)
    assert (
        "apply to archives" in problem(alice.post(BUILDS, {"file_id": file_id, "subdirectory": "sub"}), 400)["detail"]
    )


def test_a_pull_robot_must_be_of_the_namespace_and_chosen_by_its_admin(world, builds_on):
    alice = world.api("admin")
    file_id, _ = upload(alice, DOCKERFILE)
    problem(alice.post(BUILDS, {"file_id": file_id, "pull_robot": "globex+bot"}), 404)
    problem(alice.post(BUILDS, {"file_id": file_id, "pull_robot": "alice"}), 404)
    response = alice.post(BUILDS, {"file_id": file_id, "pull_robot": "acme+bot"})
    assert response.status_code == 201, response.content
    assert response.json()["pull_robot"] == {"name": "acme+bot", "kind": "user", "is_robot": True}
    # A writer who does not administer acme may not use its robots.
    from registry import services as registry_services
    from registry.models import Role

    registry_services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    charlie = world.api("user")
    file_id, _ = upload(charlie, DOCKERFILE)
    problem(charlie.post(BUILDS, {"file_id": file_id, "pull_robot": "acme+bot"}), 403)
    assert charlie.post(BUILDS, {"file_id": file_id}).status_code == 201


# ---------------------------------------------------------------------------------------------
# Who may do what


def test_readers_view_but_may_not_start_or_cancel(world, builds_on):
    build = queued_build(world)
    bob = world.api("member")
    file_id, _ = upload(bob, DOCKERFILE)
    problem(bob.post(BUILDS, {"file_id": file_id}), 403)
    listing = bob.get(BUILDS)
    assert [b["id"] for b in listing.json()["builds"]] == [str(build.uuid)]
    assert listing.json()["builds"][0]["is_writer"] is False
    assert bob.get(f"{BUILDS}{build.uuid}/status").status_code == 200
    problem(bob.delete(f"{BUILDS}{build.uuid}"), 403)
    assert Build.objects.get(pk=build.pk).phase == Phase.WAITING


def test_strangers_get_404_and_anonymous_callers_401(world, builds_on):
    build = queued_build(world)
    eve = world.api("other_org")
    problem(eve.get(BUILDS), 404)
    problem(eve.get(f"{BUILDS}{build.uuid}"), 404)
    problem(eve.get(f"{BUILDS}{build.uuid}/logs"), 404)
    problem(eve.delete(f"{BUILDS}{build.uuid}"), 404)
    problem(eve.post(BUILDS, {"archive_url": "http://example.com/x"}), 404)
    anonymous = Api()
    problem(anonymous.get(BUILDS), 401)
    problem(anonymous.get(f"{BUILDS}{build.uuid}"), 401)
    problem(anonymous.post(BUILDS, {"archive_url": "http://example.com/x"}), 401)
    problem(anonymous.post("filedrop/", {"mimeType": "text/plain"}), 401)


def test_a_build_of_another_repository_is_404_under_this_one(world, builds_on):
    from registry import services as registry_services

    other = registry_services.repository_create(namespace=world.acme, name="other", principal=as_principal(world.alice))
    build = queued_build(world, repository=other)
    alice = world.api("admin")
    problem(alice.get(f"{BUILDS}{build.uuid}"), 404)
    problem(alice.get(f"{BUILDS}not-a-uuid"), 404)
    assert alice.get(f"repository/acme/other/build/{build.uuid}").status_code == 200


# ---------------------------------------------------------------------------------------------
# Listing and logs


def test_it_lists_builds_newest_first_with_a_limit(world, builds_on):
    builds = [queued_build(world) for _ in range(3)]
    alice = world.api("admin")
    listed = [b["id"] for b in alice.get(BUILDS).json()["builds"]]
    assert listed == [str(b.uuid) for b in reversed(builds)]
    assert [b["id"] for b in alice.get(BUILDS, limit=2).json()["builds"]] == listed[:2]
    Build.objects.filter(pk=builds[0].pk).update(created=builds[0].created - timedelta(days=2))
    since = int((builds[1].created - timedelta(seconds=1)).timestamp())
    assert len(alice.get(BUILDS, since=since).json()["builds"]) == 2
    problem(alice.get(BUILDS, limit="many"), 400)


def _log(build, *entries):
    for seq, (kind, message, data) in enumerate(entries):
        BuildLogEntry.objects.create(build=build, seq=seq, type=kind, message=message, data=data)
    Build.objects.filter(pk=build.pk).update(log_count=len(entries))


LOG = [
    ("phase", "building", {}),
    ("command", "STEP 1/2: FROM scratch", {"command": "FROM"}),
    ("", "Getting image source signatures", {}),
    ("command", "STEP 2/2: COPY hello /hello", {}),
    ("error", "COPY failed: no such file", {}),
]


def test_it_serves_the_log_from_an_offset(world, builds_on):
    build = queued_build(world)
    _log(build, *LOG)
    reader = world.api("member")
    whole = reader.get(f"{BUILDS}{build.uuid}/logs").json()
    assert whole["start"] == 0 and whole["total"] == 5
    assert whole["logs"][0] == {"message": "building", "type": "phase"}
    assert whole["logs"][1] == {"message": "STEP 1/2: FROM scratch", "type": "command", "data": {"command": "FROM"}}
    assert whole["logs"][2] == {"message": "Getting image source signatures"}
    tail = reader.get(f"{BUILDS}{build.uuid}/logs", start=3).json()
    assert tail["start"] == 3 and tail["total"] == 5
    assert [entry["message"] for entry in tail["logs"]] == [LOG[3][1], LOG[4][1]]
    assert reader.get(f"{BUILDS}{build.uuid}/logs", start=9).json() == {"start": 9, "total": 5, "logs": []}
    problem(reader.get(f"{BUILDS}{build.uuid}/logs", start=-1), 400)


def test_it_serves_an_archived_log_the_same_way(world, builds_on, package_dir):
    build = queued_build(world)
    _log(build, *LOG)
    before = world.api("member").get(f"{BUILDS}{build.uuid}/logs", start=1).json()
    Build.objects.filter(pk=build.pk).update(phase=Phase.ERROR)
    build.refresh_from_db()
    packages.archive_logs(build)
    assert not BuildLogEntry.objects.filter(build=build).exists()
    assert (package_dir / "logs" / f"{build.uuid}.jsonl.gz").exists()
    after = world.api("member").get(f"{BUILDS}{build.uuid}/logs", start=1).json()
    assert after == before


# ---------------------------------------------------------------------------------------------
# Cancelling


def _listen(world, event: str):
    notification_services.notification_create(
        repository=world.app,
        event=event,
        method="webhook",
        config={"url": "https://hooks.example.com/builds"},
        event_config={},
        title="builds",
        principal=as_principal(world.alice),
        ip=None,
    )


def test_it_cancels_a_waiting_build(world, builds_on, django_capture_on_commit_callbacks, package_dir):
    _listen(world, "build_cancelled")
    build = queued_build(world, tags=["v2"])
    package_uuid = str(build.package.uuid)
    with django_capture_on_commit_callbacks(execute=True):
        response = world.api("admin").delete(f"{BUILDS}{build.uuid}")
    assert response.status_code == 201
    assert response.json() == "Okay"
    build.refresh_from_db()
    assert build.phase == Phase.CANCELLED
    assert build.completed is not None
    event = NotificationEvent.objects.get(kind="build_cancelled")
    assert event.payload["build_id"] == str(build.uuid)
    assert event.payload["docker_tags"] == ["v2"]
    assert UsageLog.objects.filter(kind="cancel_build", repository=world.app).exists()
    # Over for the registry: package gone, log archived with the cancel as its last entry.
    assert build.package is None and package_uuid not in stored_files(package_dir)
    assert build.logs_archived
    entries, total = selectors.build_logs(build=build)
    assert entries[-1]["type"] == "phase" and entries[-1]["message"] == "cancelled"
    problem(world.api("admin").delete(f"{BUILDS}{build.uuid}"), 400)


def test_cancelling_a_running_build_drops_its_job_token(world, builds_on, django_capture_on_commit_callbacks):
    build = queued_build(world)
    worker = BuildWorker.objects.create(host="w1", state=BuildWorker.State.BUSY)
    code = job_token(build)
    Build.objects.filter(pk=build.pk).update(phase=Phase.BUILDING, worker=worker, attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert world.api("admin").delete(f"{BUILDS}{build.uuid}").status_code == 201
    assert not RepositoryAccessToken.objects.filter(code_prefix=code[:12]).exists()
    assert Build.objects.get(pk=build.pk).phase == Phase.CANCELLED


@pytest.mark.parametrize("phase", [Phase.PUSHING, Phase.COMPLETE, Phase.ERROR, Phase.CANCELLED])
def test_it_refuses_to_cancel_once_pushing_or_finished(world, builds_on, phase):
    _listen(world, "build_cancelled")
    build = queued_build(world)
    Build.objects.filter(pk=build.pk).update(phase=phase)
    body = problem(world.api("admin").delete(f"{BUILDS}{build.uuid}"), 400)
    assert "running or has finished" in body["detail"]
    assert Build.objects.get(pk=build.pk).phase == phase
    assert not NotificationEvent.objects.filter(kind="build_cancelled").exists()


# ---------------------------------------------------------------------------------------------
# The workers' package download


def _download(build, token: str | None):
    from django.test import Client

    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return Client().get(reverse("build-package-download", args=[build.uuid]), **headers)


def test_the_worker_with_the_job_token_downloads_the_package(world, builds_on):
    data = tar_gz({"Dockerfile": DOCKERFILE})
    build = queued_build(world, data)
    token = job_token(build)
    Build.objects.filter(pk=build.pk).update(phase=Phase.BUILD_SCHEDULED)
    response = _download(build, token)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Length"] == str(len(data))
    assert response["X-Package-Kind"] == "archive"
    assert response["X-Package-Sha256"] == hashlib.sha256(data).hexdigest()


def test_the_package_download_refuses_wrong_expired_and_other_tokens(world, builds_on):
    build = queued_build(world)
    other = queued_build(world)
    job_token(build)
    other_token = job_token(other)
    assert _download(build, None).status_code == 401
    for token in ("not-a-token", other_token, other_token[:12] + "x" * 28):
        response = _download(build, token)
        assert response.status_code == 403, token
        assert response.json()["detail"] == "The job token is not valid for this build"
    expired = job_token(build, expires_in=timedelta(seconds=-1))
    assert _download(build, expired).status_code == 403
    # A token that was replaced (the build was requeued) no longer works either.
    old = job_token(build)
    job_token(build)
    assert _download(build, old).status_code == 403
    # Nor once the build has ended.
    current = job_token(build)
    Build.objects.filter(pk=build.pk).update(phase=Phase.COMPLETE)
    assert _download(build, current).status_code == 403


# ---------------------------------------------------------------------------------------------
# The superuser panel


@pytest.fixture
def superuser_client(client, world):
    assert client.login(username="root", password="password-123")
    return client


def test_the_admin_pages_render_and_set_the_secret(superuser_client, world, builds_on):
    build = queued_build(world)
    worker = BuildWorker.objects.create(host="build-1", version="1.0.0", state=BuildWorker.State.BUSY)
    Build.objects.filter(pk=build.pk).update(worker=worker, phase=Phase.BUILDING)
    listing = superuser_client.get(reverse("admin:builds_buildsettings_changelist"))
    assert listing.status_code == 302
    page = superuser_client.get(listing["Location"])
    assert page.status_code == 200
    assert b"Dockerfile builds are on" in page.content
    response = superuser_client.post(
        listing["Location"],
        {"enabled": "on", "registration_secret": "s3cret-value", "max_queued_per_namespace": "7"},
    )
    assert response.status_code == 302, response.content[:3000]
    row = BuildSettings.objects.get(pk=1)
    assert row.max_queued_per_namespace == 7
    assert "s3cret-value" not in row.registration_secret_encrypted
    assert selectors.registration_secret_matches("s3cret-value")
    assert b"s3cret-value" not in superuser_client.get(listing["Location"]).content
    # Saving again with the field empty keeps the secret.
    superuser_client.post(listing["Location"], {"enabled": "on", "max_queued_per_namespace": "7"})
    assert selectors.registration_secret_matches("s3cret-value")
    builds_page = superuser_client.get(reverse("admin:builds_build_changelist"))
    assert builds_page.status_code == 200 and b"acme/app" in builds_page.content
    workers_page = superuser_client.get(reverse("admin:builds_buildworker_changelist"))
    assert workers_page.status_code == 200
    assert b"build-1" in workers_page.content and b"acme/app (building)" in workers_page.content
    assert superuser_client.get(reverse("admin:builds_build_change", args=[build.pk])).status_code == 200


# ---------------------------------------------------------------------------------------------
# The documented shapes


def test_real_answers_have_the_documented_shape(world, builds_on):
    from drf_spectacular.generators import SchemaGenerator

    from tests.test_openapi_schema import mismatches

    document = json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
    paths = document["paths"]
    alice = world.api("admin")
    drop = alice.post("filedrop/", {"mimeType": "application/gzip"})
    file_id = drop.json()["file_id"]
    alice.client.put(f"/filedrop/{file_id}", data=tar_gz({"Dockerfile": DOCKERFILE}), content_type="x", **alice.headers)
    created = alice.post(BUILDS, {"file_id": file_id, "pull_robot": "acme+bot", "docker_tags": ["a"]})
    build_id = created.json()["id"]
    build = Build.objects.get(uuid=build_id)
    _log(build, ("phase", "waiting", {}), ("command", "STEP 1/1: FROM scratch", {"step": 1}), ("", "done", {}))
    queued_build(world)  # no pull robot, no archive URL: the nullable fields are null
    template = "/api/v1/repository/{repository}/build/"
    calls = [
        (drop, "/api/v1/filedrop/", "post", 200),
        (created, template, "post", 201),
        (alice.get(BUILDS), template, "get", 200),
        (alice.get(f"{BUILDS}{build_id}"), template + "{build_uuid}", "get", 200),
        (alice.get(f"{BUILDS}{build_id}/status"), template + "{build_uuid}/status", "get", 200),
        (alice.get(f"{BUILDS}{build_id}/logs"), template + "{build_uuid}/logs", "get", 200),
        (alice.delete(f"{BUILDS}{build_id}"), template + "{build_uuid}", "delete", 201),
    ]
    for response, path, method, status in calls:
        assert response.status_code == status, (path, response.content)
        documented = paths[path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
        assert mismatches(document, response.json(), documented) == [], (method, path)
    assert paths[template]["post"]["operationId"] == "requestRepoBuild"
    assert "/filedrop/{file_id}" not in paths and "/buildpack/{build_uuid}" not in paths
