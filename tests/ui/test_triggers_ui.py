"""Build triggers in the web UI: the Builds tab's Build Triggers section (admins only), the custom git
form (every refusal inline, nothing stored) and its credentials page, Run Now, Enable/Disable and
Delete; the GitHub, GitLab and Bitbucket setup against the local fake providers (connect through
the OAuth callback, pick the namespace and repository, activate, run, disable, delete, and the
provider's error on delete with "Delete anyway"); and who may open which page."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from accounts import crypto
from builds import services as build_services
from builds.models import Build, Phase
from registry import services as registry_services
from registry.models import Role, UsageLog
from tests.registry_rest.conftest import as_principal, world  # noqa: F401  (fixture)
from tests.triggers.conftest import GIT_URL, SHA, Hook, push_payload
from tests.triggers.fake_providers import FEATURE_SHA, MAIN_SHA, FakeBitbucket, FakeGitHub, FakeGitLab
from tests.triggers.provider_support import LOOPBACK
from tests.ui.conftest import messages_of, signed_in, text
from triggers import services
from triggers.models import BuildTrigger

TAB = "/repository/acme/app?tab=builds"
NEW_CUSTOM = "/repository/acme/app/-/triggers/new/custom-git"


@pytest.fixture(autouse=True)
def _builds_on(settings):
    settings.FEATURE_BUILD_SUPPORT = True
    settings.SERVER_HOSTNAME = "quay.example.com"
    settings.PREFERRED_URL_SCHEME = "https"


@pytest.fixture
def admin(world):  # noqa: F811
    return signed_in(world.alice)


def trigger_url(trigger: BuildTrigger, action: str) -> str:
    return f"/repository/{trigger.repository.full_name}/-/triggers/{trigger.uuid}/{action}"


def custom_trigger(world, **config) -> tuple[BuildTrigger, str]:  # noqa: F811
    """A custom git trigger made through the service (set-up, not under test)."""
    return services.trigger_create_custom_git(
        repository=world.app,
        principal=as_principal(world.alice),
        build_source=config.pop("build_source", GIT_URL),
        pull_robot=config.pop("pull_robot", None),
        config=config,
    )


def field_error(response, field: str) -> str:
    """The error list Django renders next to one input (``id_<field>_error``), as text."""
    match = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', response.content.decode(), re.S)
    assert match, f"no error next to {field}: {text(response)[:2000]}"
    return unescape(re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def input_value(response, name: str) -> str:
    match = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', response.content.decode())
    assert match, f"no input {name}"
    return unescape(match.group(1))


def trigger_row(response, trigger: BuildTrigger) -> str:
    match = re.search(rf'<tr data-trigger="{trigger.uuid}">(.*?)</tr>', response.content.decode(), re.S)
    assert match, "the trigger is not listed"
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", match.group(1)))).strip()


def custom_form(**overrides) -> dict:
    data = {
        "build_source": GIT_URL,
        "pull_robot": "",
        "branchtag_regex": "",
        "context": "",
        "dockerfile_path": "",
        "tag_templates": "",
        "default_tag_from_ref": "on",
        "latest_for_default_branch": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# --- The section on the Builds tab ----------------------------------------------------------------


def test_the_builds_tab_shows_triggers_to_admins_only(world, admin):  # noqa: F811
    trigger, _ = custom_trigger(world, branchtag_regex="heads/main", pull_robot=world.bot)
    page = admin.get(TAB)
    assert page.status_code == 200
    body = text(page)
    assert "Build Triggers" in body and "Create Build Trigger" in body
    # No provider is enabled: custom git is the only kind.
    assert "Custom Git Repository Push" in body
    assert "GitHub Repository Push" not in body and "GitLab" not in body and "Bitbucket" not in body
    row = trigger_row(page, trigger)
    assert "Custom Git" in row and GIT_URL in row and "heads/main" in row and "acme+bot" in row
    assert "Enabled" in row and "View Credentials" in row and "Run Now" in row and "Disable Trigger" in row

    # A writer and a reader see the builds, not the triggers.
    registry_services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    for user in (world.charlie, world.bob):
        page = signed_in(user).get(TAB)
        assert page.status_code == 200 and "Builds" in text(page)
        assert "Build Triggers" not in text(page) and str(trigger.uuid) not in page.content.decode()


# --- Custom git -------------------------------------------------------------------------------------


def test_create_a_custom_git_trigger_and_view_its_credentials(world, admin):  # noqa: F811
    form = admin.get(NEW_CUSTOM)
    assert form.status_code == 200
    assert "Custom Git Repository Push" in text(form)
    # The pull robot is chosen by hand, among the namespace's robots.
    assert '<option value="acme+bot">acme+bot</option>' in form.content.decode()

    response = admin.post(
        NEW_CUSTOM,
        custom_form(
            pull_robot="acme+bot",
            branchtag_regex="heads/main|tags/v.*",
            context="web",
            dockerfile_path="web/Dockerfile.prod",
            tag_templates="${commit_info.short_sha}\n\nbuild-${branch}\n",
            default_tag_from_ref=None,  # unchecked
        ),
    )
    assert response.status_code == 302, text(response)[:2000]
    trigger = BuildTrigger.objects.get()
    assert response["Location"] == trigger_url(trigger, "credentials")
    assert trigger.service == "custom-git" and trigger.is_active and trigger.enabled
    assert trigger.pull_robot == world.bot and trigger.connected_user == world.alice
    assert trigger.config == {
        "build_source": GIT_URL,
        "branchtag_regex": "heads/main|tags/v.*",
        "context": "web",
        "dockerfile_path": "web/Dockerfile.prod",
        "tag_templates": ["${commit_info.short_sha}", "build-${branch}"],
        "default_tag_from_ref": False,
        "latest_for_default_branch": True,
    }
    log = UsageLog.objects.get(kind="setup_repo_trigger")
    assert log.metadata["trigger_id"] == str(trigger.uuid) and log.actor_id == world.alice.pk

    # View Credentials: the SSH public key and the webhook URL with its secret (chapter 3.2).
    page = admin.get(response["Location"])
    assert page.status_code == 200
    assert "Created the custom git trigger" in " ".join(messages_of(page))
    secret = crypto.decrypt(trigger.webhook_secret_encrypted)
    webhook_url = f"https://$token:{secret}@quay.example.com/webhooks/push/trigger/{trigger.uuid}"
    html = page.content.decode()
    key = unescape(re.search(r'id="trigger-public-key" value="([^"]*)"', html).group(1))
    url = unescape(re.search(r'id="trigger-webhook-url" value="([^"]*)"', html).group(1))
    assert key == trigger.public_key and key.startswith("ssh-ed25519 ")
    assert url == webhook_url
    assert "SSH Public Key" in text(page) and "Webhook Endpoint URL" in text(page)
    # The private key is never on a page.
    assert "PRIVATE KEY" not in html

    # The URL's secret works: a push builds with the trigger's config (chapter 4's tags).
    answer = Hook(trigger, url.split(":", 2)[2].split("@")[0]).post(push_payload())
    assert answer.status_code == 200 and answer.json()["skipped"] is False
    build = Build.objects.get(uuid=answer.json()["build_id"])
    assert build.tags == [SHA[:7], "build-main", "latest"]
    assert build.context == "web" and build.dockerfile_path == "web/Dockerfile.prod"
    assert build.pull_robot == world.bot

    # Listed on the Builds tab with the build it made.
    tab = admin.get(TAB)
    row = trigger_row(tab, trigger)
    assert GIT_URL in row and "heads/main|tags/v.*" in row and "web/Dockerfile.prod" in row
    assert str(build.uuid)[:8] in text(tab)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"build_source": ""}, "build_source", "This field is required."),
        ({"build_source": "file:///srv/git/app.git"}, "build_source", "build_source must be a git URL"),
        ({"build_source": "/srv/git/app.git"}, "build_source", "build_source must be a git URL"),
        ({"build_source": "-oProxyCommand=x@host:path"}, "build_source", "build_source must be a git URL"),
        ({"branchtag_regex": "heads/(main"}, "branchtag_regex", "branchtag_regex is not a valid regular expression"),
        ({"context": "../outside"}, "context", "context must stay inside the git repository"),
        (
            {"context": "web", "dockerfile_path": "api/Dockerfile"},
            "dockerfile_path",
            "dockerfile_path must be inside the build context",
        ),
        ({"tag_templates": "ok\nv-${oops"}, "tag_templates", "has a malformed ${...} placeholder"),
        ({"pull_robot": "globex+bot"}, "pull_robot", "Select a valid choice."),
    ],
)
def test_bad_custom_git_input_is_refused_inline_and_nothing_is_stored(
    world,  # noqa: F811
    admin,
    overrides,
    field,
    message,
):
    data = custom_form(**overrides)
    response = admin.post(NEW_CUSTOM, data)
    assert response.status_code == 400
    assert message in field_error(response, field)
    # The input is kept.
    for name, value in data.items():
        if name in ("build_source", "branchtag_regex", "context", "dockerfile_path") and value:
            assert input_value(response, name) == value
    assert BuildTrigger.objects.count() == 0
    assert not UsageLog.objects.filter(kind="setup_repo_trigger").exists()


def test_a_repository_admin_who_does_not_administer_the_organization_cannot_hand_out_its_robots(world):  # noqa: F811
    registry_services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.ADMIN, principal=as_principal(world.alice), ip=None
    )
    response = signed_in(world.charlie).post(NEW_CUSTOM, custom_form(pull_robot="acme+bot"))
    assert response.status_code == 403
    assert "Only administrators of acme may use its robot accounts" in field_error(response, "pull_robot")
    assert BuildTrigger.objects.count() == 0
    # Without a robot the same admin may create the trigger.
    assert signed_in(world.charlie).post(NEW_CUSTOM, custom_form()).status_code == 302
    assert BuildTrigger.objects.get().pull_robot is None


# --- Run Now, Enable/Disable, Delete ----------------------------------------------------------------


def test_run_now_builds_a_branch_tag_or_commit(world, admin):  # noqa: F811
    trigger, _ = custom_trigger(world, branchtag_regex="heads/main")
    form = admin.get(trigger_url(trigger, "run"))
    assert form.status_code == 200 and "Run the Custom Git trigger now" in text(form)

    response = admin.post(trigger_url(trigger, "run"), {"kind": "branch", "name": "feature/login"})
    assert response.status_code == 302 and response["Location"] == TAB
    build = Build.objects.get()
    # Run Now is explicit: the filter (heads/main) does not apply.
    assert build.trigger_uuid == trigger.uuid and build.is_manual and build.started_by == world.alice
    assert build.git["ref"] == "refs/heads/feature/login" and build.tags == ["feature-login"]
    tab = admin.get(response["Location"])
    assert f"Started build {str(build.uuid)[:8]} of feature/login." in messages_of(tab)
    assert f'data-build="{build.uuid}"' in tab.content.decode() and "Trigger commit" in text(tab)

    admin.post(trigger_url(trigger, "run"), {"kind": "tag", "name": "v1.2"})
    admin.post(trigger_url(trigger, "run"), {"kind": "commit", "name": SHA})
    tag_build, commit_build = Build.objects.order_by("created", "pk")[1:]
    assert tag_build.git["ref"] == "refs/tags/v1.2" and tag_build.tags == ["v1.2"]
    assert commit_build.git["sha"] == SHA and commit_build.tags == [SHA[:7]]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "commit", "name": "not-a-sha"}, "commit_sha must be 7 to 40 hexadecimal characters"),
        ({"kind": "branch", "name": ""}, "missing required parameter"),
        ({"kind": "tag", "name": "../etc"}, "refs.name is not a valid branch or tag name"),
    ],
)
def test_run_now_refusals_are_inline(world, admin, data, message):  # noqa: F811
    trigger, _ = custom_trigger(world)
    response = admin.post(trigger_url(trigger, "run"), data)
    assert response.status_code == 400
    assert message in field_error(response, "name")
    if data["name"]:
        assert input_value(response, "name") == data["name"]
    assert Build.objects.count() == 0


def test_run_now_says_when_the_queue_is_full(world, admin):  # noqa: F811
    build_services.build_settings_update(max_queued_per_namespace=1)
    trigger, _ = custom_trigger(world)
    assert admin.post(trigger_url(trigger, "run"), {"kind": "branch", "name": "main"}).status_code == 302
    response = admin.post(trigger_url(trigger, "run"), {"kind": "branch", "name": "main"})
    assert response.status_code == 429
    assert "queue" in text(response).lower()
    assert Build.objects.count() == 1


def test_disable_and_enable(world, admin, settings):  # noqa: F811
    trigger, secret = custom_trigger(world)
    response = admin.post(trigger_url(trigger, "enabled"), {"enabled": "0"})
    assert response.status_code == 302 and response["Location"] == f"{TAB}#build-triggers"
    trigger.refresh_from_db()
    assert not trigger.enabled and trigger.disabled_reason == "user_toggled"
    tab = admin.get(TAB)
    row = trigger_row(tab, trigger)
    assert "Disabled" in row and "Disabled by a user" in row
    assert "Run Now" not in row and "Enable Trigger" in row
    # Disabled: pushes and Run Now are refused, with the reason.
    assert Hook(trigger, secret).post(push_payload()).status_code == 400
    response = admin.post(trigger_url(trigger, "run"), {"kind": "branch", "name": "main"})
    assert response.status_code == 400 and "currently disabled" in text(response)
    assert Build.objects.count() == 0

    admin.post(trigger_url(trigger, "enabled"), {"enabled": "1"})
    trigger.refresh_from_db()
    assert trigger.enabled and trigger.disabled_reason == ""
    assert [log.metadata["enabled"] for log in UsageLog.objects.filter(kind="toggle_repo_trigger")] == [False, True]

    # An automatic disable shows its reason.
    settings.TRIGGER_DISABLE_AFTER_FAILURES = 1
    admin.post(trigger_url(trigger, "run"), {"kind": "branch", "name": "main"})
    build = Build.objects.get()
    Build.objects.filter(pk=build.pk).update(phase=Phase.ERROR)
    build.refresh_from_db()
    services.trigger_build_finished(build)
    assert "Successive build failures" in trigger_row(admin.get(TAB), trigger)


def test_delete(world, admin):  # noqa: F811
    trigger, secret = custom_trigger(world)
    response = admin.post(trigger_url(trigger, "delete"))
    assert response.status_code == 302
    assert not BuildTrigger.objects.exists()
    assert "Deleted the Custom Git trigger." in messages_of(admin.get(response["Location"]))
    assert UsageLog.objects.filter(kind="delete_repo_trigger").count() == 1
    assert Hook(trigger, secret).post(push_payload()).status_code == 404


# --- Who may do what ----------------------------------------------------------------------------------


def every_page(trigger: BuildTrigger) -> list[tuple[str, str, dict]]:
    return [
        ("get", NEW_CUSTOM, {}),
        ("post", NEW_CUSTOM, custom_form()),
        ("get", "/repository/acme/app/-/triggers/new/github", {}),
        ("get", trigger_url(trigger, "credentials"), {}),
        ("get", trigger_url(trigger, "run"), {}),
        ("post", trigger_url(trigger, "run"), {"kind": "branch", "name": "main"}),
        ("post", trigger_url(trigger, "enabled"), {"enabled": "0"}),
        ("post", trigger_url(trigger, "delete"), {}),
    ]


def test_non_admins_get_403_or_404_and_change_nothing(world, settings):  # noqa: F811
    trigger, _ = custom_trigger(world)
    registry_services.repository_permission_set_user(
        repository=world.app, username="dave", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    for user, status in ((world.bob, 403), (world.dave, 403), (world.charlie, 404)):
        client = signed_in(user)
        for method, url, data in every_page(trigger):
            response = getattr(client, method)(url, data)
            assert response.status_code == status, (user.username, method, url, response.status_code)
            if status == 403:
                assert "Only administrators of acme/app can do this." in text(response)
    anonymous = Client()
    for method, url, data in every_page(trigger):
        response = getattr(anonymous, method)(url, data)
        assert response.status_code == 302 and response["Location"].startswith("/signin?next="), url
    trigger.refresh_from_db()
    assert trigger.enabled and BuildTrigger.objects.count() == 1 and Build.objects.count() == 0


def test_a_trigger_of_another_repository_is_not_found(world, admin):  # noqa: F811
    trigger, _ = custom_trigger(world)
    other = registry_services.repository_create(namespace=world.acme, name="other", principal=as_principal(world.alice))
    for action in ("credentials", "run", "setup"):
        assert admin.get(f"/repository/acme/other/-/triggers/{trigger.uuid}/{action}").status_code == 404
    assert admin.post(f"/repository/acme/other/-/triggers/{trigger.uuid}/delete").status_code == 404
    assert other.build_triggers.count() == 0 and BuildTrigger.objects.count() == 1


def test_with_builds_off_trigger_pages_say_so(world, admin, settings):  # noqa: F811
    trigger, _ = custom_trigger(world)
    settings.FEATURE_BUILD_SUPPORT = False
    for url in (NEW_CUSTOM, trigger_url(trigger, "credentials"), trigger_url(trigger, "run")):
        response = admin.get(url)
        assert response.status_code == 404
        assert "Dockerfile builds are not enabled on this registry" in text(response)
    assert admin.post(trigger_url(trigger, "delete")).status_code == 404
    assert BuildTrigger.objects.count() == 1


def test_application_repositories_have_no_triggers(world, admin):  # noqa: F811
    registry_services.repository_create(
        namespace=world.acme, name="charts", principal=as_principal(world.alice), kind="application"
    )
    assert admin.get("/repository/acme/charts/-/triggers/new/custom-git").status_code == 404


# --- GitHub, GitLab, Bitbucket ------------------------------------------------------------------------


def enable(settings, cls):
    """A local fake provider entered as the superuser's OAuth application."""
    settings.OUTBOUND_ALLOWED_NETWORKS = LOOPBACK
    fake = cls()
    services.provider_app_set(
        service=cls.service, enabled=True, client_id=fake.client_id, client_secret=fake.client_secret, web_url=fake.url
    )
    fake.callback_url = services.oauth_redirect_uri(cls.service)
    return fake


