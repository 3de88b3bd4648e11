"""Sign in, sign out and sign up: the form keeps what was typed, errors say what is wrong, the
sign-in limit is the one POST /api/v1/signin uses, and sign-up follows both switches."""

import pytest
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from accounts.models import Namespace, User
from tests.conftest import PASSWORD
from tests.ui.conftest import text
from ui import services as ui_services


def test_it_signs_in_and_goes_to_next(alice):
    client = Client()
    page = client.get("/signin?next=/user/settings")
    assert page.status_code == 200
    assert 'name="next" value="/user/settings"' in page.content.decode()
    response = client.post("/signin", {"username": "alice", "password": PASSWORD, "next": "/user/settings"})
    assert response.status_code == 302 and response["Location"] == "/user/settings"
    assert "alice" in text(client.get("/"))


def test_it_refuses_a_wrong_password_and_keeps_the_username(alice):
    response = Client().post("/signin", {"username": "alice", "password": "nope"})
    assert response.status_code == 400
    assert "Invalid username or password." in text(response)
    assert 'value="alice"' in response.content.decode()


def test_it_never_redirects_off_site_after_signing_in(alice):
    response = Client().post("/signin", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"


def test_robots_cannot_sign_in_with_their_token(alice_robot):
    robot, token = alice_robot
    response = Client().post("/signin", {"username": robot.username, "password": token})
    assert response.status_code == 400


def test_it_shares_the_rest_api_signin_limit(alice, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"signin": "3/minute"})
    client = Client()
    for _ in range(2):
        assert client.post("/signin", {"username": "alice", "password": "wrong"}).status_code == 400
    # The API's sign-in counts against the same limit (same scope, same address).
    assert client.post(
        "/api/v1/signin", {"username": "alice", "password": "wrong"}, content_type="application/json"
    ).status_code in (400, 403)
    limited = client.post("/signin", {"username": "alice", "password": PASSWORD})
    assert limited.status_code == 429
    assert "Too many sign-in attempts" in text(limited)
    assert 'value="alice"' in limited.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_signs_out_on_post_only(as_alice):
    assert as_alice.get("/signout").status_code == 405
    response = as_alice.post("/signout")
    assert response.status_code == 302
    assert "_auth_user_id" not in as_alice.session


def test_it_signs_up_and_signs_in(db):
    client = Client()
    assert client.get("/signup").status_code == 200
    response = client.post(
        "/signup",
        {
            "username": "dora",
            "email": "dora@example.com",
            "password": "a-long-pass-1",
            "password_again": "a-long-pass-1",
        },
    )
    assert response.status_code == 302, text(response)
    user = User.objects.get(username="dora")
    assert user.check_password("a-long-pass-1") and user.email == "dora@example.com"
    assert Namespace.objects.get(name="dora").user == user
    assert int(client.session["_auth_user_id"]) == user.pk


@pytest.mark.parametrize(
    ("username", "password", "again", "message"),
    [
        ("alice", "a-long-pass-1", "a-long-pass-1", "already taken"),
        ("Bad Name!", "a-long-pass-1", "a-long-pass-1", "is not a valid name"),
        ("dora", "a-long-pass-1", "different-pass-2", "The two passwords differ."),
        ("dora", "short", "short", "too short"),
    ],
)
def test_it_explains_sign_up_errors_and_keeps_the_input(alice, username, password, again, message):
    response = Client().post(
        "/signup", {"username": username, "email": "x@example.com", "password": password, "password_again": again}
    )
    assert response.status_code == 400
    assert message in text(response)
    assert 'value="x@example.com"' in response.content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_a_superuser_can_close_sign_up(db, alice):
    ui_services.site_configuration_update(actor=alice, user_creation_enabled=False)
    client = Client()
    assert "Create account" not in text(client.get("/"))
    assert client.get("/signup").status_code == 403
    response = client.post(
        "/signup",
        {"username": "dora", "email": "d@example.com", "password": "a-long-pass-1", "password_again": "a-long-pass-1"},
    )
    assert response.status_code == 403
    assert "Sign-up is closed" in text(response)
    assert not User.objects.filter(username="dora").exists()


def test_the_environment_closes_sign_up_whatever_the_switch_says(db, settings):
    settings.FEATURE_USER_CREATION = False
    assert Client().get("/signup").status_code == 403
    assert "Create account" not in text(Client().get("/signin"))
