"""Quay's analyze and subdir verbs of the trigger API, over real HTTP against the local GitHub,
GitLab and Bitbucket servers (their contents, files, src and tree APIs) and for custom git.

``POST .../trigger/<uuid>/analyze {"config": ...}`` reads the Dockerfile the config names and
says whether its base image needs a pull robot; ``POST|GET .../trigger/<uuid>/subdir`` lists the
Dockerfiles of the source repository with the build contexts each may use."""

from __future__ import annotations

import pytest

from accounts import services as account_services
from accounts.models import Team
from registry import services as registry_services
from registry.models import Repository, Role
from tests.registry_rest.conftest import as_principal
from tests.triggers.fake_providers import FakeBitbucket, FakeGitHub, FakeGitLab
from tests.triggers.provider_support import BASE, Setup, start_fake
from triggers import dockerfile
from triggers.services import CUSTOM_GIT_ANALYZE_MESSAGE, CUSTOM_GIT_SUBDIR_MESSAGE

# Each provider with a repository its fake knows, and the path its file API is read through.
PROVIDERS = {
    "github": (FakeGitHub, "acme-corp/widget", r"/api/v3/repos/acme-corp/widget/contents/.+"),
    "gitlab": (FakeGitLab, "acme-group/widget", r"/api/v4/projects/acme-group%2Fwidget/repository/files/.+"),
    "bitbucket": (FakeBitbucket, "acme-ws/widget", r"/2.0/repositories/acme-ws/widget/src/main/.+"),
}
ALL_DOCKERFILES = ["/Dockerfile", "/web/Dockerfile", "/web/prod.Dockerfile"]


@pytest.fixture(params=list(PROVIDERS))
def provider(request, settings, world):
    cls, source, file_path = PROVIDERS[request.param]
    fake = start_fake(settings, cls)
    fake.source = source
    fake.file_path = file_path
    yield fake
    fake.stop()


@pytest.fixture
def bases(world):
    """Base images in this registry: acme/base (private; the robot acme+bot may read it,
    acme+spare may not), acme/pub (public) and globex/secret (private, another organization)."""
    alice = as_principal(world.alice)
    base = registry_services.repository_create(namespace=world.acme, name="base", principal=alice)
    registry_services.repository_create(
        namespace=world.acme, name="pub", principal=alice, visibility=Repository.Visibility.PUBLIC
    )
    registry_services.repository_create(namespace=world.globex, name="secret", principal=as_principal(world.eve))
    registry_services.repository_permission_set_user(
        repository=base, username=world.bot.username, role=Role.READ, principal=alice, ip=None
    )
    account_services.robot_create(namespace=world.acme, short_name="spare")
    return base


@pytest.fixture
def ready(world, provider, bases):
    """An activated trigger of acme/app on the provider's repository, set up by alice."""
    setup = Setup(world, provider)
    trigger = setup.ready(provider.source)
    return setup, trigger


def analyze(api, trigger_id, **config):
    return api.post(f"{BASE}/{trigger_id}/analyze", {"config": config})


def robots(body) -> dict[str, bool]:
    assert all(row["kind"] == "user" and row["is_robot"] is True for row in body["robots"])
    return {row["name"]: row["can_read"] for row in body["robots"]}


# ---------------------------------------------------------------------------------------------
# analyze, per provider


def test_private_base_in_the_namespace_requires_a_robot(ready, provider):
    setup, trigger = ready
    response = analyze(setup.admin, trigger.uuid, build_source=provider.source)
    assert response.status_code == 200, response.content
    body = response.json()
    # Dockerfile: "FROM quay.example.com/acme/base:1.0 AS build" (the tag is not part of the name).
    assert body["status"] == "requiresrobot"
    assert (body["namespace"], body["name"], body["message"], body["is_admin"]) == ("acme", "base", None, True)
    assert robots(body) == {"acme+bot": True, "acme+spare": False}
    [read] = provider.calls("GET", provider.file_path)
    assert read["headers"]["Authorization"].startswith("Bearer tok-")
    assert "Dockerfile" in read["path"]


def test_base_by_digest_in_a_subdirectory(ready, provider):
    setup, trigger = ready
    config = {"build_source": provider.source, "context": "web", "dockerfile_path": "web/prod.Dockerfile"}
    body = analyze(setup.admin, trigger.uuid, **config).json()
    assert (body["status"], body["namespace"], body["name"]) == ("requiresrobot", "acme", "base")
    [read] = provider.calls("GET", provider.file_path)
    assert "prod.Dockerfile" in read["path"]


def test_base_from_another_registry_needs_no_robot(ready, provider):
    setup, trigger = ready
    body = analyze(setup.admin, trigger.uuid, build_source=provider.source, context="web").json()
    assert body["status"] == "publicbase"
    assert (body["namespace"], body["name"], body["message"]) == ("acme", None, None)
    # The namespace's robots are still offered (none has anything to read).
    assert robots(body) == {"acme+bot": False, "acme+spare": False}


