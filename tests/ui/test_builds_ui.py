"""Dockerfile builds in the web UI: the Builds tab (only while builds are on), the New Dockerfile
Build form (uploads and URLs, every refusal inline with nothing stored), a build's page with its
stored log and live-view hooks, and Cancel; each with the roles that may (and may not) use it."""

from __future__ import annotations

import io
import re
import tarfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from builds import manager
from builds import services as build_services
from builds.models import Build, BuildPackage, BuildWorker, Phase
from registry.models import Role, UsageLog
from tests.registry.conftest import grant, user_principal
from tests.ui.conftest import messages_of, text

DOCKERFILE = b"FROM busybox\nRUN echo hello > /hello\n"
SECRET = "worker-secret-for-ui-tests"


@pytest.fixture(autouse=True)
def _own_package_dir(settings, tmp_path):
    """Build packages of each test in a directory of their own, to check what is stored."""
    settings.BUILD_PACKAGE_DIR = tmp_path / "build-packages"
    settings.FEATURE_BUILD_SUPPORT = None  # the superuser's switch decides


@pytest.fixture
def builds_on(db):
    build_services.build_settings_update(enabled=True, registration_secret=SECRET)


def stored_packages(settings) -> list[Path]:
    root = Path(settings.BUILD_PACKAGE_DIR)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def queue_build(repository, user, *, content: bytes = DOCKERFILE, tags=("latest",), **kwargs) -> Build:
    """A waiting build made through the services, as the filedrop API makes one."""
    package = build_services.package_create(owner=user, mime_type="text/plain")
    package = build_services.package_upload(package=package, stream=io.BytesIO(content), length=len(content))
    return build_services.build_create(
        repository=repository, principal=user_principal(user), package=package, tags=list(tags), **kwargs
    )


def running_build(repository, user) -> tuple[Build, BuildWorker]:
    """A build taken by a registered worker (the build manager's own functions), now ``building``."""
    build = queue_build(repository, user)
    worker = manager.worker_register(
        secret=SECRET, host="builder-1", version="1.0", capacity=1, channel_name="test", remote_addr="127.0.0.1"
    )
    manager.dispatch_pending()
    build.refresh_from_db()
    assert build.phase == Phase.BUILD_SCHEDULED and build.worker_id == worker.pk
    accepted, reason = manager.phase_report(
        worker_id=worker.pk, build_id=str(build.uuid), attempt=build.attempts, phase=Phase.BUILDING
    )
    assert accepted, reason
    build.refresh_from_db()
    return build, worker


def page_url(build: Build) -> str:
    return f"/repository/{build.repository.full_name}/build/{build.uuid}"


def new_url(repository) -> str:
    return f"/repository/{repository.full_name}/-/builds/new"


def cancel_url(build: Build) -> str:
    return f"/repository/{build.repository.full_name}/-/builds/{build.uuid}/cancel"


def tab_labels(response) -> list[str]:
    nav = re.search(r'<nav class="tabs".*?</nav>', response.content.decode(), re.S).group(0)
    return [label.strip() for label in re.findall(r">([^<>]+)</a>", nav)]


# --- The switch ------------------------------------------------------------------------------------


def test_nothing_of_builds_shows_while_they_are_off(as_alice, alice, private_repo, builds_on):
    build = queue_build(private_repo, alice)
    build_services.build_settings_update(enabled=False)
    page = as_alice.get("/repository/alice/secret")
    assert "Builds" not in tab_labels(page) and "New Dockerfile Build" not in text(page)
    # ?tab=builds is then an unknown tab: the Information tab.
    fallback = as_alice.get("/repository/alice/secret?tab=builds")
    assert fallback.status_code == 200 and "Pull this image" in text(fallback)
    for url in (new_url(private_repo), page_url(build)):
        response = as_alice.get(url)
        assert response.status_code == 404
        assert "Dockerfile builds are not enabled on this registry" in text(response)
    response = as_alice.post(new_url(private_repo), {"source": "upload", "tags": "latest"})
    assert response.status_code == 404
    assert as_alice.post(cancel_url(build)).status_code == 404
    build.refresh_from_db()
    assert build.phase == Phase.WAITING and Build.objects.count() == 1


