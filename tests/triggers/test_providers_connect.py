"""What every provider trigger shares: the superuser's OAuth applications (service and Django
admin), the OAuth callback's defences (signed, expiring, single-use state bound to the user),
the outbound guard, a provider switched off, concurrent activation, and the documented shapes
of the new API answers."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from django.test import Client

from accounts import crypto
from tests.conftest import PASSWORD
from tests.triggers.fake_providers import FakeGitHub, payload
from tests.triggers.provider_support import BASE, Setup, fake_fixture, start_fake
from tests.triggers.test_trigger_api import documented, schema  # noqa: F401  (fixture)
from triggers import services
from triggers.models import BuildTrigger, ProviderApp
from triggers.providers import provider_for

github = fake_fixture(FakeGitHub)


@pytest.fixture
def setup(world, github) -> Setup:
    return Setup(world, github)


def _state(authorize_url: str) -> str:
    return parse_qs(urlsplit(authorize_url).query)["state"][0]


# ---------------------------------------------------------------------------------------------
# The OAuth applications


def test_provider_apps_store_the_secret_encrypted_and_derive_api_urls(db):
    app = services.provider_app_set(service="github", enabled=True, client_id="abc", client_secret="s3cret")
    assert app.client_secret_encrypted != "s3cret" and crypto.decrypt(app.client_secret_encrypted) == "s3cret"
    assert provider_for("github").api_url == "https://api.github.com"
    services.provider_app_set(service="github", enabled=True, client_id="abc", web_url="https://ghe.example.com/")
    provider = provider_for("github")
    assert provider.web_url == "https://ghe.example.com" and provider.api_url == "https://ghe.example.com/api/v3"
    assert provider.client_secret == "s3cret"  # kept when not given again
    services.provider_app_set(service="gitlab", enabled=True, client_id="g", client_secret="x")
    assert provider_for("gitlab").api_url == "https://gitlab.com/api/v4"
    services.provider_app_set(
        service="bitbucket", enabled=True, client_id="b", client_secret="y", api_url="https://bb.example.com/api/2.0"
    )
    assert provider_for("bitbucket").api_url == "https://bb.example.com/api/2.0"
    assert provider_for("bitbucket").web_url == "https://bitbucket.org"
    for bad in (
        {"service": "svn", "enabled": False, "client_id": ""},
        {"service": "gitlab", "enabled": True, "client_id": ""},
        {"service": "gitlab", "enabled": True, "client_id": "g", "web_url": "file:///etc/passwd"},
    ):
        with pytest.raises(services.TriggerError):
            services.provider_app_set(**bad)
    assert services.oauth_redirect_uri("gitlab").endswith("/oauth2/gitlab/callback")


def test_the_superuser_enters_a_provider_in_django_admin(world):
    browser = Client()
    assert browser.login(username="root", password=PASSWORD)
    page = browser.get("/admin/triggers/providerapp/add/")
    assert page.status_code == 200
    response = browser.post(
        "/admin/triggers/providerapp/add/",
        {
            "service": "github",
            "enabled": "on",
            "client_id": "Iv1.abcdef",
            "client_secret": "very-secret-value",
            "web_url": "https://ghe.example.com",
            "api_url": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    app = ProviderApp.objects.get(service="github")
    assert crypto.decrypt(app.client_secret_encrypted) == "very-secret-value"
    page = browser.get(f"/admin/triggers/providerapp/{app.pk}/change/")
    html = page.content.decode()
    assert "very-secret-value" not in html and app.client_secret_encrypted not in html
    assert "https://quay.example.com/oauth2/github/callback" in html
    # Changing other fields keeps the secret; enabling without a secret is refused.
    response = browser.post(
        f"/admin/triggers/providerapp/{app.pk}/change/",
        {"enabled": "on", "client_id": "Iv1.other", "client_secret": "", "web_url": "", "api_url": ""},
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.client_id == "Iv1.other" and crypto.decrypt(app.client_secret_encrypted) == "very-secret-value"
    response = browser.post(
        "/admin/triggers/providerapp/add/",
        {"service": "gitlab", "enabled": "on", "client_id": "g", "client_secret": "", "web_url": "", "api_url": ""},
    )
    assert response.status_code == 200 and b"needs its OAuth client id and client secret" in response.content
    assert not ProviderApp.objects.filter(service="gitlab").exists()
    # Not for other users.
    other = Client()
    other.login(username="alice", password=PASSWORD)
    assert other.get("/admin/triggers/providerapp/").status_code == 302


# ---------------------------------------------------------------------------------------------
# The callback's defences


def test_a_forged_or_tampered_state_is_refused(setup, github):
    trigger_id = setup.create()
    location = github.consent(setup.connect_url(trigger_id))
    code = parse_qs(urlsplit(location).query)["code"][0]
    forged = signing.dumps({"t": trigger_id, "u": setup.world.alice.pk, "s": "github", "n": "x"}, salt="other")
    for state in ("", "garbage", forged, _state(setup.connect_url(trigger_id)) + "x"):
        response = setup.browser.get("/oauth2/github/callback", {"code": code, "state": state})
        assert response.status_code == 400, state
        assert b"start again" in response.content
    assert BuildTrigger.objects.get(uuid=trigger_id).auth_token_encrypted == ""
    assert github.calls("POST", "/login/oauth/access_token") == []


def test_a_state_works_once_and_only_the_latest_start_counts(setup, github):
    trigger_id = setup.create()
    first = setup.connect_url(trigger_id)
    second = setup.connect_url(trigger_id)
    response = setup.callback(github.consent(first))
    assert response.status_code == 400 and b"already used or replaced" in response.content
    location = github.consent(second)
    assert setup.callback(location).status_code == 302
    again = setup.callback(location)
    assert again.status_code == 400 and b"already used or replaced" in again.content
    assert len(github.calls("POST", "/login/oauth/access_token")) == 1


def test_an_expired_state_is_refused(setup, github):
    trigger_id = setup.create()
    state = signing.loads(_state(setup.connect_url(trigger_id)), salt=services.STATE_SALT)

    class OneHourAgo(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - 3600)

    old = OneHourAgo(salt=services.STATE_SALT).sign_object(state, serializer=signing.JSONSerializer)
    response = setup.browser.get("/oauth2/github/callback", {"code": "whatever", "state": old})
    assert response.status_code == 400 and b"took too long" in response.content


def test_the_state_is_bound_to_the_user_and_the_provider(setup, github, world):
    trigger_id = setup.create()
    location = github.consent(setup.connect_url(trigger_id))
    query = {k: v[-1] for k, v in parse_qs(urlsplit(location).query).items()}
    # Another signed-in user cannot finish alice's connection.
    bob = Client()
    bob.force_login(world.bob)
    response = bob.get("/oauth2/github/callback", query)
    assert response.status_code == 403 and b"another user" in response.content
    # The same state at another provider's callback.
    response = setup.browser.get("/oauth2/gitlab/callback", query)
    assert response.status_code == 400 and b"not for this provider" in response.content
    # Without a session (an API client's user in another browser) the signed state is enough.
    response = setup.callback(location, browser=Client())
    assert response.status_code == 302
    assert BuildTrigger.objects.get(uuid=trigger_id).connected_user == world.alice


def test_a_user_who_lost_admin_cannot_finish(setup, github, world):
    from registry import services as registry_services
    from registry.models import Role
    from tests.registry_rest.conftest import as_principal

    registry_services.repository_permission_set_user(
        repository=world.app, username="dave", role=Role.ADMIN, principal=as_principal(world.alice), ip=None
    )
    dave = Setup(world, github)
    dave.admin = world.api("creator")
    dave.browser.force_login(world.dave)
    trigger_id = dave.create()
    location = github.consent(dave.connect_url(trigger_id))
    registry_services.repository_permission_set_user(
        repository=world.app, username="dave", role=Role.READ, principal=as_principal(world.alice), ip=None
    )
    response = dave.callback(location)
    assert response.status_code == 403 and b"no longer administer" in response.content


def test_the_provider_refusing_access_or_the_code(setup, github):
    trigger_id = setup.create()
    setup.connect_url(trigger_id)
    response = setup.browser.get(
        "/oauth2/github/callback", {"error": "access_denied", "error_description": "The user has denied <access>"}
    )
    assert response.status_code == 400
    assert b"The user has denied &lt;access&gt;" in response.content  # escaped
    location = github.consent(setup.connect_url(trigger_id))
    github.codes.clear()  # the code expired at GitHub
    response = setup.callback(location)
    assert response.status_code == 400 and b"The code passed is incorrect or expired." in response.content
    assert BuildTrigger.objects.get(uuid=trigger_id).auth_token_encrypted == ""


# ---------------------------------------------------------------------------------------------
# The switch, the guard, concurrency


def test_a_provider_switched_off_stops_connecting_and_receiving(setup, github):
    trigger = setup.ready("acme-corp/widget")
    ProviderApp.objects.filter(service="github").update(enabled=False)
    response = github.deliver(setup.hooks, "push", payload("github_push.json"))
    assert response.status_code == 400
    assert response.json()["error_message"] == "GitHub build triggers are not enabled on this registry"
    response = setup.admin.post(f"{BASE}/{trigger.uuid}/connect")
    assert response.status_code == 400
    # A custom git trigger has nothing to connect.
    custom = setup.admin.post(f"{BASE}/", {"service": "custom-git"}).json()["id"]
    response = setup.admin.post(f"{BASE}/{custom}/connect")
    assert response.status_code == 400
    assert "not a GitHub, GitLab or Bitbucket trigger" in response.json()["error_message"]


def test_provider_addresses_go_through_the_outbound_guard(settings, world):
    fake = start_fake(settings, FakeGitHub)
    try:
        setup = Setup(world, fake)
        trigger_id = setup.create()
        setup.connect(trigger_id)
        settings.OUTBOUND_ALLOWED_NETWORKS = []  # loopback no longer allowed
        response = setup.admin.get(f"{BASE}/{trigger_id}/namespaces")
        assert response.status_code == 400
        assert "address the registry may not reach" in response.json()["error_message"]
    finally:
        fake.stop()


def test_a_second_activation_while_one_runs_is_409(setup, github):
    trigger_id = setup.create()
    setup.connect(trigger_id)
    trigger = BuildTrigger.objects.get(uuid=trigger_id)
    services._activation_claim(trigger)  # another request is half-way through
    response = setup.activate(trigger_id, "acme-corp/widget")
    assert response.status_code == 409, response.content
    assert github.deploy_keys == {}


def test_activating_twice_is_refused(setup, github):
    trigger = setup.ready("acme-corp/widget")
    response = setup.activate(str(trigger.uuid), "acme-corp/widget")
    assert response.status_code == 400 and "already active" in response.json()["error_message"]
    assert len(github.hooks) == 1
    # The source of an active trigger cannot be swapped by an update of its config.
    with pytest.raises(services.TriggerError):
        services.trigger_update(
            trigger=trigger,
            principal=services.ANONYMOUS,
            config={"build_source": "acme-corp/docs"},
        )


# ---------------------------------------------------------------------------------------------
# Documented answers


def test_the_new_answers_match_the_openapi_schema(setup, github, schema):  # noqa: F811
    trigger_id = setup.create()
    path = "/api/v1/repository/{repository}/trigger/{trigger_uuid}"
    response = setup.admin.post(f"{BASE}/{trigger_id}/connect")
    assert documented(schema, response, f"{path}/connect", "post") == []
    setup.callback(github.consent(response.json()["authorize_url"]))
    response = setup.admin.get(f"{BASE}/{trigger_id}/namespaces")
    assert documented(schema, response, f"{path}/namespaces", "get") == []
    response = setup.admin.post(f"{BASE}/{trigger_id}/sources", {"namespace": "acme-corp"})
    assert documented(schema, response, f"{path}/sources", "post") == []
    response = setup.admin.post(f"{BASE}/{trigger_id}/fields/refs", {"config": {"build_source": "acme-corp/widget"}})
    assert documented(schema, response, f"{path}/fields/{{field_name}}", "post") == []
    response = setup.activate(trigger_id, "acme-corp/widget")
    assert documented(schema, response, f"{path}/activate", "post") == []
    response = setup.admin.get(f"{BASE}/{trigger_id}")
    assert documented(schema, response, path, "get") == []


def test_return_to_sends_the_browser_back_to_a_path_of_this_site_only(setup, github):
    trigger_id = setup.create()
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "relative", "/a b"):
        response = setup.admin.post(f"{BASE}/{trigger_id}/connect", {"return_to": bad})
        assert response.status_code == 400, bad
    response = setup.admin.post(f"{BASE}/{trigger_id}/connect", {"return_to": "/repository/acme/app?tab=builds&x=1"})
    assert response.status_code == 200
    answer = setup.callback(github.consent(response.json()["authorize_url"]))
    assert answer.status_code == 302 and answer["Location"] == "/repository/acme/app?tab=builds&x=1"


def test_provider_triggers_exist_only_for_enabled_providers(setup, github, world):
    from triggers import selectors

    assert selectors.enabled_providers() == ["github"]
    response = setup.admin.post(f"{BASE}/", {"service": "gitlab"})
    assert response.status_code == 400
    assert response.json()["error_message"] == "GitLab build triggers are not enabled on this registry"
    response = setup.admin.post(f"{BASE}/", {"service": "github", "config": {"build_source": "acme-corp/widget"}})
    assert response.status_code == 400
    assert not BuildTrigger.objects.exists()  # nothing stored by the refused requests
