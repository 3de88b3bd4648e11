"""``GET /c1/squash/<namespace>/<repository>/<tag>`` through Django's test client: who may download
(robot token, app token, password, anonymous on public repositories; 401 or 404 otherwise, the
same for unknown and forbidden), platform selection and its errors, image repositories only, the
usage log entry, and priming (a squashed tag that moves, and "squash at push").

Downloads that flatten run the flattening in a background thread with its own database
connection, so those tests commit their data (``transaction=True``)."""

from __future__ import annotations

import io
import json
import tarfile
import threading

import pytest
from django.test import Client

from accounts import services as account_services
from accounts.models import Team
from registry import services as registry_services
from registry.models import Repository, Role, UsageLog
from squash import services as squash_services
from squash.models import SquashedImage
from tests.conftest import PASSWORD, basic
from tests.e2e import images
from tests.registry.conftest import flush_pulls, grant, make_image, store_blob, store_image, user_principal

pytestmark = pytest.mark.django_db(transaction=True)


def store(repository: Repository, tag: str, image, principal) -> None:
    """Store a hand-made image (or index with its children) through the registry services."""
    children = list(image.children.values()) if isinstance(image, images.HandIndex) else [image]
    for child in children:
        for blob in child.blobs:
            store_blob(repository, blob.data, principal)
        if isinstance(image, images.HandIndex):
            registry_services.manifest_put(
                repository=repository,
                reference=child.digest,
                raw=child.manifest,
                content_type=child.media_type,
                principal=principal,
                ip=None,
            )
    media_type = images.OCI_INDEX if isinstance(image, images.HandIndex) else image.media_type
    registry_services.manifest_put(
        repository=repository, reference=tag, raw=image.manifest, content_type=media_type, principal=principal, ip=None
    )


def layer_files(tarball: bytes) -> dict[str, bytes]:
    outer = tarfile.open(fileobj=io.BytesIO(tarball))
    manifest = json.loads(outer.extractfile("manifest.json").read())
    inner = tarfile.open(fileobj=outer.extractfile(manifest[0]["Layers"][0]))
    return {m.name.removeprefix("./"): inner.extractfile(m).read() for m in inner.getmembers() if m.isfile()}


def loaded_name(tarball: bytes) -> str:
    outer = tarfile.open(fileobj=io.BytesIO(tarball))
    return json.loads(outer.extractfile("manifest.json").read())[0]["RepoTags"][0]


def get(path: str, auth: tuple[str, str] | None = None, **extra):
    if auth:
        extra["HTTP_AUTHORIZATION"] = basic(*auth)
    return Client().get(path, **extra)


def body(response) -> bytes:
    data = b"".join(response.streaming_content) if response.streaming else response.content
    flattenings_finished()
    return data


def flattenings_finished() -> None:
    """Wait for the flattening threads of this process (they publish the file and mark the row
    after the last byte was read). In-memory SQLite locks tables, not rows: reading or flushing
    the database while such a thread writes would fail."""
    for thread in threading.enumerate():
        if thread.name == "squash-flatten":
            thread.join(60)


def wait_ready(**filters) -> SquashedImage:
    flattenings_finished()
    row = SquashedImage.objects.get(**filters)
    assert row.state == SquashedImage.State.READY, row.error
    return row


@pytest.fixture(autouse=True)
def _flattenings_end_with_the_test():
    yield
    flattenings_finished()


@pytest.fixture
def private(alice):
    repository = registry_services.repository_create(
        namespace=alice.namespace, name="app", principal=user_principal(alice)
    )
    image = images.hand_image(layer_count=2, layer_bytes=8 * 1024)
    store(repository, "v1", image, user_principal(alice))
    repository.image = image
    return repository


@pytest.fixture
def public(alice):
    repository = registry_services.repository_create(
        namespace=alice.namespace,
        name="open",
        principal=user_principal(alice),
        visibility=Repository.Visibility.PUBLIC,
    )
    image = images.hand_image(layer_count=2, layer_bytes=8 * 1024)
    store(repository, "v1", image, user_principal(alice))
    repository.image = image
    return repository


# --- who may download -----------------------------------------------------------------------------


def test_anyone_downloads_a_public_repository(public):
    response = get("/c1/squash/alice/open/v1")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-tar"
    data = body(response)
    assert int(response["Content-Length"]) == len(data)
    assert layer_files(data) == public.image.files
    assert loaded_name(data) == "testserver/alice/open:v1.squash"