def test_the_environment_switch_wins(as_alice, private_repo, settings, db):
    settings.FEATURE_BUILD_SUPPORT = True
    page = as_alice.get("/repository/alice/secret")
    assert "Builds" in tab_labels(page) and "New Dockerfile Build" in text(page)


def test_application_repositories_have_no_builds_tab(as_alice, alice, builds_on):
    from tests.ui.conftest import make_repository

    make_repository(alice.namespace, "charts", alice, kind="application")
    page = as_alice.get("/repository/alice/charts")
    assert "Builds" not in tab_labels(page) and "New Dockerfile Build" not in text(page)


# --- The Builds tab --------------------------------------------------------------------------------


def test_the_tab_lists_builds_with_phase_tags_source_who_and_duration(as_alice, alice, bob, private_repo, builds_on):
    grant(private_repo, bob, Role.WRITE)
    first = queue_build(private_repo, alice, tags=("latest", "v1"))
    done = queue_build(private_repo, bob, content=b"FROM busybox\n", tags=("v2",))
    trigger = build_services.build_create(
        repository=private_repo,
        principal=user_principal(alice),
        git={"url": "git@example.com:a/b.git", "sha": "abcdef1234567890", "ref": "refs/heads/main"},
        trigger_uuid=uuid.uuid4(),
        trigger_metadata={"commit": "abcdef1234567890", "ref": "refs/heads/main"},
    )
    # Set-up: the second build ran for 65 seconds and completed.
    now = timezone.now()
    Build.objects.filter(pk=done.pk).update(phase=Phase.COMPLETE, started=now - timedelta(seconds=65), completed=now)

    response = as_alice.get("/repository/alice/secret?tab=builds")
    assert response.status_code == 200 and "Builds" in tab_labels(response)
    body = response.content.decode()
    rows = re.findall(r'<tr data-build="([0-9a-f-]+)">(.*?)</tr>', body, re.S)
    assert [row[0] for row in rows] == [str(trigger.uuid), str(done.uuid), str(first.uuid)]  # newest first
    cells = {build_uuid: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip() for build_uuid, html in rows}
    assert "Waiting" in cells[str(first.uuid)] and "latest v1" in cells[str(first.uuid)]
    assert "Dockerfile" in cells[str(first.uuid)] and "alice" in cells[str(first.uuid)]
    assert "Complete" in cells[str(done.uuid)] and "bob" in cells[str(done.uuid)]
    assert "1m 05s" in cells[str(done.uuid)] and "v2" in cells[str(done.uuid)]
    assert "Trigger commit abcdef1" in cells[str(trigger.uuid)]
    assert 'class="phase phase-waiting"' in body and 'class="phase phase-complete"' in body
    assert f'href="{page_url(done)}"' in body
    assert "Start New Build" in text(response)
    assert "3 builds" in text(response)


def test_the_tab_is_paginated(as_alice, alice, private_repo, builds_on, settings):
    from ui.views import builds as build_views

    build_services.build_settings_update(max_queued_per_namespace=100)
    made = [queue_build(private_repo, alice) for _ in range(build_views.BUILDS_PER_PAGE + 2)]
    first = as_alice.get("/repository/alice/secret?tab=builds")
    listed = re.findall(r'<tr data-build="([0-9a-f-]+)">', first.content.decode())
    assert len(listed) == build_views.BUILDS_PER_PAGE and listed[0] == str(made[-1].uuid)
    assert "Page 1 of 2" in text(first)
    second = as_alice.get("/repository/alice/secret?tab=builds&page=2")
    older = re.findall(r'<tr data-build="([0-9a-f-]+)">', second.content.decode())
    assert older == [str(made[1].uuid), str(made[0].uuid)]
    assert "Page 2 of 2" in text(second)