def test_public_base_in_this_registry(ready, provider):
    setup, trigger = ready
    provider.files["Dockerfile"] = "FROM --platform=linux/amd64 quay.example.com/acme/pub\nRUN true\n"
    body = analyze(setup.admin, trigger.uuid, build_source=provider.source).json()
    assert (body["status"], body["namespace"], body["name"]) == ("publicbase", "acme", "pub")


def test_missing_dockerfile_is_a_warning(ready, provider):
    setup, trigger = ready
    body = analyze(setup.admin, trigger.uuid, build_source=provider.source, dockerfile_path="api/Dockerfile").json()
    assert body["status"] == "warning"
    assert body["message"].startswith("No Dockerfile was found at api/Dockerfile on the default branch (main)")
    assert body["name"] is None


def test_dockerfile_without_from_is_a_warning(ready, provider):
    setup, trigger = ready
    provider.files["Dockerfile"] = "# FROM quay.example.com/acme/base\nRUN true\n"
    body = analyze(setup.admin, trigger.uuid, build_source=provider.source).json()
    assert (body["status"], body["message"]) == ("warning", "The Dockerfile at Dockerfile has no FROM line")


@pytest.mark.parametrize("image", ["quay.example.com/globex/secret", "quay.example.com/acme/nothing"])
def test_invisible_or_missing_base_reads_as_not_found(ready, provider, image):
    setup, trigger = ready
    provider.files["Dockerfile"] = f"FROM {image}:latest\n"
    body = analyze(setup.admin, trigger.uuid, build_source=provider.source).json()
    assert body["status"] == "error"
    assert body["message"] == f'The repository "{image}" that the Dockerfile builds on was not found'
    assert body["name"] is None


def test_not_a_repository_path_is_a_warning(ready, provider):
    setup, trigger = ready
    provider.files["Dockerfile"] = "FROM quay.example.com/acme/deep/er\n"
    body = analyze(setup.admin, trigger.uuid, build_source=provider.source).json()
    assert body["status"] == "warning"
    assert body["message"] == '"quay.example.com/acme/deep/er" is not a repository path of this registry'


def test_provider_failure_is_an_error_status(ready, provider):
    setup, trigger = ready
    provider.failures[("GET", provider.file_path)] = 500
    body = analyze(setup.admin, trigger.uuid, build_source=provider.source).json()
    assert body["status"] == "error"
    assert body["message"].startswith("Could not analyze the repository: ")
    assert "Injected failure" in body["message"]


def test_bad_config_is_an_error_status_and_reads_nothing(ready, provider):
    setup, trigger = ready
    before = len(provider.requests)
    body = analyze(
        setup.admin, trigger.uuid, build_source=provider.source, context="web", dockerfile_path="Dockerfile"
    ).json()
    assert (body["status"], body["message"]) == ("error", "dockerfile_path must be inside the build context")
    assert len(provider.requests) == before


def test_another_admin_may_analyze_the_trigger_repository_only(ready, provider, world):
    setup, trigger = ready
    # charlie joins acme's admin team: an admin of acme/app who did not connect the account.
    stewards = account_services.team_create(organization=world.acme, name="stewards", role=Team.Role.ADMIN)
    account_services.team_member_add(team=stewards, user=world.charlie)
    root = world.api("user")
    body = analyze(root, trigger.uuid, build_source=provider.source).json()
    assert (body["status"], body["is_admin"]) == ("requiresrobot", True)
    other = {"github": "acme-corp/docs", "gitlab": "gl-alice/notes", "bitbucket": "acme-ws/legacy"}[provider.service]
    response = analyze(root, trigger.uuid, build_source=other)
    assert response.status_code == 403, response.content
    assert analyze(setup.admin, trigger.uuid, build_source=other).status_code == 200


def test_analyze_before_activation_needs_the_connected_user(world, provider, bases):
    setup = Setup(world, provider)
    trigger_id = setup.create()
    # Not connected yet: nothing to read with.
    body = analyze(setup.admin, trigger_id, build_source=provider.source).json()
    assert body["status"] == "error"
    assert "Connect an account" in body["message"]
    assert setup.connect(trigger_id).status_code == 302
    body = analyze(setup.admin, trigger_id, build_source=provider.source).json()
    assert (body["status"], body["name"]) == ("requiresrobot", "base")
    assert analyze(world.api("superuser"), trigger_id, build_source=provider.source).status_code == 403


# ---------------------------------------------------------------------------------------------
# subdir, per provider


def test_subdir_lists_the_dockerfiles_and_their_contexts(ready, provider):
    setup, trigger = ready
    response = setup.admin.post(f"{BASE}/{trigger.uuid}/subdir", {"build_source": provider.source})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "success"
    assert body["dockerfile_paths"] == ALL_DOCKERFILES
    assert body["contextMap"] == {
        "/Dockerfile": ["/"],
        "/web/Dockerfile": ["/web", "/"],
        "/web/prod.Dockerfile": ["/web", "/"],
    }
    # GET lists the trigger's own repository, the same.
    assert setup.admin.get(f"{BASE}/{trigger.uuid}/subdir").json() == body
    # The config-shaped body of the setup works as well.
    wrapped = setup.admin.post(f"{BASE}/{trigger.uuid}/subdir", {"config": {"build_source": provider.source}})
    assert wrapped.json() == body