@pytest.mark.parametrize("credential", ["password", "app token", "robot token"])
def test_readers_download_with_a_password_an_app_token_or_a_robot_token(credential, private, alice, bob):
    if credential == "password":
        grant(private, bob, Role.READ)
        auth = ("bob", PASSWORD)
    elif credential == "app token":
        grant(private, bob, Role.READ)
        _, token = account_services.app_token_create(user=bob, title="deploy")
        auth = ("$app", token)
    else:
        robot, token = account_services.robot_create(namespace=alice.namespace, short_name="deploy")
        grant(private, robot, Role.READ)
        auth = (robot.username, token)
    response = get("/c1/squash/alice/app/v1", auth)
    assert response.status_code == 200, response.content
    assert layer_files(body(response)) == private.image.files


def test_an_organization_robot_reads_through_its_team(org, alice):
    repository = registry_services.repository_create(namespace=org, name="svc", principal=user_principal(alice))
    store(repository, "latest", images.hand_image(layer_count=1, layer_bytes=1024), user_principal(alice))
    robot, token = account_services.robot_create(namespace=org, short_name="puller")
    team = account_services.team_create(organization=org, name="readers", role=Team.Role.MEMBER)
    account_services.team_member_add(team=team, user=robot)
    registry_services.repository_permission_set_team(
        repository=repository, team_name="readers", role=Role.READ, principal=user_principal(alice), ip=None
    )
    assert get("/c1/squash/acme/svc/latest", (robot.username, token)).status_code == 200


def test_anonymous_callers_of_private_or_unknown_repositories_are_asked_to_sign_in(private):
    for path in ("/c1/squash/alice/app/v1", "/c1/squash/alice/nothing/v1", "/c1/squash/nobody/x/v1"):
        response = get(path)
        assert response.status_code == 401, path
        assert response["WWW-Authenticate"] == 'Basic realm="testserver"'
        assert response.json()["error_type"] == "invalid_token"
    assert not SquashedImage.objects.exists()


def test_signed_in_callers_without_read_permission_get_404_like_an_unknown_repository(private, alice, bob, org):
    other_robot, other_token = account_services.robot_create(namespace=org, short_name="stranger")
    own_robot, own_token = account_services.robot_create(namespace=alice.namespace, short_name="idle")
    for auth in (("bob", PASSWORD), (other_robot.username, other_token), (own_robot.username, own_token)):
        response = get("/c1/squash/alice/app/v1", auth)
        assert response.status_code == 404, auth
        assert response.json()["detail"] == "No such repository or tag, or no read permission on it"
    assert get("/c1/squash/alice/nothing/v1", ("bob", PASSWORD)).json() == response.json()
    assert not SquashedImage.objects.exists()


def test_wrong_credentials_get_401_and_repeated_failures_429(private, settings):
    response = get("/c1/squash/alice/app/v1", ("alice", "wrong-password"))
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Basic ")
    assert get("/c1/squash/alice/app/v1", HTTP_AUTHORIZATION="Bearer abc").status_code == 401
    assert get("/c1/squash/alice/app/v1", HTTP_AUTHORIZATION="Basic !!!").status_code == 401
    settings.LOGIN_FAILURES_PER_WINDOW = 3
    response = get("/c1/squash/alice/app/v1", ("alice", PASSWORD))
    assert response.status_code == 429 and response["Retry-After"]


def test_unknown_tags_answer_404(private, alice):
    response = get("/c1/squash/alice/app/nope", ("alice", PASSWORD))
    assert response.status_code == 404 and response.json()["detail"] == "No tag nope in alice/app"
    assert get("/c1/squash/alice/app/bad$tag", ("alice", PASSWORD)).status_code == 404


def test_only_image_repositories_are_squashed(alice):
    repository = registry_services.repository_create(
        namespace=alice.namespace, name="charts", principal=user_principal(alice), kind=Repository.Kind.APPLICATION
    )
    helm = "application/vnd.cncf.helm.config.v1+json"
    store_image(repository, "1.0", make_image("chart", artifact_type=helm, config_type=helm), user_principal(alice))
    response = get("/c1/squash/alice/charts/1.0", ("alice", PASSWORD))
    assert response.status_code == 400
    assert "application repository" in response.json()["detail"]


