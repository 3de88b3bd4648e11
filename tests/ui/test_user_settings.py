"""Account settings: password change, app-specific tokens (shown once, with the docker and
podman login commands) and the time machine of the user's namespace."""

from django.test import Client

from accounts.models import AppToken
from registry.models import UsageLog
from tests.conftest import PASSWORD, basic
from tests.ui.conftest import text


def test_settings_need_sign_in(anonymous):
    response = anonymous.get("/user/settings")
    assert response.status_code == 302 and response["Location"] == "/signin?next=/user/settings"


def test_it_creates_an_app_token_shown_once_with_login_commands(as_alice, alice):
    response = as_alice.post("/user/tokens", {"title": "laptop"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    row = AppToken.objects.get(user=alice, title="laptop")
    body = response.content.decode()
    token = body.split('id="new-token">')[1].split("<")[0]
    assert len(token) == 60 and token.startswith(row.token_prefix)
    assert f"docker login -u=&#x27;alice&#x27; -p=&#x27;{token}&#x27; testserver" in body
    assert f"podman login -u=&#x27;alice&#x27; -p=&#x27;{token}&#x27; testserver" in body
    auth = Client().get("/v2/auth?service=testserver", HTTP_AUTHORIZATION=basic("alice", token))
    assert auth.status_code == 200
    # Never again: the settings page lists the title only.
    later = as_alice.get("/user/settings").content.decode()
    assert "laptop" in later and token not in later


def test_it_revokes_an_app_token(as_alice, alice, as_bob):
    as_alice.post("/user/tokens", {"title": "old"})
    row = AppToken.objects.get(user=alice)
    assert as_bob.post(f"/user/tokens/{row.uuid}/revoke").status_code == 404
    assert as_alice.post(f"/user/tokens/{row.uuid}/revoke").status_code == 302
    assert not AppToken.objects.filter(pk=row.pk).exists()
    assert UsageLog.objects.filter(kind="revoke_app_specific_token", actor=alice).exists()


def test_a_token_needs_a_title(as_alice):
    response = as_alice.post("/user/tokens", {"title": ""})
    assert response.status_code == 400 and "This field is required." in text(response)


def test_it_changes_the_password(alice, as_alice):
    response = as_alice.post(
        "/user/settings/password",
        {"old_password": PASSWORD, "new_password1": "brand-new-pass-9", "new_password2": "brand-new-pass-9"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("brand-new-pass-9")
    # This session stays signed in.
    assert as_alice.get("/user/settings").status_code == 200
    assert UsageLog.objects.filter(kind="user_change_password", actor=alice).exists()


def test_password_errors_are_explained(alice, as_alice):
    response = as_alice.post(
        "/user/settings/password",
        {"old_password": "wrong", "new_password1": "x-long-pass-1", "new_password2": "x-long-pass-1"},
    )
    assert response.status_code == 400 and "Your old password was entered incorrectly" in text(response)
    response = as_alice.post(
        "/user/settings/password",
        {"old_password": PASSWORD, "new_password1": "x-long-pass-1", "new_password2": "other-pass-22"},
    )
    assert response.status_code == 400 and "The two password fields didn’t match." in text(response)
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_it_sets_the_time_machine_of_the_users_namespace(alice, as_alice):
    page = as_alice.get("/user/settings").content.decode()
    assert '<option value="1209600" selected>2 weeks</option>' in page
    assert as_alice.post("/user/settings/time-machine", {"seconds": "604800"}).status_code == 302
    alice.namespace.refresh_from_db()
    assert alice.namespace.time_machine_seconds == 604800
    response = as_alice.post("/user/settings/time-machine", {"seconds": "5"})
    assert response.status_code == 400 and "Select a valid choice" in text(response)