@pytest.fixture
def github(settings, world):  # noqa: F811
    fake = enable(settings, FakeGitHub)
    yield fake
    fake.stop()


def connect(admin, fake, start_url: str) -> BuildTrigger:
    """Connect from the UI: our POST answers with the provider's authorize URL, the user approves
    there, and the provider sends the browser back to our OAuth callback, then to the setup page."""
    response = admin.post(start_url)
    assert response.status_code == 302, text(response)[:2000]
    authorize = response["Location"]
    assert authorize.startswith(f"{fake.url}/")
    back = urlsplit(fake.consent(authorize))
    assert back.netloc == "quay.example.com" and back.path == f"/oauth2/{fake.service}/callback"
    response = admin.get(back.path, {key: values[-1] for key, values in parse_qs(back.query).items()})
    assert response.status_code == 302, response.content
    trigger = BuildTrigger.objects.get(service=fake.service)
    assert response["Location"] == trigger_url(trigger, "setup")
    return trigger


def links(response, container_id: str) -> list[tuple[str, str]]:
    """The choices (namespaces or repositories) a setup step offers: (href, name)."""
    html = response.content.decode()
    block = re.search(rf'id="{container_id}"(.*?)</div>', html, re.S).group(1)
    return [
        (unescape(href), unescape(label))
        for href, label in re.findall(r'<a href="([^"]+)" class="mono">([^<]+)</a>', block)
    ]