def test_each_download_is_logged_as_a_squashed_pull(private, alice):
    body(get("/c1/squash/alice/app/v1", ("alice", PASSWORD)))
    flush_pulls()
    (entry,) = UsageLog.objects.filter(kind=UsageLog.Kind.PULL_REPO, repository=private)
    assert entry.actor == alice and entry.actor_name == "alice"
    assert entry.metadata["squash"] is True and entry.metadata["tag"] == "v1"
    assert entry.metadata["manifest_digest"] == private.image.digest


# --- platforms ------------------------------------------------------------------------------------


@pytest.fixture
def multiarch(alice):
    repository = registry_services.repository_create(
        namespace=alice.namespace, name="multi", principal=user_principal(alice)
    )
    index = images.multiarch_index(("amd64", "arm64"))
    store(repository, "latest", index, user_principal(alice))
    repository.index = index
    return repository


def test_a_multi_architecture_tag_defaults_to_linux_amd64(multiarch):
    response = get("/c1/squash/alice/multi/latest", ("alice", PASSWORD))
    assert layer_files(body(response)) == multiarch.index.children["amd64"].files
    row = wait_ready(tag="latest")
    assert row.platform == "linux/amd64" and row.manifest.digest == multiarch.index.children["amd64"].digest


def test_the_platform_parameter_picks_another_architecture(multiarch):
    response = get("/c1/squash/alice/multi/latest?platform=linux/arm64", ("alice", PASSWORD))
    assert response.status_code == 200
    assert layer_files(body(response)) == multiarch.index.children["arm64"].files


def test_a_platform_missing_from_the_index_is_a_clear_400(multiarch):
    response = get("/c1/squash/alice/multi/latest?platform=linux/s390x", ("alice", PASSWORD))
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "The image of alice/multi:latest has no linux/s390x variant; choose one with ?platform=: "
        "linux/amd64, linux/arm64"
    )
    response = get("/c1/squash/alice/multi/latest?platform=linux", ("alice", PASSWORD))
    assert response.status_code == 400 and "expected os/architecture[/variant]" in response.json()["detail"]
    assert not SquashedImage.objects.exists()


def test_a_single_architecture_image_refuses_another_explicit_platform(private):
    response = get("/c1/squash/alice/app/v1?platform=linux/arm64", ("alice", PASSWORD))
    assert response.status_code == 400
    assert "single-architecture image for linux/amd64, not linux/arm64" in response.json()["detail"]
    assert get("/c1/squash/alice/app/v1?platform=linux/amd64", ("alice", PASSWORD)).status_code == 200


# --- priming --------------------------------------------------------------------------------------


@pytest.fixture
def eager_tasks():
    from quay_site.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def test_a_squashed_tag_that_moves_is_squashed_again_in_the_background(private, alice, eager_tasks):
    body(get("/c1/squash/alice/app/v1", ("alice", PASSWORD)))
    wait_ready(tag="v1")
    newer = images.hand_image(layer_count=1, layer_bytes=4 * 1024)
    store(private, "v1", newer, user_principal(alice))  # the push moves v1; the task runs eagerly
    row = SquashedImage.objects.get(tag="v1", manifest__digest=newer.digest)
    assert row.state == SquashedImage.State.READY and row.flattenings == 1
    response = get("/c1/squash/alice/app/v1", ("alice", PASSWORD))
    assert response["X-Squash-Cache"] == "hit"
    assert layer_files(body(response)) == newer.files
    # A tag never squashed is not primed.
    store(private, "v2", images.hand_image(layer_count=1, layer_bytes=1024), user_principal(alice))
    assert not SquashedImage.objects.filter(tag="v2").exists()


def test_squash_at_push_primes_every_pushed_tag(private, alice, settings, eager_tasks):
    settings.SERVER_HOSTNAME = "registry.example:5000"
    squash_services.squash_settings_set(repository=private, squash_at_push=True)
    image = images.hand_image(layer_count=1, layer_bytes=2048)
    store(private, "fresh", image, user_principal(alice))
    row = SquashedImage.objects.get(tag="fresh")
    assert row.state == SquashedImage.State.READY and row.host == "registry.example:5000"
    response = get("/c1/squash/alice/app/fresh", ("alice", PASSWORD))
    assert response["X-Squash-Cache"] == "hit"
    assert loaded_name(body(response)) == "registry.example:5000/alice/app:fresh.squash"
