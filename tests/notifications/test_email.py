"""E-mail notifications through a real SMTP server (aiosmtpd): an address is confirmed per
repository by the link mailed to it, then gets each event as a text and an HTML body."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from notifications import services
from notifications.models import AuthorizedEmail, Delivery
from tests.notifications.conftest import as_principal, deliver_due, problem
from tests.notifications.receivers import bodies

LINK_RE = re.compile(r"https?://\S+/authrepoemail\?code=([A-Za-z0-9]+)")


def _confirmation_code(message) -> str:
    text, html = bodies(message)
    found = LINK_RE.search(text)
    assert found, text
    assert found.group(0) in html
    return found.group(1)


def test_an_address_is_confirmed_by_the_mailed_link_then_receives_events(
    world, smtp, eager_celery, public_host, django_capture_on_commit_callbacks
):
    api = world.api("admin")
    notification = {"event": "repo_push", "method": "email", "config": {"email": "ops@example.com"}, "title": "Mail"}
    assert "not authorized" in problem(api.post("repository/acme/app/notification/", notification), 400)["detail"]
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("repository/acme/app/authorizedemail/ops@example.com", {}).status_code == 200
    (message,) = smtp.wait_for(1)
    assert message["To"] == "ops@example.com" and message["From"] == "registry@registry.example"
    assert message["Subject"] == "Confirm notifications for acme/app"
    text, _ = bodies(message)
    assert "https://registry.example:5000/authrepoemail?code=" in text
    code = _confirmation_code(message)

    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/authrepoemail", {"code": code})
    assert page.status_code == 200 and b"ops@example.com" in page.content and b"acme/app" in page.content
    # Opening the link confirms nothing: mail scanners open links too.
    assert api.get("repository/acme/app/authorizedemail/ops@example.com").json()["confirmed"] is False
    token = page.cookies["csrftoken"].value
    done = browser.post("/authrepoemail", {"code": code, "csrfmiddlewaretoken": token})
    assert done.status_code == 200 and b"will receive the notifications" in done.content
    assert api.get("repository/acme/app/authorizedemail/ops@example.com").json()["confirmed"] is True
    # A used code is spent.
    assert browser.get("/authrepoemail", {"code": code}).status_code == 404

    created = api.post("repository/acme/app/notification/", notification)
    assert created.status_code == 201, created.content
    record = services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": ["v1", "v2"]})
    assert deliver_due() == ["delivered"]
    _, event_mail = smtp.wait_for(2)
    assert event_mail["Subject"] == "New push to acme/app: v1, v2"
    assert event_mail["To"] == "ops@example.com"
    text, html = bodies(event_mail)
    assert "Tags: v1, v2" in text and "https://registry.example:5000/repository/acme/app" in text
    assert '<a href="https://registry.example:5000/repository/acme/app">New push to acme/app: v1, v2</a>' in html
    assert '<th align="left">Tags</th><td>v1, v2</td>' in html
    delivery = Delivery.objects.get(event=record)
    assert event_mail["Message-ID"] == f"<{delivery.uuid}@registry.example>"


def test_html_bodies_escape_what_comes_from_users(world, smtp, settings):
    AuthorizedEmail.objects.create(repository=world.app, email="ops@example.com", confirmed=True)
    services.notification_create(
        repository=world.app,
        event="build_failure",
        method="email",
        config={"email": "ops@example.com"},
        event_config={},
        title="",
        principal=as_principal(world.alice),
        ip=None,
    )
    services.event_emit(
        event="build_failure", repository=world.app, data={"build_id": "b1", "error_message": "<img src=x onerror=1>"}
    )
    assert deliver_due() == ["delivered"]
    text, html = bodies(smtp.wait_for(1)[0])
    assert "<img src=x onerror=1>" in text
    assert "<img" not in html and "&lt;img src=x onerror=1&gt;" in html


def test_asking_again_replaces_the_code_but_not_within_a_minute(
    world, smtp, eager_celery, django_capture_on_commit_callbacks
):
    api = world.api("admin")
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            assert api.post("repository/acme/app/authorizedemail/ops@example.com", {}).status_code == 200
    assert len(smtp.wait_for(1)) == 1  # asking again at once mails nothing: no mailbox flooding
    AuthorizedEmail.objects.update(requested_at=timezone.now() - timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        api.post("repository/acme/app/authorizedemail/ops@example.com", {})
    first, second = smtp.wait_for(2)
    old, new = _confirmation_code(first), _confirmation_code(second)
    assert old != new
    browser = Client()
    assert browser.post("/authrepoemail", {"code": old}).status_code == 404
    assert browser.post("/authrepoemail", {"code": new}).status_code == 200
    assert AuthorizedEmail.objects.get().confirmed


@pytest.mark.parametrize("code", ["", "nonsense", "x" * 500])
def test_an_unknown_code_confirms_nothing(world, code):
    AuthorizedEmail.objects.create(repository=world.app, email="ops@example.com", code_hash="0" * 64)
    assert Client().get("/authrepoemail", {"code": code}).status_code == 404
    assert Client().post("/authrepoemail", {"code": code}).status_code == 404
    assert not AuthorizedEmail.objects.get().confirmed


def test_a_mail_server_that_is_down_means_a_retry(world, settings, fast_retries):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    AuthorizedEmail.objects.create(repository=world.app, email="ops@example.com", confirmed=True)
    services.notification_create(
        repository=world.app,
        event="repo_push",
        method="email",
        config={"email": "ops@example.com"},
        event_config={},
        title="",
        principal=as_principal(world.alice),
        ip=None,
    )
    record = services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": ["v1"]})
    assert deliver_due() == ["pending"]
    assert "Sending mail failed" in Delivery.objects.get(event=record).last_error