def test_github_setup_run_disable_and_delete(world, admin, github):  # noqa: F811
    # The menu offers GitHub once its OAuth application is enabled.
    assert "GitHub Repository Push" in text(admin.get(TAB))
    start = "/repository/acme/app/-/triggers/new/github"
    page = admin.get(start)
    assert page.status_code == 200 and "Connect to GitHub" in text(page)
    # The form's answer redirects to GitHub: the page's CSP must let the form go there.
    assert github.url in page["Content-Security-Policy"].split("form-action")[1].split(";")[0]
    assert BuildTrigger.objects.count() == 0  # looking creates nothing

    trigger = connect(admin, github, start)
    assert trigger.connected_user == world.alice and not trigger.is_active

    # Pick the organization, then the repository (only those the account administers are offered).
    setup = admin.get(trigger_url(trigger, "setup"))
    assert setup.status_code == 200
    namespaces = links(setup, "trigger-namespaces")
    assert [label for _, label in namespaces] == ["octo-alice", "acme-corp"]
    sources_page = admin.get(dict((label, href) for href, label in namespaces)["acme-corp"])
    sources = links(sources_page, "trigger-sources")
    assert [label for _, label in sources] == ["acme-corp/widget"]
    assert "acme-corp/docs" in text(sources_page) and "You need admin access on it" in text(sources_page)
    config_page = admin.get(sources[0][0])
    assert config_page.status_code == 200
    assert input_value(config_page, "build_source") == "acme-corp/widget"
    refs = re.sub(r" ([,.])", r"\1", text(config_page))
    assert "Branches: feature/login, main." in refs
    assert "Tags: v1.0.0." in refs

    # A bad filter is refused next to its input; nothing is added at GitHub.
    activate = trigger_url(trigger, "activate")
    data = {"build_source": "acme-corp/widget", "namespace": "acme-corp", "latest_for_default_branch": "on"}
    response = admin.post(activate, {**data, "branchtag_regex": "heads/(main"})
    assert response.status_code == 400
    assert "branchtag_regex is not a valid regular expression" in field_error(response, "branchtag_regex")
    assert input_value(response, "branchtag_regex") == "heads/(main"
    trigger.refresh_from_db()
    assert not trigger.is_active and github.deploy_keys == {} and github.hooks == {}

    response = admin.post(activate, {**data, "branchtag_regex": "heads/.*", "pull_robot": "acme+bot"})
    assert response.status_code == 302 and response["Location"] == f"{TAB}#build-triggers"
    trigger.refresh_from_db()
    assert trigger.is_active and trigger.pull_robot == world.bot
    assert trigger.config["build_source"] == "acme-corp/widget" and trigger.config["branchtag_regex"] == "heads/.*"
    [key] = github.deploy_keys.values()
    assert key["key"] == trigger.public_key and key["read_only"] is True
    assert github.only_hook()["config"]["url"] == f"https://quay.example.com/webhooks/github/trigger/{trigger.uuid}"

    tab = admin.get(TAB)
    row = trigger_row(tab, trigger)
    assert "GitHub" in row and "acme-corp/widget" in row and "heads/.*" in row and "Enabled" in row
    assert f'href="{github.url}/acme-corp/widget"' in tab.content.decode()

    # View Credentials: the deploy key; the webhook lives at GitHub.
    credentials = admin.get(trigger_url(trigger, "credentials"))
    assert trigger.public_key in unescape(credentials.content.decode())
    assert 'id="trigger-webhook-url"' not in credentials.content.decode()

    # Run Now offers GitHub's branches and tags, and asks GitHub which commit a branch is.
    run = admin.get(trigger_url(trigger, "run"))
    assert '<option value="feature/login">branch</option>' in run.content.decode()
    assert admin.post(trigger_url(trigger, "run"), {"kind": "branch", "name": "feature/login"}).status_code == 302
    assert admin.post(trigger_url(trigger, "run"), {"kind": "branch", "name": ""}).status_code == 302
    feature, default = Build.objects.order_by("created", "pk")
    assert (
        feature.trigger_metadata["commit"] == FEATURE_SHA and feature.git["url"] == "git@127.0.0.1:acme-corp/widget.git"
    )
    assert default.trigger_metadata["commit"] == MAIN_SHA and default.git["ref"] == "refs/heads/main"
    response = admin.post(trigger_url(trigger, "run"), {"kind": "branch", "name": "nope"})
    assert response.status_code == 400 and "Could not find branch nope" in field_error(response, "name")

    admin.post(trigger_url(trigger, "enabled"), {"enabled": "0"})
    trigger.refresh_from_db()
    assert not trigger.enabled and "Disabled by a user" in trigger_row(admin.get(TAB), trigger)

    # Delete: GitHub refuses to remove the hook: the trigger is kept and the error shown.
    hook_path = r"/api/v3/repos/acme-corp/widget/hooks/.+"
    github.failures[("DELETE", hook_path)] = 500
    response = admin.post(trigger_url(trigger, "delete"))
    assert response.status_code == 502
    assert "was not deleted" in text(response) and "hook" in text(response) and "Delete anyway" in text(response)
    assert BuildTrigger.objects.filter(pk=trigger.pk).exists()
    # Trying again once GitHub works removes the hook and the key, then the trigger.
    del github.failures[("DELETE", hook_path)]
    response = admin.post(trigger_url(trigger, "delete"))
    assert response.status_code == 302 and not BuildTrigger.objects.exists()
    assert github.hooks == {} and github.deploy_keys == {}
    assert "Deleted the GitHub trigger." in messages_of(admin.get(response["Location"]))


