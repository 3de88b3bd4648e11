"""App-specific tokens, OAuth applications and the token grant (/oauth/authorizeapp), and the
session sign-in/sign-out that automation for Quay uses to reach the grant."""

import base64
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounts import scopes
from accounts import services as account_services
from accounts.models import AppToken, OAuthAccessToken, OAuthApplication
from registry.models import UsageLog
from tests.accounts.conftest import PASSWORD, problem

APPTOKEN = "/api/v1/user/apptoken"
APPS = "/api/v1/organization/acme/applications"


@pytest.fixture(autouse=True)
def _fresh_signin_rate_limit():
    """Sign-ins are rate-limited per client address through the cache, which outlives a test."""
    cache.clear()
    yield
    cache.clear()


def registry_login(username: str, password: str) -> int:
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    return Client().get("/v2/auth?service=testserver", HTTP_AUTHORIZATION=f"Basic {basic}").status_code


# --- App-specific tokens ---


def test_it_creates_an_app_token_shown_once(world, api):
    client = api(world.alice)
    response = client.post(APPTOKEN, {"title": "laptop"})
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    assert token["title"] == "laptop" and token["expiration"] is None and token["last_accessed"] is None
    code = token["token_code"]
    assert registry_login("$app", code) == 200
    row = AppToken.objects.get(uuid=token["uuid"])
    assert code not in (row.token_hash, row.token_prefix)
    listed = client.get(APPTOKEN).json()
    assert listed["only_expiring"] is None
    assert [t["uuid"] for t in listed["tokens"]] == [token["uuid"]]
    assert "token_code" not in listed["tokens"][0]
    single = client.get(f"{APPTOKEN}/{token['uuid']}").json()["token"]
    assert single["title"] == "laptop" and "token_code" not in single
    assert UsageLog.objects.filter(kind="create_app_specific_token", actor=world.alice).exists()


def test_it_lists_expiring_tokens(world, api):
    now = timezone.now()
    account_services.app_token_create(user=world.alice, title="soon", expiration=now + timedelta(days=1))
    account_services.app_token_create(user=world.alice, title="expired", expiration=now - timedelta(days=1))
    account_services.app_token_create(user=world.alice, title="later", expiration=now + timedelta(days=365))
    account_services.app_token_create(user=world.alice, title="never")
    body = api(world.alice).get(f"{APPTOKEN}?expiring=true").json()
    assert body["only_expiring"] is True
    assert [t["title"] for t in body["tokens"]] == ["soon"]


def test_it_revokes_an_app_token(world, api):
    row, code = account_services.app_token_create(user=world.alice, title="old")
    assert api(world.alice).delete(f"{APPTOKEN}/{row.uuid}").status_code == 204
    assert registry_login("$app", code) == 401
    assert UsageLog.objects.filter(kind="revoke_app_specific_token").exists()
    problem(api(world.alice).delete(f"{APPTOKEN}/{row.uuid}"), 404, "not_found")


def test_it_hides_other_users_app_tokens(world, api):
    row, code = account_services.app_token_create(user=world.alice, title="alices")
    client = api(world.bob)
    problem(client.get(f"{APPTOKEN}/{row.uuid}"), 404, "not_found")
    problem(client.delete(f"{APPTOKEN}/{row.uuid}"), 404, "not_found")
    problem(client.get(f"{APPTOKEN}/not-a-uuid"), 404, "not_found")
    assert client.get(APPTOKEN).json()["tokens"] == []
    assert registry_login("$app", code) == 200


def test_app_tokens_need_user_admin(world, api):
    problem(api().get(APPTOKEN), 401, "invalid_token")
    client = api(world.alice, token_scopes={scopes.USER_READ, scopes.ORG_ADMIN})
    problem(client.get(APPTOKEN), 403, "insufficient_scope")
    problem(client.post(APPTOKEN, {"title": "x"}), 403, "insufficient_scope")
    problem(api(world.alice).post(APPTOKEN, {}), 400, "invalid_request")
    assert not AppToken.objects.exists()


# --- OAuth applications ---


def create_app(api, world, **fields) -> dict:
    response = api(world.alice).post(APPS, {"name": "deployer", **fields})
    assert response.status_code == 200, response.content
    return response.json()


