"""First-user initialization, CSRF-protected sign-in, the current user, tokens and scopes."""

import uuid

import pytest
from django.test import Client

from accounts import scopes
from accounts import services as account_services
from accounts.models import OAuthAccessToken, User

PASSWORD = "password-123"


def _problem(response, status, error_type):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == status
    assert body["error_type"] == body["title"] == error_type
    assert body["error_message"] == body["detail"]
    assert body["type"].endswith(f"/api/v1/error/{error_type}")
    return body


@pytest.mark.django_db
def test_it_initializes_the_first_user_with_a_token():
    response = Client().post(
        "/api/v1/user/initialize",
        {"username": "first", "password": "a-long-password", "email": "f@example.com", "access_token": True},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["username"] == "first"
    user = User.objects.get(username="first")
    assert user.is_superuser and user.namespace.name == "first"
    token = body["access_token"]
    me = Client().get("/api/v1/user/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == 200 and me.json()["super_user"] is True
    assert token not in str(OAuthAccessToken.objects.values_list("token_hash", "token_prefix"))


def test_it_refuses_initialization_once_a_user_exists(alice):
    response = Client().post(
        "/api/v1/user/initialize",
        {"username": "intruder", "password": "a-long-password"},
        content_type="application/json",
    )
    _problem(response, 400, "invalid_request")
    assert not User.objects.filter(username="intruder").exists()


@pytest.mark.django_db
def test_it_validates_initialization_input():
    response = Client().post(
        "/api/v1/user/initialize", {"username": "Bad Name!", "password": "short"}, content_type="application/json"
    )
    body = _problem(response, 400, "invalid_request")
    assert "password" in body["detail"]
    assert not User.objects.exists()


def test_it_signs_in_with_csrf_and_serves_the_user(alice):
    client = Client(enforce_csrf_checks=True)
    csrf = client.get("/csrf_token").json()["csrf_token"]
    refused = client.post(
        "/api/v1/signin", {"username": "alice", "password": PASSWORD}, content_type="application/json"
    )
    _problem(refused, 403, "insufficient_scope")
    response = client.post(
        "/api/v1/signin",
        {"username": "alice", "password": PASSWORD},
        content_type="application/json",
        HTTP_X_CSRF_TOKEN=csrf,
    )
    assert response.status_code == 200 and response.json() == {"success": True}
    me = client.get("/api/v1/user/").json()
    assert me["username"] == "alice" and me["anonymous"] is False and me["super_user"] is False


def test_it_refuses_a_bad_password_without_a_session(alice):
    client = Client()
    response = client.post("/api/v1/signin", {"username": "alice", "password": "nope"}, content_type="application/json")
    assert response.status_code == 403 and response.json()["success"] is False
    _problem(client.get("/api/v1/user/"), 401, "invalid_token")


def test_it_lists_organizations_of_the_user(alice, org):
    _, token = account_services.oauth_token_create(user=alice, scopes={scopes.USER_READ})
    me = Client().get("/api/v1/user/", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert [o["name"] for o in me["organizations"]] == ["acme"]
    assert me["organizations"][0]["is_org_admin"] is True


def test_it_enforces_token_scopes(alice):
    _, token = account_services.oauth_token_create(user=alice, scopes={scopes.REPO_READ})
    _problem(Client().get("/api/v1/user/", HTTP_AUTHORIZATION=f"Bearer {token}"), 403, "insufficient_scope")
    _, admin_token = account_services.oauth_token_create(user=alice, scopes={scopes.USER_ADMIN})
    assert Client().get("/api/v1/user/", HTTP_AUTHORIZATION=f"Bearer {admin_token}").status_code == 200


def test_it_rejects_unknown_tokens(alice):
    _problem(Client().get("/api/v1/user/", HTTP_AUTHORIZATION="Bearer not-a-real-token-at-all"), 401, "invalid_token")


def test_it_rate_limits_signin(alice):
    # The limit is kept per client address; a made-up one keeps other tests' sign-ins out of it.
    client = Client(REMOTE_ADDR=f"192.0.2.{uuid.uuid4().int % 250 + 1}")
    body = {"username": "alice", "password": "x"}
    statuses = [client.post("/api/v1/signin", body, content_type="application/json").status_code for _ in range(12)]
    assert statuses[:10] == [403] * 10
    assert statuses[-1] == 429


def test_a_made_up_forwarded_for_header_does_not_escape_the_signin_limit(alice):
    client = Client(REMOTE_ADDR=f"192.0.2.{uuid.uuid4().int % 250 + 1}")
    body = {"username": "alice", "password": "x"}
    statuses = [
        client.post(
            "/api/v1/signin", body, content_type="application/json", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}"
        ).status_code
        for n in range(12)
    ]
    assert statuses[-1] == 429


def test_it_signs_in_over_https_with_the_header_token_and_no_referer(alice):
    # Quay's Ansible collection sends X-CSRF-Token but neither Referer nor Origin.
    client = Client(enforce_csrf_checks=True)
    csrf = client.get("/csrf_token", secure=True).json()["csrf_token"]
    credentials = {"username": "alice", "password": PASSWORD}
    response = client.post(
        "/api/v1/signin", credentials, content_type="application/json", secure=True, HTTP_X_CSRF_TOKEN=csrf
    )
    assert response.status_code == 200, response.content
    wrong = client.post(
        "/api/v1/signin", credentials, content_type="application/json", secure=True, HTTP_X_CSRF_TOKEN="x" * 64
    )
    _problem(wrong, 403, "insufficient_scope")