def test_delete_anyway_when_the_provider_keeps_refusing(world, admin, github):  # noqa: F811
    trigger = connect(admin, github, "/repository/acme/app/-/triggers/new/github")
    response = admin.post(
        trigger_url(trigger, "activate"), {"build_source": "acme-corp/widget", "namespace": "acme-corp"}
    )
    assert response.status_code == 302
    github.failures[("DELETE", r"/api/v3/repos/acme-corp/widget/(hooks|keys)/.+")] = 503
    page = admin.post(trigger_url(trigger, "delete"))
    assert page.status_code == 502 and 'name="force" value="1"' in page.content.decode()
    response = admin.post(trigger_url(trigger, "delete"), {"force": "1"})
    assert response.status_code == 302 and not BuildTrigger.objects.exists()
    [warning] = messages_of(admin.get(response["Location"]))
    assert "Remove what is left at GitHub by hand" in warning
    log = UsageLog.objects.get(kind="delete_repo_trigger")
    assert set(log.metadata["remote_leftovers"]) == {"hook_id", "deploy_key_id"}


def test_only_the_connected_admin_browses_the_account(world, admin, github):  # noqa: F811
    trigger = connect(admin, github, "/repository/acme/app/-/triggers/new/github")
    root = signed_in(world.root)  # a superuser: admin of every repository
    page = root.get(trigger_url(trigger, "setup"))
    assert page.status_code == 200
    assert "connected to the GitHub account of alice" in text(page) and "Connect to GitHub" in text(page)
    assert "acme-corp" not in text(page)
    response = root.post(trigger_url(trigger, "activate"), {"build_source": "acme-corp/widget"})
    assert response.status_code == 403 and "Connect to GitHub" in text(response)
    assert "Only the user who connected the trigger's account may do this" in text(response)
    trigger.refresh_from_db()
    assert not trigger.is_active and github.deploy_keys == {}