def test_it_creates_lists_reads_updates_and_deletes_applications(world, api):
    client = api(world.alice)
    app = create_app(api, world, redirect_uri="https://ci.example.com/cb", description="CI")
    assert set(app) == {
        "name",
        "description",
        "application_uri",
        "client_id",
        "client_secret",
        "redirect_uri",
        "avatar_email",
    }
    assert len(app["client_id"]) == 20 and len(app["client_secret"]) == 40
    stored = OAuthApplication.objects.get(client_id=app["client_id"])
    assert app["client_secret"] not in stored.client_secret_encrypted
    assert client.get(APPS).json() == {"applications": [app]}
    assert client.get(f"{APPS}/{app['client_id']}").json() == app

    updated = client.put(
        f"{APPS}/{app['client_id']}",
        {"name": "renamed", "redirect_uri": "", "application_uri": "https://ci.example.com"},
    ).json()
    assert updated["name"] == "renamed" and updated["client_secret"] == app["client_secret"]
    reset = client.post(f"{APPS}/{app['client_id']}/resetclientsecret").json()
    assert reset["client_secret"] != app["client_secret"]

    account_services.oauth_token_create(user=world.alice, scopes={"repo:read"}, application=stored)
    assert client.delete(f"{APPS}/{app['client_id']}").status_code == 204
    assert not OAuthApplication.objects.exists() and not OAuthAccessToken.objects.filter(application=stored).exists()
    kinds = list(UsageLog.objects.filter(namespace=world.acme).order_by("pk").values_list("kind", flat=True))
    assert kinds == [
        "create_application",
        "update_application",
        "reset_application_client_secret",
        "delete_application",
    ]


def test_it_validates_applications(world, api):
    client = api(world.alice)
    problem(client.post(APPS, {"description": "no name"}), 400, "invalid_request")
    problem(client.post(APPS, {"name": "x", "redirect_uri": "not a url"}), 400, "invalid_request")
    app = create_app(api, world)
    problem(client.put(f"{APPS}/{app['client_id']}", {"name": "only name"}), 400, "invalid_request")
    assert OAuthApplication.objects.get().name == "deployer"


def test_it_keeps_applications_inside_their_organization(world, api):
    app = create_app(api, world)
    other = api(world.charlie)
    other.post("/api/v1/organization/globex/applications", {"name": "globex-app"})
    problem(other.get(f"/api/v1/organization/globex/applications/{app['client_id']}"), 404, "not_found")
    problem(other.get(f"{APPS}/{app['client_id']}"), 404, "not_found")
    problem(other.delete(f"{APPS}/{app['client_id']}"), 404, "not_found")
    problem(api(world.bob).get(f"{APPS}/{app['client_id']}"), 403, "insufficient_scope")
    problem(api(world.bob).post(f"{APPS}/{app['client_id']}/resetclientsecret"), 403, "insufficient_scope")
    problem(api(world.alice).get(f"{APPS}/NOSUCHCLIENT"), 404, "not_found")
    assert OAuthApplication.objects.filter(client_id=app["client_id"]).exists()


def test_applications_need_org_admin_scope(world, api):
    client = api(world.alice, token_scopes={scopes.USER_ADMIN, scopes.REPO_ADMIN})
    problem(client.get(APPS), 403, "insufficient_scope")
    problem(client.post(APPS, {"name": "x"}), 403, "insufficient_scope")
    assert not OAuthApplication.objects.exists()


def test_it_describes_an_application_publicly(world, api):
    app = create_app(api, world, application_uri="https://ci.example.com")
    body = api().get(f"/api/v1/app/{app['client_id']}").json()
    assert body["name"] == "deployer" and body["uri"] == "https://ci.example.com"
    assert body["organization"]["name"] == "acme" and body["organization"]["email"] == ""
    assert "client_secret" not in str(body)
    problem(api().get("/api/v1/app/NOSUCHCLIENT"), 404, "not_found")


# --- Session sign-in and the token grant, as Quay's Ansible collection does it ---


def granted():
    """Tokens issued through an application (the test client's own tokens have none)."""
    return OAuthAccessToken.objects.filter(application__isnull=False)


def signed_in(username: str) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    csrf = client.get("/csrf_token").json()["csrf_token"]
    response = client.post(
        "/api/v1/signin",
        {"username": username, "password": PASSWORD},
        content_type="application/json",
        HTTP_X_CSRF_TOKEN=csrf,
    )
    assert response.status_code == 200, response.content
    return client, response["X-Next-CSRF-Token"]


def authorize(client: Client, csrf: str | None, **form) -> object:
    data = {"response_type": "token", "redirect_uri": "http://testserver/oauth/localapp", **form}
    if csrf:
        data["_csrf_token"] = csrf
    return client.post("/oauth/authorizeapp", data)


def fragment_token(location: str) -> tuple[str, dict]:
    parts = urlsplit(location)
    fragment = parse_qs(parts.fragment)
    return fragment["access_token"][0], {"query": parse_qs(parts.query), "fragment": fragment}


