"""Quay's build trigger API (/api/v1/repository/<r>/trigger/...): shapes, credentials, activation,
Run Now, the builds list, and who may do what."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from drf_spectacular.generators import SchemaGenerator

from accounts import scopes
from builds import services as build_services
from builds.models import Build
from registry import services as registry_services
from registry.models import Repository, Role, UsageLog
from tests.registry_rest.conftest import Api, as_principal, problem
from tests.test_openapi_schema import mismatches
from tests.triggers.conftest import GIT_URL, SHA, Hook, push_payload
from triggers import selectors, services
from triggers.models import BuildTrigger

BASE = "repository/acme/app/trigger"


@pytest.fixture(scope="module")
def schema():
    import json

    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))


def documented(schema, response, template: str, method: str) -> list[str]:
    node = schema["paths"][template][method]["responses"][str(response.status_code)]
    return mismatches(schema, response.json(), node["content"]["application/json"]["schema"])


@pytest.fixture
def admin(world) -> Api:
    return world.api("admin")


@pytest.fixture
def trigger(world, custom_git) -> BuildTrigger:
    return custom_git[0]


# ---------------------------------------------------------------------------------------------
# Reading


def test_the_list_shows_quays_trigger_view_with_credentials(admin, trigger, custom_git, schema):
    response = admin.get(f"{BASE}/")
    assert response.status_code == 200
    [view] = response.json()["triggers"]
    assert view["id"] == str(trigger.uuid)
    assert view["service"] == "custom-git"
    assert view["is_active"] is True
    assert view["build_source"] == GIT_URL
    assert view["repository_url"] is None
    assert view["can_invoke"] is True
    assert view["enabled"] is True
    assert view["disabled_reason"] is None
    assert "pull_robot" not in view
    credentials = {item["name"]: item["value"] for item in view["config"]["credentials"]}
    assert credentials["SSH Public Key"] == trigger.public_key
    url = urlsplit(credentials["Webhook Endpoint URL"])
    assert (url.username, url.password) == ("$token", custom_git[1])
    assert url.path == f"/webhooks/push/trigger/{trigger.uuid}"
    assert view["config"]["build_source"] == GIT_URL
    assert documented(schema, response, "/api/v1/repository/{repository}/trigger/", "get") == []


def test_one_trigger_is_read_by_its_uuid(admin, trigger, schema):
    response = admin.get(f"{BASE}/{trigger.uuid}")
    assert response.status_code == 200
    assert response.json()["id"] == str(trigger.uuid)
    assert documented(schema, response, "/api/v1/repository/{repository}/trigger/{trigger_uuid}", "get") == []
    problem(admin.get(f"{BASE}/6b1f1a52-7d0b-4f3f-8c0e-1d2b3c4d5e6f"), 404, "not_found")
    problem(admin.get(f"{BASE}/not-a-uuid"), 404, "not_found")


def test_another_repositorys_trigger_is_not_found(world, admin, trigger):
    other = registry_services.repository_create(namespace=world.globex, name="svc", principal=as_principal(world.eve))
    foreign, _ = services.trigger_create_custom_git(
        repository=other, principal=as_principal(world.eve), build_source=GIT_URL
    )
    # acme's admin, globex's trigger under acme's repository: 404.
    problem(admin.get(f"{BASE}/{foreign.uuid}"), 404)
    problem(admin.post(f"{BASE}/{foreign.uuid}/start", {"commit_sha": SHA}), 404)
    # globex's admin cannot reach acme's trigger, either way.
    eve = world.api("other_org")
    problem(eve.get(f"repository/globex/svc/trigger/{trigger.uuid}"), 404)
    problem(eve.get(f"{BASE}/{trigger.uuid}"), 404)
    problem(eve.delete(f"{BASE}/{trigger.uuid}"), 404)
    assert BuildTrigger.objects.filter(pk=trigger.pk).exists()


def test_a_pull_robot_is_shown_to_admins(world, admin):
    trigger, _ = services.trigger_create_custom_git(
        repository=world.app, principal=as_principal(world.alice), build_source=GIT_URL, pull_robot=world.bot
    )
    view = admin.get(f"{BASE}/{trigger.uuid}").json()
    assert view["pull_robot"] == {"name": "acme+bot", "kind": "user", "is_robot": True}


# ---------------------------------------------------------------------------------------------
# Create and activate


def test_a_trigger_is_created_then_activated(admin, world, schema):
    created = admin.post(f"{BASE}/", {"service": "custom-git"})
    assert created.status_code == 201, created.content
    view = created.json()
    assert (view["is_active"], view["config"], view["build_source"]) == (False, {}, None)
    assert documented(schema, created, "/api/v1/repository/{repository}/trigger/", "post") == []
    uuid = view["id"]
    config = {
        "build_source": "ssh://git@git.example.com:2222/acme/app.git",
        "branchtag_regex": "heads/.*",
        "dockerfile_path": "/web/Dockerfile",
        "context": "/web",
        "tag_templates": ["${commit_info.short_sha}"],
    }
    activated = admin.post(f"{BASE}/{uuid}/activate", {"config": config, "pull_robot": "acme+bot"})
    assert activated.status_code == 200, activated.content
    view = activated.json()
    assert view["is_active"] is True
    assert view["pull_robot"]["name"] == "acme+bot"
    assert view["config"]["context"] == "web"
    assert view["config"]["dockerfile_path"] == "web/Dockerfile"
    assert view["config"]["tag_templates"] == ["${commit_info.short_sha}"]
    assert [item["name"] for item in view["config"]["credentials"]] == ["SSH Public Key", "Webhook Endpoint URL"]
    assert (
        documented(schema, activated, "/api/v1/repository/{repository}/trigger/{trigger_uuid}/activate", "post") == []
    )
    again = admin.post(f"{BASE}/{uuid}/activate", {"config": config})
    assert "already active" in problem(again, 400)["detail"]
    entry = UsageLog.objects.get(kind="setup_repo_trigger")
    assert entry.metadata["trigger_id"] == uuid
    assert entry.metadata["pull_robot"] == "acme+bot"


def test_a_custom_git_trigger_is_created_active_when_given_its_config(admin):
    response = admin.post(f"{BASE}/", {"service": "custom-git", "config": {"build_source": GIT_URL}})
    assert response.status_code == 201
    assert response.json()["is_active"] is True
    problem(admin.post(f"{BASE}/", {"service": "svn"}), 400)
    problem(admin.post(f"{BASE}/", {"service": "github", "config": {"build_source": GIT_URL}}), 400)


BAD_CONFIGS = [
    ({}, "build_source is required"),
    ({"build_source": ""}, "build_source is required"),
    ({"build_source": "file:///etc/passwd"}, "build_source must be a git URL"),
    ({"build_source": "/srv/git/app.git"}, "build_source must be a git URL"),
    ({"build_source": "ext::sh -c touch% /tmp/pwned"}, "build_source must be a git URL"),
    ({"build_source": "-oProxyCommand=touch /tmp/x"}, "build_source must be a git URL"),
    ({"build_source": "ssh://-oProxyCommand=x/app.git"}, "build_source must be a git URL"),
    ({"build_source": GIT_URL, "branchtag_regex": "heads/(unclosed"}, "branchtag_regex is not a valid regular"),
    ({"build_source": GIT_URL, "context": "../elsewhere"}, "context must stay inside the git repository"),
    ({"build_source": GIT_URL, "dockerfile_path": "a/../../Dockerfile"}, "dockerfile_path must stay inside"),
    (
        {"build_source": GIT_URL, "context": "web", "dockerfile_path": "api/Dockerfile"},
        "must be inside the build context",
    ),
    ({"build_source": GIT_URL, "tag_templates": "latest"}, "tag_templates must be a list"),
    ({"build_source": GIT_URL, "tag_templates": [""]}, "each tag template must be a non-empty string"),
    ({"build_source": GIT_URL, "tag_templates": ["v-${commit"]}, "malformed ${...} placeholder"),
    ({"build_source": GIT_URL, "default_tag_from_ref": "yes"}, "default_tag_from_ref must be true or false"),
    ({"build_source": GIT_URL, "dockerfile": "x"}, "unknown config key(s): dockerfile"),
]


@pytest.mark.parametrize("config, reason", BAD_CONFIGS)
def test_a_bad_config_is_refused_with_its_reason_and_nothing_changes(admin, world, config, reason):
    trigger = services.trigger_create(repository=world.app, service="custom-git", principal=as_principal(world.alice))
    body = problem(admin.post(f"{BASE}/{trigger.uuid}/activate", {"config": config}), 400, "invalid_request")
    assert reason in body["detail"]
    trigger.refresh_from_db()
    assert (trigger.is_active, trigger.public_key, trigger.webhook_secret_hash, trigger.config) == (False, "", "", {})


@pytest.mark.parametrize(
    "url",
    [
        GIT_URL,
        "ssh://git@git.example.com:2222/acme/app.git",
        "ssh://git.example.com/acme/app.git",
        "https://git.example.com/acme/app.git",
        "git://git.example.com/acme/app.git",
    ],
)
def test_the_usual_git_urls_are_accepted(admin, url):
    response = admin.post(f"{BASE}/", {"service": "custom-git", "config": {"build_source": url}})
    assert response.status_code == 201, response.content
    assert response.json()["build_source"] == url


def test_the_pull_robot_must_be_the_namespaces_and_chosen_by_its_admin(admin, world):
    def activate(api, robot):
        trigger = services.trigger_create(
            repository=world.app, service="custom-git", principal=as_principal(world.alice)
        )
        return api.post(f"{BASE}/{trigger.uuid}/activate", {"config": {"build_source": GIT_URL}, "pull_robot": robot})

    assert "not a robot account of acme" in problem(activate(admin, "globex+bot"), 400)["detail"]
    problem(activate(admin, "acme+nobody"), 404)
    problem(activate(admin, "bob"), 404)
    # charlie administers the repository but not the organization: its robots are not his to use.
    registry_services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.ADMIN, principal=as_principal(world.alice), ip=None
    )
    charlie = world.api("user")
    assert "Only administrators of acme" in problem(activate(charlie, "acme+bot"), 403)["detail"]
    assert activate(charlie, None).status_code == 200


# ---------------------------------------------------------------------------------------------
# Update and delete


def test_put_enables_and_disables(admin, trigger, schema):
    response = admin.put(f"{BASE}/{trigger.uuid}", {"enabled": False})
    assert response.status_code == 200
    assert (response.json()["enabled"], response.json()["disabled_reason"]) == (False, "user_toggled")
    assert documented(schema, response, "/api/v1/repository/{repository}/trigger/{trigger_uuid}", "put") == []
    response = admin.put(f"{BASE}/{trigger.uuid}", {"enabled": True})
    assert (response.json()["enabled"], response.json()["disabled_reason"]) == (True, None)
    assert UsageLog.objects.filter(kind="toggle_repo_trigger").count() == 2
    problem(admin.put(f"{BASE}/{trigger.uuid}", {}), 400)
    problem(admin.put(f"{BASE}/{trigger.uuid}", {"enabled": "maybe"}), 400)


def test_an_unactivated_trigger_cannot_be_updated(admin, world):
    trigger = services.trigger_create(repository=world.app, service="custom-git", principal=as_principal(world.alice))
    assert "unactivated" in problem(admin.put(f"{BASE}/{trigger.uuid}", {"enabled": False}), 400)["detail"]


def test_an_auto_disabled_trigger_shows_its_reason(admin, trigger):
    BuildTrigger.objects.filter(pk=trigger.pk).update(enabled=False, disabled_reason="successive_build_failures")
    assert admin.get(f"{BASE}/{trigger.uuid}").json()["disabled_reason"] == "successive_build_failures"


def test_delete_removes_the_trigger_and_its_key(admin, trigger):
    assert admin.delete(f"{BASE}/{trigger.uuid}").status_code == 204
    problem(admin.get(f"{BASE}/{trigger.uuid}"), 404)
    assert selectors.trigger_private_key(trigger.uuid) is None
    assert UsageLog.objects.filter(kind="delete_repo_trigger").exists()
    problem(admin.delete(f"{BASE}/{trigger.uuid}"), 404)


# ---------------------------------------------------------------------------------------------
# Run Now and the trigger's builds


def test_run_now_builds_a_commit(admin, trigger, world, schema):
    # With a pull robot: the schema checker cannot yet tell a nullable nested object (see report).
    BuildTrigger.objects.filter(pk=trigger.pk).update(pull_robot=world.bot)
    response = admin.post(f"{BASE}/{trigger.uuid}/start", {"commit_sha": SHA})
    assert response.status_code == 201, response.content
    view = response.json()
    assert response["Location"] == f"/api/v1/repository/acme/app/build/{view['id']}"
    assert view["tags"] == [SHA[:7]]
    assert view["trigger"]["id"] == str(trigger.uuid)
    assert view["trigger_metadata"] == {"commit": SHA, "git_url": GIT_URL}
    build = Build.objects.get(uuid=view["id"])
    assert build.git == {"url": GIT_URL, "sha": SHA, "ref": ""}
    assert build.started_by == world.alice
    assert documented(schema, response, "/api/v1/repository/{repository}/trigger/{trigger_uuid}/start", "post") == []


@pytest.mark.parametrize("kind, ref", [("branch", "refs/heads/release/1.0"), ("tag", "refs/tags/release/1.0")])
def test_run_now_builds_a_branch_or_tag(admin, trigger, kind, ref):
    response = admin.post(f"{BASE}/{trigger.uuid}/start", {"refs": {"kind": kind, "name": "release/1.0"}})
    assert response.status_code == 201, response.content
    build = Build.objects.get(uuid=response.json()["id"])
    # The worker resolves the ref when it clones: no sha yet.
    assert build.git == {"url": GIT_URL, "sha": "", "ref": ref}
    assert build.tags == ["release-1.0"]
    assert build.display_name == "release/1.0"


def test_run_now_accepts_quays_branch_name(admin, trigger):
    response = admin.post(f"{BASE}/{trigger.uuid}/start", {"branch_name": "main"})
    assert response.status_code == 201
    assert Build.objects.get().git["ref"] == "refs/heads/main"


@pytest.mark.parametrize(
    "body, reason",
    [
        ({}, "missing required parameter"),
        ({"commit_sha": "xyz"}, "commit_sha must be 7 to 40 hexadecimal characters"),
        ({"commit_sha": SHA + "0"}, "commit_sha must be 7 to 40 hexadecimal characters"),
        ({"refs": {"kind": "note", "name": "x"}}, "kind"),
        ({"refs": {"kind": "branch", "name": "../x"}}, "refs.name is not a valid branch or tag name"),
        ({"refs": {"kind": "branch", "name": "-x"}}, "refs.name is not a valid branch or tag name"),
        ({"commit_sha": SHA, "force": True}, "unknown run parameter(s): force"),
    ],
)
def test_run_now_refuses_bad_parameters(admin, trigger, body, reason):
    assert reason in problem(admin.post(f"{BASE}/{trigger.uuid}/start", body), 400)["detail"]
    assert not Build.objects.exists()


def test_run_now_refuses_a_disabled_or_inactive_trigger(admin, trigger, world):
    admin.put(f"{BASE}/{trigger.uuid}", {"enabled": False})
    assert "disabled" in problem(admin.post(f"{BASE}/{trigger.uuid}/start", {"commit_sha": SHA}), 400)["detail"]
    inactive = services.trigger_create(repository=world.app, service="custom-git", principal=as_principal(world.alice))
    assert "not activated" in problem(admin.post(f"{BASE}/{inactive.uuid}/start", {"commit_sha": SHA}), 400)["detail"]


def test_run_now_over_the_queue_limit_answers_429(admin, trigger):
    build_services.build_settings_update(max_queued_per_namespace=1)
    assert admin.post(f"{BASE}/{trigger.uuid}/start", {"commit_sha": SHA}).status_code == 201
    problem(admin.post(f"{BASE}/{trigger.uuid}/start", {"commit_sha": SHA}), 429)


def test_the_trigger_builds_are_listed_newest_first(admin, trigger, custom_git, world, schema):
    BuildTrigger.objects.filter(pk=trigger.pk).update(pull_robot=world.bot)
    pushed = Hook(*custom_git).post(push_payload()).json()["build_id"]
    manual = admin.post(f"{BASE}/{trigger.uuid}/start", {"commit_sha": SHA}).json()["id"]
    # A build of the same repository not started by this trigger is not listed.
    other, _ = services.trigger_create_custom_git(
        repository=world.app, principal=as_principal(world.alice), build_source=GIT_URL
    )
    Hook(other, _).post(push_payload())
    response = admin.get(f"{BASE}/{trigger.uuid}/builds")
    assert response.status_code == 200
    assert [view["id"] for view in response.json()["builds"]] == [manual, pushed]
    assert documented(schema, response, "/api/v1/repository/{repository}/trigger/{trigger_uuid}/builds", "get") == []
    assert [view["id"] for view in admin.get(f"{BASE}/{trigger.uuid}/builds", limit=1).json()["builds"]] == [manual]
    problem(admin.get(f"{BASE}/{trigger.uuid}/builds", limit="x"), 400)
    problem(admin.get(f"{BASE}/{trigger.uuid}/builds", limit=0), 400)


# ---------------------------------------------------------------------------------------------
# The private key never leaves through the API


def test_no_answer_ever_carries_the_private_key(admin, world, custom_git):
    trigger, secret = custom_git
    private = selectors.trigger_private_key(trigger.uuid)
    key_lines = [line for line in private.splitlines() if line and "PRIVATE KEY" not in line]
    created = admin.post(f"{BASE}/", {"service": "custom-git"}).json()["id"]
    answers = [
        admin.get(f"{BASE}/"),
        admin.get(f"{BASE}/{trigger.uuid}"),
        admin.put(f"{BASE}/{trigger.uuid}", {"enabled": True}),
        admin.post(f"{BASE}/{created}/activate", {"config": {"build_source": GIT_URL}}),
        admin.post(f"{BASE}/{trigger.uuid}/start", {"commit_sha": SHA}),
        Hook(trigger, secret).post(push_payload()),
        admin.get(f"{BASE}/{trigger.uuid}/builds"),
        admin.get("repository/acme/app/build/"),
    ]
    private_keys = [private, selectors.trigger_private_key(created)]
    for response in answers:
        assert response.status_code in (200, 201), response.content
        text = response.content.decode()
        assert "PRIVATE KEY" not in text
        for key in private_keys:
            for line in (ln for ln in key.splitlines() if ln and "PRIVATE KEY" not in ln):
                assert line not in text
    assert key_lines


# ---------------------------------------------------------------------------------------------
# Who may do what


def _calls(trigger) -> list[tuple[str, str, dict | None]]:
    one = f"{BASE}/{trigger.uuid}"
    return [
        ("get", f"{BASE}/", None),
        ("post", f"{BASE}/", {"service": "custom-git"}),
        ("get", one, None),
        ("put", one, {"enabled": True}),
        ("post", f"{one}/activate", {"config": {"build_source": GIT_URL}}),
        ("post", f"{one}/start", {"commit_sha": SHA}),
        ("get", f"{one}/builds", None),
        ("delete", one, None),
    ]


@pytest.mark.parametrize(
    "who, status",
    [("anonymous", 401), ("user", 404), ("other_org", 404), ("creator", 404), ("member", 403)],
)
def test_only_repository_admins_reach_triggers(world, trigger, who, status):
    api = world.api(who)
    for method, path, body in _calls(trigger):
        response = getattr(api, method)(path) if method in ("get", "delete") else getattr(api, method)(path, body)
        assert response.status_code == status, (who, method, path, response.content)
    assert BuildTrigger.objects.filter(pk=trigger.pk, enabled=True).exists()
    assert not Build.objects.exists()


def test_a_repository_admin_and_a_superuser_may(world, trigger):
    registry_services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.ADMIN, principal=as_principal(world.alice), ip=None
    )
    for who in ("user", "superuser"):
        api = world.api(who)
        assert api.get(f"{BASE}/").status_code == 200
        assert api.get(f"{BASE}/{trigger.uuid}").json()["config"]["credentials"]


def test_a_writer_is_refused(world, trigger):
    registry_services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    problem(world.api("user").get(f"{BASE}/"), 403)
    problem(world.api("user").post(f"{BASE}/{trigger.uuid}/start", {"commit_sha": SHA}), 403)


def test_a_token_needs_the_repo_admin_scope(world, trigger):
    reader = Api(world.alice, token_scopes=[scopes.REPO_READ, scopes.REPO_WRITE])
    problem(reader.get(f"{BASE}/"), 403)
    problem(reader.post(f"{BASE}/{trigger.uuid}/start", {"commit_sha": SHA}), 403)


def test_application_repositories_have_no_triggers(world, admin):
    registry_services.repository_create(
        namespace=world.acme, name="chart", principal=as_principal(world.alice), kind=Repository.Kind.APPLICATION
    )
    problem(admin.get("repository/acme/chart/trigger/"), 404)


def test_django_admin_lists_triggers_read_only_without_secrets(world, custom_git):
    from django.test import Client

    trigger, secret = custom_git
    client = Client()
    client.force_login(world.root)
    listing = client.get("/admin/triggers/buildtrigger/")
    assert listing.status_code == 200
    assert str(trigger.uuid) in listing.content.decode()
    page = client.get(f"/admin/triggers/buildtrigger/{trigger.pk}/change/").content.decode()
    assert trigger.public_key.split()[1] in page
    row = BuildTrigger.objects.get(pk=trigger.pk)
    for hidden in (secret, row.private_key_encrypted, row.webhook_secret_hash, row.webhook_secret_encrypted):
        assert hidden not in page
    assert "PRIVATE KEY" not in page
    assert client.get("/admin/triggers/buildtrigger/add/").status_code == 403