def test_the_builds_tab_points_back_to_an_unfinished_setup(world, admin, github):  # noqa: F811
    trigger = connect(admin, github, "/repository/acme/app/-/triggers/new/github")
    tab = admin.get(f"{TAB}&trigger_setup={trigger.uuid}")
    assert "Continue setting up the trigger" in text(tab)
    row = trigger_row(tab, trigger)
    assert "Setup not finished" in row and "Continue Setup" in row and "View Credentials" not in row
    credentials = admin.get(trigger_url(trigger, "credentials"))
    assert "not activated yet" in text(credentials)


def test_a_provider_that_is_not_enabled_is_not_offered(world, admin):  # noqa: F811
    for service in ("github", "gitlab", "bitbucket", "custom"):
        assert admin.get(f"/repository/acme/app/-/triggers/new/{service}").status_code == 404
        assert admin.post(f"/repository/acme/app/-/triggers/new/{service}").status_code == 404
    assert BuildTrigger.objects.count() == 0


@pytest.mark.parametrize("cls", [FakeGitLab, FakeBitbucket])
def test_gitlab_and_bitbucket_setup(settings, world, admin, cls):  # noqa: F811
    fake = enable(settings, cls)
    try:
        title = {"gitlab": "GitLab", "bitbucket": "Bitbucket"}[cls.service]
        assert f"{title} Repository Push" in text(admin.get(TAB))
        trigger = connect(admin, fake, f"/repository/acme/app/-/triggers/new/{cls.service}")
        namespaces = links(admin.get(trigger_url(trigger, "setup")), "trigger-namespaces")
        assert namespaces
        source_href, source = None, None
        for href, _label in namespaces:
            sources = links(admin.get(href), "trigger-sources")
            if sources:
                source_href, source = sources[0]
                break
        assert source is not None, "no repository to pick"
        config_page = admin.get(source_href)
        assert input_value(config_page, "build_source") == source
        namespace = input_value(config_page, "namespace")
        response = admin.post(trigger_url(trigger, "activate"), {"build_source": source, "namespace": namespace})
        assert response.status_code == 302, text(response)[:2000]
        trigger.refresh_from_db()
        assert trigger.is_active and len(fake.deploy_keys) == 1 and len(fake.hooks) == 1
        assert title in trigger_row(admin.get(TAB), trigger)
        assert admin.post(trigger_url(trigger, "run"), {"kind": "branch", "name": ""}).status_code == 302
        assert Build.objects.get().trigger_uuid == trigger.uuid
        assert admin.post(trigger_url(trigger, "delete")).status_code == 302
        assert fake.deploy_keys == {} and fake.hooks == {} and not BuildTrigger.objects.exists()
    finally:
        fake.stop()