def test_it_grants_a_token_through_an_application_like_the_ansible_collection(world, api):
    app = create_app(api, world)
    client, csrf = signed_in("alice")
    # The collection sends the next CSRF token both as a header and as `_csrf_token`.
    response = authorize(
        client, csrf, client_id=app["client_id"], scope="org:admin repo:admin user:admin", HTTP_X_CSRF_TOKEN=csrf
    )
    assert response.status_code == 302, response.content
    location = response["Location"]
    assert location.startswith("http://testserver/oauth/localapp?")
    token, parts = fragment_token(location)
    assert parts["fragment"]["token_type"] == ["Bearer"] and int(parts["fragment"]["expires_in"][0]) > 0
    # The regular expression the collection applies to the Location header.
    assert f"access_token={token}&" in location
    assert parts["query"]["scope"] == ["org:admin repo:admin user:admin"]

    row = OAuthAccessToken.objects.get(application__client_id=app["client_id"])
    assert row.user == world.alice and row.scope_set == {"org:admin", "repo:admin", "user:admin"}
    assert row.expires is not None
    bearer = Client()
    assert bearer.get("/api/v1/user/", HTTP_AUTHORIZATION=f"Bearer {token}").json()["username"] == "alice"
    created = bearer.put(
        "/api/v1/organization/acme/team/viatoken",
        '{"role": "member"}',
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert created.status_code == 200


def test_it_reads_the_csrf_token_from_the_form_field(world, api):
    app = create_app(api, world)
    client, csrf = signed_in("bob")
    response = authorize(client, csrf, client_id=app["client_id"], scope="repo:read")
    assert response.status_code == 302
    token, _ = fragment_token(response["Location"])
    problem(Client().get("/api/v1/user/", HTTP_AUTHORIZATION=f"Bearer {token}"), 403, "insufficient_scope")


def test_it_refuses_the_grant_without_csrf_or_session(world, api):
    app = create_app(api, world)
    client, _ = signed_in("alice")
    problem(authorize(client, None, client_id=app["client_id"], scope="repo:read"), 403, "insufficient_scope")
    problem(authorize(Client(), None, client_id=app["client_id"], scope="repo:read"), 401, "invalid_token")
    bearer = api(world.alice).headers
    problem(authorize(Client(), None, client_id=app["client_id"], scope="repo:read", **bearer), 401, "invalid_token")
    assert not granted().exists()


@pytest.mark.parametrize(
    "redirect_uri,allowed",
    [
        ("https://ci.example.com/cb", True),
        ("https://ci.example.com/cb/more?x=1", True),
        ("https://ci.example.com.evil.test/cb", False),
        ("http://ci.example.com/cb", False),
        ("https://evil.test/cb", False),
        ("http://evil.test/oauth/localapp", False),
    ],
)
def test_it_only_redirects_to_registered_uris(world, api, redirect_uri, allowed):
    app = create_app(api, world, redirect_uri="https://ci.example.com/cb")
    client, csrf = signed_in("alice")
    response = authorize(client, csrf, client_id=app["client_id"], scope="repo:read", redirect_uri=redirect_uri)
    if allowed:
        assert response.status_code == 302 and response["Location"].startswith(redirect_uri)
    else:
        problem(response, 400, "invalid_request")
        assert not granted().exists()


def test_it_redirects_grant_errors_to_a_valid_redirect_uri(world, api):
    app = create_app(api, world)
    client, csrf = signed_in("alice")
    bad_scope = authorize(client, csrf, client_id=app["client_id"], scope="repo:everything")
    assert bad_scope.status_code == 302 and bad_scope["Location"].endswith("?error=invalid_scope")
    bad_type = authorize(client, csrf, client_id=app["client_id"], scope="repo:read", response_type="code")
    assert bad_type.status_code == 302 and bad_type["Location"].endswith("?error=unsupported_response_type")
    problem(authorize(client, csrf, client_id="NOSUCHCLIENT", scope="repo:read"), 400, "invalid_request")
    assert not granted().exists()


def test_it_never_grants_super_user_to_a_regular_user(world, api):
    app = create_app(api, world)
    client, csrf = signed_in("alice")
    response = authorize(client, csrf, client_id=app["client_id"], scope="super:user repo:read")
    token, parts = fragment_token(response["Location"])
    assert parts["query"]["scope"] == ["repo:read"]
    assert granted().get().scope_set == {"repo:read"}
    root_client, root_csrf = signed_in("root")
    response = authorize(root_client, root_csrf, client_id=app["client_id"], scope="super:user")
    assert fragment_token(response["Location"])[1]["query"]["scope"] == ["super:user"]


def test_it_signs_out(world):
    client, csrf = signed_in("alice")
    assert client.get("/api/v1/user/").status_code == 200
    response = client.post("/api/v1/signout", HTTP_X_CSRF_TOKEN=csrf)
    assert response.status_code == 200 and response.json() == {"success": True}
    problem(client.get("/api/v1/user/"), 401, "invalid_token")
