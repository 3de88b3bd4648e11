"""Fixtures for the web UI's pages: signed-in clients for the named users and repositories made
through the services (set-up, not under test)."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from accounts import services as account_services
from accounts.models import Team
from registry import services
from registry.models import Repository
from tests.registry.conftest import make_image, store_image, user_principal


@pytest.fixture(autouse=True)
def _private_signin_rate_limit(monkeypatch):
    """Sign-in attempts are counted per address in the cache, which outlives a test and, with
    REDIS_URL, is shared by every test process: give each test a counter store of its own (for
    the UI and the API alike, as both use this throttle)."""
    store = LocMemCache("ui-tests-signin", {})
    store.clear()  # same-named stores share their data within the process
    monkeypatch.setattr(ScopedRateThrottle, "cache", store)


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def as_alice(alice):
    return signed_in(alice)


@pytest.fixture
def as_bob(bob):
    return signed_in(bob)


@pytest.fixture
def as_charlie(charlie):
    return signed_in(charlie)


@pytest.fixture
def anonymous(db):
    return Client()


def make_repository(owner_namespace, name: str, principal_user, **kwargs) -> Repository:
    return services.repository_create(
        namespace=owner_namespace, name=name, principal=user_principal(principal_user), **kwargs
    )


@pytest.fixture
def private_repo(alice):
    """``alice/secret``: private, empty."""
    return make_repository(alice.namespace, "secret", alice)


@pytest.fixture
def public_repo(alice):
    """``alice/hello``: public, with the tag ``v1``."""
    repository = make_repository(alice.namespace, "hello", alice, visibility=Repository.Visibility.PUBLIC)
    store_image(repository, "v1", make_image("hello"), user_principal(alice))
    return repository


@pytest.fixture
def org_repo(org, alice):
    """``acme/tools``: private repository of organization acme (alice is its admin)."""
    return make_repository(org, "tools", alice)


@pytest.fixture
def member_team(org, bob):
    """Team ``devs`` of acme (role member) with bob in it."""
    team = account_services.team_create(organization=org, name="devs", role=Team.Role.MEMBER)
    account_services.team_member_add(team=team, user=bob)
    return team


def text(response) -> str:
    """The page's visible text, tags stripped and whitespace collapsed, for assertions."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


# --- a repository with 10,000 tags ----------------------------------------------------------------

BIG_TAGS, BIG_ROWS_PER_TAG = 10_000, 3


@pytest.fixture(scope="module")
def big(django_db_setup, django_db_blocker):
    """``scaler/big``: 10,000 tags with three lifetimes each, built once per module (bulk inserts
    outside the tests' transactions, as the REST scale tests do) and removed at the end."""
    from accounts.models import User
    from bench.tags_scale import build_tag_history
    from registry.models import Tag
    from registry.permissions import Principal
    from tests.conftest import PASSWORD

    with django_db_blocker.unblock():
        user = account_services.user_create(username="scaler", password=PASSWORD)
        repository = services.repository_create(
            namespace=user.namespace, name="big", principal=Principal(kind="user", user=user)
        )
        build_tag_history(repository=repository, tags=BIG_TAGS, rows_per_tag=BIG_ROWS_PER_TAG)
    yield user.pk
    with django_db_blocker.unblock():
        Tag.objects.filter(repository_id=repository.pk).delete()
        Repository.objects.filter(pk=repository.pk).delete()
        User.objects.filter(pk=user.pk).delete()


@pytest.fixture
def as_scaler(db, big):
    """A signed-in client of the owner of ``scaler/big``."""
    from accounts.models import User

    return signed_in(User.objects.get(pk=big))