def test_the_tab_switches_with_htmx(as_alice, alice, private_repo, builds_on):
    queue_build(private_repo, alice)
    response = as_alice.get(
        "/repository/alice/secret?tab=builds", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="repository-body"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="repository-body">') and 'id="builds"' in body


# --- Who sees what ---------------------------------------------------------------------------------


def test_readers_see_builds_but_cannot_start_or_cancel_them(as_bob, bob, alice, private_repo, builds_on):
    grant(private_repo, bob, Role.READ)
    build = queue_build(private_repo, alice)
    tab = as_bob.get("/repository/alice/secret?tab=builds")
    assert tab.status_code == 200 and str(build.uuid)[:8] in text(tab)
    assert "Start New Build" not in text(tab) and "New Dockerfile Build" not in text(tab)
    page = as_bob.get(page_url(build))
    assert page.status_code == 200 and "Waiting" in text(page) and "Cancel Build" not in text(page)
    response = as_bob.get(new_url(private_repo))
    assert response.status_code == 403 and "You need write permission on alice/secret" in text(response)
    form = {"source": "upload", "tags": "latest", "upload": SimpleUploadedFile("Dockerfile", DOCKERFILE)}
    assert as_bob.post(new_url(private_repo), form).status_code == 403
    assert as_bob.post(cancel_url(build)).status_code == 403
    build.refresh_from_db()
    assert build.phase == Phase.WAITING and Build.objects.count() == 1 and BuildPackage.objects.count() == 1


def test_writers_start_and_cancel(as_bob, bob, alice, private_repo, builds_on):
    grant(private_repo, bob, Role.WRITE)
    build = queue_build(private_repo, alice)
    assert "Start New Build" in text(as_bob.get("/repository/alice/secret?tab=builds"))
    assert "Cancel Build" in text(as_bob.get(page_url(build)))
    assert as_bob.get(new_url(private_repo)).status_code == 200


def test_strangers_get_404_and_anonymous_visitors_sign_in(as_charlie, anonymous, alice, private_repo, builds_on):
    build = queue_build(private_repo, alice)
    for url in ("/repository/alice/secret?tab=builds", page_url(build), new_url(private_repo)):
        assert as_charlie.get(url).status_code == 404
        response = anonymous.get(url)
        assert response.status_code == 302 and "/signin" in response["Location"]
    assert as_charlie.post(cancel_url(build)).status_code == 404
    build.refresh_from_db()
    assert build.phase == Phase.WAITING


def test_a_build_of_another_repository_is_not_found(as_alice, alice, private_repo, public_repo, builds_on):
    build = queue_build(public_repo, alice)
    assert as_alice.get(f"/repository/alice/secret/build/{build.uuid}").status_code == 404
    assert as_alice.get(f"/repository/alice/secret/build/{uuid.uuid4()}").status_code == 404


def test_public_repositories_show_builds_to_anonymous_visitors(anonymous, alice, public_repo, builds_on):
    build = queue_build(public_repo, alice)
    tab = anonymous.get("/repository/alice/hello?tab=builds")
    assert tab.status_code == 200 and str(build.uuid)[:8] in text(tab) and "Start New Build" not in text(tab)
    page = anonymous.get(page_url(build))
    assert page.status_code == 200 and "Cancel Build" not in text(page)


# --- New Dockerfile Build --------------------------------------------------------------------------


def test_the_plus_menu_offers_a_new_build_to_writers(as_alice, private_repo, builds_on):
    body = as_alice.get("/repository/alice/secret").content.decode()
    assert f'href="{new_url(private_repo)}"' in body and "New Dockerfile Build" in body
    form = as_alice.get(new_url(private_repo))
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.content.decode()
    assert form.context["form"]["tags"].value() == "latest"


def test_a_dockerfile_upload_queues_a_waiting_build(as_alice, alice, private_repo, builds_on, settings):
    response = as_alice.post(
        new_url(private_repo),
        {"source": "upload", "tags": "latest, v1 v2", "upload": SimpleUploadedFile("Dockerfile", DOCKERFILE)},
    )
    build = Build.objects.get()
    assert response.status_code == 302 and response["Location"] == page_url(build)
    assert build.phase == Phase.WAITING and build.source == Build.Source.DOCKERFILE
    assert build.tags == ["latest", "v1", "v2"] and build.started_by == alice
    assert build.package.size == len(DOCKERFILE) and build.package.uploaded is not None
    stored = stored_packages(settings)
    assert len(stored) == 1 and stored[0].read_bytes() == DOCKERFILE
    assert UsageLog.objects.filter(kind="build_dockerfile", repository=private_repo).count() == 1
    page = as_alice.get(response["Location"])
    assert f"Started build {str(build.uuid)[:8]}." in messages_of(page)
    assert "Waiting" in text(page) and "latest" in text(page) and "v2" in text(page)


def test_an_archive_upload_with_a_context_directory(as_alice, private_repo, builds_on, alice_robot):
    robot, _token = alice_robot
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("app/Dockerfile")
        info.size = len(DOCKERFILE)
        archive.addfile(info, io.BytesIO(DOCKERFILE))
    response = as_alice.post(
        new_url(private_repo),
        {
            "source": "upload",
            "tags": "v3",
            "subdirectory": "app",
            "pull_robot": robot.username,
            "upload": SimpleUploadedFile("context.tar.gz", buffer.getvalue()),
        },
    )
    assert response.status_code == 302
    build = Build.objects.get()
    assert build.source == Build.Source.ARCHIVE and build.subdirectory == "app" and build.tags == ["v3"]
    assert build.pull_robot == robot
    page = text(as_alice.get(page_url(build)))
    assert "Archive" in page and "alice+deploy" in page


def test_the_form_offers_the_namespaces_robots(as_alice, alice_robot, private_repo, builds_on):
    choices = dict(as_alice.get(new_url(private_repo)).context["form"].fields["pull_robot"].choices)
    assert choices == {"": "None", "alice+deploy": "alice+deploy"}


BAD_FORMS = [
    ({"source": "upload", "tags": "latest"}, "Choose a Dockerfile or an archive to upload."),
    ({"source": "url", "tags": "latest", "archive_url": ""}, "Enter the URL of a Dockerfile or an archive."),
    ({"source": "upload", "tags": " , ", "file": DOCKERFILE}, "Enter at least one tag."),
    ({"source": "upload", "tags": "latest Bad:Tag", "file": DOCKERFILE}, "Invalid tag name: 'Bad:Tag'"),
    ({"source": "upload", "tags": "v1 v1", "file": b"\x00\x01binary"}, "neither a Dockerfile nor"),
    ({"source": "upload", "tags": "latest", "file": b""}, "The submitted file is empty."),
    (
        {"source": "upload", "tags": "latest", "dockerfile_path": "../Dockerfile", "file": DOCKERFILE},
        "must stay inside the build package",
    ),
    (
        {"source": "upload", "tags": "latest", "dockerfile_path": "build/Dockerfile", "file": DOCKERFILE},
        "A single Dockerfile is built as it is",
    ),
    ({"source": "url", "tags": "latest", "archive_url": "file:///etc/passwd"}, ""),
    ({"source": "url", "tags": "latest", "archive_url": "http://127.0.0.1:9/Dockerfile"}, ""),
    ({"source": "upload", "tags": "latest", "pull_robot": "alice+nobody", "file": DOCKERFILE}, "Select a valid choice"),
]


@pytest.mark.parametrize(("data", "message"), BAD_FORMS)
def test_refusals_are_shown_inline_and_nothing_is_stored(as_alice, private_repo, builds_on, settings, data, message):
    data = dict(data)
    content = data.pop("file", None)
    if content is not None:
        data["upload"] = SimpleUploadedFile("Dockerfile", content)
    response = as_alice.post(new_url(private_repo), data)
    assert response.status_code == 400
    page = text(response)
    assert message in page
    assert response.context["form"].errors  # next to a field or above the form
    if data["source"] == "url":
        assert 'class="errorlist' in response.content.decode() and data["archive_url"] in response.content.decode()
    # The input is kept.
    assert response.context["form"]["tags"].value() == data["tags"]
    assert Build.objects.count() == 0 and BuildPackage.objects.count() == 0 and stored_packages(settings) == []


def test_a_bad_url_is_explained_next_to_its_input(as_alice, private_repo, builds_on):
    response = as_alice.post(
        new_url(private_repo), {"source": "url", "tags": "latest", "archive_url": "http://127.0.0.1:9/Dockerfile"}
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "archive_url" in errors and errors["archive_url"][0]


def test_a_full_queue_is_refused_with_nothing_stored(as_alice, alice, private_repo, builds_on, settings):
    build_services.build_settings_update(max_queued_per_namespace=1)
    queue_build(private_repo, alice)
    response = as_alice.post(
        new_url(private_repo),
        {"source": "upload", "tags": "latest", "upload": SimpleUploadedFile("Dockerfile", DOCKERFILE)},
    )
    assert response.status_code == 429
    assert "Maximum queued build rate exceeded" in text(response)
    assert Build.objects.count() == 1 and BuildPackage.objects.count() == 1 and len(stored_packages(settings)) == 1


# --- A build's page --------------------------------------------------------------------------------


def test_the_page_shows_the_stored_log_and_the_live_view_hooks(as_alice, alice, private_repo, builds_on):
    build, worker = running_build(private_repo, alice)
    manager.log_append(
        worker_id=worker.pk,
        build_id=str(build.uuid),
        attempt=build.attempts,
        entries=[
            {"stream": "STEP 1/2: FROM busybox\n"},
            {"stream": "Copying blob done\n"},
            {"stream": "STEP 2/2: RUN echo <hello>\n"},
            {"error": "exit status 1"},
        ],
    )
    response = as_alice.get(page_url(build))
    assert response.status_code == 200
    body = response.content.decode()
    lines = re.findall(r'<div class="log-line (log-[a-z]+)">(.*?)</div>', body, re.S)
    assert ("log-phase", "Phase: Building") in lines
    assert ("log-command", "STEP 1/2: FROM busybox") in lines
    assert ("log-output", "Copying blob done") in lines
    assert ("log-command", "STEP 2/2: RUN echo &lt;hello&gt;") in lines  # escaped, not markup
    assert ("log-error", "exit status 1") in lines
    assert [kind for kind, _ in lines].index("log-phase") < [kind for kind, _ in lines].index("log-error")
    assert 'class="phase phase-running" data-phase="building"' in body
    assert "Cancel Build" in text(response)
    # The live view: websocket on WS_PORT of this host, polling fallback on the REST API.
    ws_url = f"ws://testserver:8787/ws/build/{build.uuid}/"
    assert f'data-ws-url="{ws_url}"' in body
    assert f'data-poll-url="/api/v1/repository/alice/secret/build/{build.uuid}/logs"' in body
    assert f'data-next="{len(lines)}"' in body and 'src="/static/ui/build.js"' in body
    policy = response["Content-Security-Policy"]
    assert re.search(r"connect-src [^;]*'self'[^;]*ws://testserver:8787", policy)
    assert "script-src 'self'" in policy and "<script>" not in body


def test_the_public_websocket_address_is_used_when_set(as_alice, alice, private_repo, builds_on, settings):
    settings.WS_PUBLIC_URL = "wss://live.example.com/"
    build = queue_build(private_repo, alice)
    response = as_alice.get(page_url(build))
    assert f'data-ws-url="wss://live.example.com/ws/build/{build.uuid}/"' in response.content.decode()
    assert "wss://live.example.com" in response["Content-Security-Policy"]


def test_the_summary_fragment_and_a_finished_build(as_alice, alice, private_repo, builds_on):
    build = queue_build(private_repo, alice)
    now = timezone.now()
    # Set-up: how a successful build ends (the manager's result is covered by its own tests).
    Build.objects.filter(pk=build.pk).update(
        phase=Phase.COMPLETE,
        started=now - timedelta(seconds=3),
        completed=now,
        manifest_digests=["sha256:" + "ab" * 32],
    )
    fragment = as_alice.get(page_url(build) + "?part=summary")
    body = fragment.content.decode()
    assert body.lstrip().startswith('<div id="build-summary">') and "<html" not in body
    assert "Complete" in text(fragment) and "sha256:" + "ab" * 32 in body and "Cancel Build" not in body
    page = text(as_alice.get(page_url(build)))
    assert "This build printed nothing." in page and "(3s)" in page


def test_a_failed_build_shows_its_error(as_alice, alice, private_repo, builds_on):
    build = queue_build(private_repo, alice)
    Build.objects.filter(pk=build.pk).update(
        phase=Phase.ERROR, completed=timezone.now(), error_kind="dockerfile", error_message="unknown instruction: RUNN"
    )
    response = as_alice.get(page_url(build))
    assert "Failed" in text(response) and "Dockerfile: unknown instruction: RUNN" in text(response)
    assert 'class="phase phase-failed"' in response.content.decode()


# --- Cancel ----------------------------------------------------------------------------------------


def test_cancel_a_waiting_build(as_alice, alice, private_repo, builds_on):
    build = queue_build(private_repo, alice)
    response = as_alice.post(cancel_url(build))
    assert response.status_code == 302 and response["Location"] == page_url(build)
    build.refresh_from_db()
    assert build.phase == Phase.CANCELLED and build.cancel_requested
    page = as_alice.get(page_url(build))
    assert f"Cancelled build {str(build.uuid)[:8]}." in messages_of(page)
    assert "Cancelled" in text(page) and "Cancel Build" not in text(page)
    assert "Phase: Cancelled (cancelled by alice)" in text(page)
    assert UsageLog.objects.filter(kind="cancel_build", actor=alice).count() == 1
    # Once more: nothing to cancel, and the page says why.
    again = as_alice.post(cancel_url(build), follow=True)
    assert "Build is currently running or has finished" in messages_of(again)
    assert UsageLog.objects.filter(kind="cancel_build").count() == 1


def test_cancel_a_running_build_but_not_a_pushing_one(as_alice, alice, private_repo, builds_on):
    build, _ = running_build(private_repo, alice)
    as_alice.post(cancel_url(build))
    build.refresh_from_db()
    assert build.phase == Phase.CANCELLED
    pushing = queue_build(private_repo, alice)
    manager.worker_register(
        secret=SECRET, host="builder-2", version="1.0", capacity=1, channel_name="test-2", remote_addr="127.0.0.1"
    )
    manager.dispatch_pending()
    pushing.refresh_from_db()
    assert pushing.phase == Phase.BUILD_SCHEDULED
    for phase in (Phase.BUILDING, Phase.PUSHING):
        accepted, reason = manager.phase_report(
            worker_id=pushing.worker_id, build_id=str(pushing.uuid), attempt=pushing.attempts, phase=phase
        )
        assert accepted, reason
    page = as_alice.get(page_url(pushing))
    assert "Pushing" in text(page) and "Cancel Build" not in text(page)
    refused = as_alice.post(cancel_url(pushing), follow=True)
    assert "Build is currently running or has finished" in messages_of(refused)
    pushing.refresh_from_db()
    assert pushing.phase == Phase.PUSHING
