"""Safety of every page: CSRF on every form, a Content-Security-Policy that forbids inline code
(and pages that need none), escaped user text, framing refused, static assets served locally."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from accounts import services as account_services
from tests.ui.conftest import make_repository

PAGES = [
    "/",
    "/?q=x",
    "/new/repository",
    "/new/organization",
    "/repository/alice/hello",
    "/repository/alice/hello?tab=settings",
    "/repository/alice/hello?tab=logs",
    "/repository/alice/hello?tab=tags",
    "/repository/alice/hello?tab=tags&tag=v1&action=add",
    "/repository/alice/hello?tab=tags&tag=v1&action=expiration",
    "/repository/alice/hello?tab=tags&tag=v1&action=fetch",
    "/repository/alice/hello?tab=history",
    "/user/settings",
    "/user/robots",
    "/user/robots/deploy",
    "/user/robots/deploy/token",
    "/organizations",
    "/organization/acme",
    "/organization/acme/members",
    "/organization/acme/settings",
    "/organization/acme/robots",
    "/organization/acme/teams/owners",
]


@pytest.fixture
def world(alice, org, public_repo, alice_robot):
    return alice


def test_every_page_carries_a_strict_content_security_policy(as_alice, world):
    for url in PAGES:
        response = as_alice.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert response["X-Frame-Options"] == "DENY"


def test_pages_hold_no_inline_script_or_style(as_alice, anonymous, world):
    responses = [as_alice.get(url) for url in PAGES] + [anonymous.get(url) for url in ("/signin", "/signup", "/")]
    for response in responses:
        body = response.content.decode()
        for tag in re.findall(r"<script\b[^>]*>", body):
            assert "src=" in tag, (response.request["PATH_INFO"], tag)
        assert not re.search(r"<style\b", body)
        assert not re.search(r"\sstyle=", body), response.request["PATH_INFO"]
        assert not re.search(r"\son[a-z]+=", body), response.request["PATH_INFO"]


def test_the_api_docs_page_allows_inline_styles_only(as_alice, world):
    # Swagger UI styles itself inline: its page adds 'unsafe-inline' to style-src, nothing more.
    response = as_alice.get("/api/v1/docs/")
    assert response.status_code == 200
    directives = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert directives["style-src"] == "'self' 'unsafe-inline'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


POSTS = [
    ("/signin", {"username": "alice", "password": "password-123"}),
    ("/signout", {}),
    (
        "/signup",
        {"username": "eve", "email": "e@example.com", "password": "a-long-pass-1", "password_again": "a-long-pass-1"},
    ),
    ("/new/repository", {"kind": "image", "namespace": "alice", "name": "x", "visibility": "public"}),
    ("/new/organization", {"name": "evilcorp"}),
    ("/repository/alice/hello/-/star", {"action": "star"}),
    ("/repository/alice/hello/-/description", {"description": "pwned"}),
    ("/repository/alice/hello/-/visibility", {"visibility": "private"}),
    ("/repository/alice/hello/-/permissions", {"kind": "user", "name": "bob", "role": "admin"}),
    ("/repository/alice/hello/-/permissions/delete", {"kind": "user", "name": "bob"}),
    ("/repository/alice/hello/-/delete", {"confirm": "alice/hello"}),
    (
        "/user/settings/password",
        {"old_password": "password-123", "new_password1": "z-long-pass-1", "new_password2": "z-long-pass-1"},
    ),
    ("/user/settings/time-machine", {"seconds": "0"}),
    ("/user/tokens", {"title": "stolen"}),
    ("/user/robots", {"short_name": "evil"}),
    ("/user/robots/deploy/regenerate", {}),
    ("/user/robots/deploy/delete", {}),
    ("/organization/acme/teams", {"name": "evil", "role": "admin"}),
    ("/organization/acme/teams/owners/members", {"username": "bob"}),
    ("/organization/acme/settings", {"email": "evil@example.com"}),
    ("/organization/acme/robots", {"short_name": "evil"}),
]


@pytest.mark.parametrize(("url", "data"), POSTS, ids=[url for url, _ in POSTS])
def test_every_form_needs_the_csrf_token(world, bob, url, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world)
    before = _state()
    response = client.post(url, data)
    assert response.status_code == 403, (url, response.status_code)
    assert _state() == before


def _state():
    from accounts.models import AppToken, Namespace, Robot, Team, User
    from registry.models import Repository, RepositoryPermission, Star

    return (
        list(Repository.objects.values_list("name", "visibility", "description")),
        list(Namespace.objects.values_list("name", "email", "time_machine_seconds")),
        list(Robot.objects.values_list("short_name", "token_encrypted")),
        list(User.objects.values_list("username", "password")),
        Team.objects.count(),
        RepositoryPermission.objects.count(),
        Star.objects.count(),
        AppToken.objects.count(),
    )


def test_user_text_is_escaped_everywhere_it_appears(as_alice, alice, org):
    evil = "<img src=x onerror=alert(1)>"
    account_services.team_put(organization=org, name="red", description=evil, actor=alice)
    account_services.robot_create(namespace=org, short_name="bot", description=evil)
    account_services.app_token_create(user=alice, title=evil)
    make_repository(alice.namespace, "evil", alice, description=evil)
    for url in ("/organization/acme/teams/red", "/organization/acme/robots", "/user/settings"):
        body = as_alice.get(url).content.decode()
        assert evil not in body, url
        assert "&lt;img src=x onerror=alert(1)&gt;" in body, url
    # Descriptions are Markdown: sanitized, never shown raw.
    for url in ("/", "/repository/alice/evil"):
        body = as_alice.get(url).content.decode()
        assert evil not in body and "onerror" not in body, url


def test_static_assets_are_local_files():
    for path in ("ui/ui.css", "ui/ui.js", "django_htmx/htmx-2.min.js"):
        assert finders.find(path), path


def test_error_pages_use_the_ui(as_alice, db):
    response = as_alice.get("/no/such/page")
    assert response.status_code == 404
    assert "Not found" in response.content.decode() and "Content-Security-Policy" in response