def test_subdir_of_an_empty_repository(ready, provider):
    setup, trigger = ready
    provider.files.clear()
    body = setup.admin.get(f"{BASE}/{trigger.uuid}/subdir").json()
    assert body == {"status": "success", "dockerfile_paths": [], "contextMap": {}}


def test_subdir_provider_failure_is_an_error_status(ready, provider):
    setup, trigger = ready
    provider.failures[("GET", r".*/(git/trees/.*|repository/tree|src/.*)")] = 502
    body = setup.admin.get(f"{BASE}/{trigger.uuid}/subdir").json()
    assert body["status"] == "error"
    assert "502" in body["message"] and "Injected failure" in body["message"]


def test_bitbucket_listing_follows_next_pages(settings, world, bases):
    fake = start_fake(settings, FakeBitbucket)
    try:
        setup = Setup(world, fake)
        trigger = setup.ready("acme-ws/widget")
        body = setup.admin.get(f"{BASE}/{trigger.uuid}/subdir").json()
        assert body["dockerfile_paths"] == ALL_DOCKERFILES
        pages = fake.calls("GET", r"/2.0/repositories/acme-ws/widget/src/main/")
        # 2 directories + 4 files in pages of 2.
        assert [call["query"].get("page", "1") for call in pages] == ["1", "2", "3"]
        assert pages[0]["query"]["max_depth"] == "10"
    finally:
        fake.stop()


def test_github_tree_is_read_recursively(settings, world, bases):
    fake = start_fake(settings, FakeGitHub)
    try:
        setup = Setup(world, fake)
        trigger = setup.ready("acme-corp/widget")
        assert setup.admin.get(f"{BASE}/{trigger.uuid}/subdir").json()["status"] == "success"
        [call] = fake.calls("GET", r"/api/v3/repos/acme-corp/widget/git/trees/main")
        assert call["query"] == {"recursive": "1"}
    finally:
        fake.stop()


# ---------------------------------------------------------------------------------------------
# custom git, permissions


def test_custom_git_cannot_be_analyzed_or_listed(world, custom_git, bases):
    trigger, _ = custom_git
    admin = world.api("admin")
    response = analyze(admin, trigger.uuid, build_source="git@git.example.com:acme/app.git")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["message"], body["name"]) == ("notimplemented", CUSTOM_GIT_ANALYZE_MESSAGE, None)
    # The robots to choose from by hand.
    assert robots(body) == {"acme+bot": False, "acme+spare": False}
    response = admin.post(f"{BASE}/{trigger.uuid}/subdir", {})
    assert response.status_code == 200
    assert response.json() == {"status": "error", "message": CUSTOM_GIT_SUBDIR_MESSAGE}


@pytest.mark.parametrize(("who", "status"), [("member", 403), ("user", 404), ("other_org", 404), ("anonymous", 401)])
def test_only_repository_admins(world, custom_git, who, status):
    trigger, _ = custom_git
    api = world.api(who)
    assert analyze(api, trigger.uuid, build_source="git@git.example.com:acme/app.git").status_code == status
    assert api.post(f"{BASE}/{trigger.uuid}/subdir", {}).status_code == status
    assert api.get(f"{BASE}/{trigger.uuid}/subdir").status_code == status


def test_trigger_of_another_repository_and_bad_body(world, custom_git):
    trigger, _ = custom_git
    registry_services.repository_create(namespace=world.acme, name="other", principal=as_principal(world.alice))
    admin = world.api("admin")
    response = admin.post(f"repository/acme/other/trigger/{trigger.uuid}/analyze", {"config": {}})
    assert response.status_code == 404
    assert admin.get(f"repository/acme/other/trigger/{trigger.uuid}/subdir").status_code == 404
    # analyze needs a config object.
    response = admin.post(f"{BASE}/{trigger.uuid}/analyze", {"config": "Dockerfile"})
    assert response.status_code == 400
    assert admin.post(f"{BASE}/{trigger.uuid}/analyze", {}).status_code == 400


# ---------------------------------------------------------------------------------------------
# The FROM line


@pytest.mark.parametrize(
    ("contents", "image"),
    [
        ("FROM alpine\n", "alpine"),
        ("FROM localhost:5000/ns/repo\n", "localhost:5000/ns/repo"),
        ("FROM localhost:5000/ns/repo:1.0\n", "localhost:5000/ns/repo"),
        ("from quay.example.com/acme/base@sha256:" + "0" * 64 + "\n", "quay.example.com/acme/base"),
        # The last stage's base; a stage named by FROM stands for its own base.
        ("FROM quay.example.com/acme/base AS build\nRUN make\nFROM alpine:3\nCOPY --from=build /a /a\n", "alpine"),
        ("FROM quay.example.com/acme/base:2 AS build\nFROM build\n", "quay.example.com/acme/base"),
        ("FROM \\\n  quay.example.com/acme/pub \\\n  AS x\n", "quay.example.com/acme/pub"),
        ("# FROM nope\nRUN echo '# FROM nope'\n", None),
        ("", None),
    ],
)
def test_base_image(contents, image):
    assert dockerfile.base_image(contents) == image
