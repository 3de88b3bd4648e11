"""Fixtures for the account endpoints of /api/v1: a cast of callers around organization ``acme``
and a small client that speaks JSON with a bearer token."""

import json
from dataclasses import dataclass

import pytest
from django.test import Client

from accounts import scopes
from accounts import services as account_services
from accounts.models import Namespace, Team, User

PASSWORD = "password-123"


class Api:
    """A test client that sends JSON and, for a user, a bearer token with the given scopes."""

    def __init__(self, user: User | None = None, token_scopes=scopes.ALL):
        self.client = Client()
        self.user = user
        self.headers = {}
        if user is not None:
            _, token = account_services.oauth_token_create(user=user, scopes=token_scopes)
            self.headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    def request(self, method: str, path: str, data=None, **extra):
        kwargs = {**self.headers, **extra}
        if data is not None:
            kwargs["data"] = json.dumps(data)
            kwargs["content_type"] = "application/json"
        return getattr(self.client, method.lower())(path, **kwargs)

    def get(self, path, **extra):
        return self.request("GET", path, **extra)

    def put(self, path, data=None, **extra):
        return self.request("PUT", path, data, **extra)

    def post(self, path, data=None, **extra):
        return self.request("POST", path, data, **extra)

    def delete(self, path, **extra):
        return self.request("DELETE", path, **extra)


@pytest.fixture
def api():
    """``api(user, token_scopes=...)``: a client for that user (anonymous without one)."""
    return Api


def problem(response, status: int, error_type: str) -> dict:
    """Assert Quay's error body and return it."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == status
    assert body["error_type"] == body["title"] == error_type
    assert body["error_message"] == body["detail"]
    assert body["type"].endswith(f"/api/v1/error/{error_type}")
    return body


@dataclass
class World:
    """alice administers acme (team owners); bob is in acme's ``readers`` (member role);
    dave is in acme's ``builders`` (creator role); charlie owns another organization, globex;
    erin belongs to nothing; root is a superuser. acme has the robot ``acme+bot`` and alice has
    ``alice+deploy``."""

    alice: User
    bob: User
    charlie: User
    dave: User
    erin: User
    root: User
    acme: Namespace
    globex: Namespace
    readers: Team
    builders: Team
    acme_bot: User
    acme_bot_token: str
    alice_bot: User


@pytest.fixture
def world(db) -> World:
    make = account_services.user_create
    alice = make(username="alice", password=PASSWORD, email="alice@example.com")
    bob = make(username="bob", password=PASSWORD)
    charlie = make(username="charlie", password=PASSWORD)
    dave = make(username="dave", password=PASSWORD)
    erin = make(username="erin", password=PASSWORD)
    root = make(username="root", password=PASSWORD, is_superuser=True)
    acme = account_services.organization_create(name="acme", creator=alice, email="ops@acme.test")
    globex = account_services.organization_create(name="globex", creator=charlie)
    readers = account_services.team_create(organization=acme, name="readers", role=Team.Role.MEMBER)
    account_services.team_member_add(team=readers, user=bob)
    builders = account_services.team_create(organization=acme, name="builders", role=Team.Role.CREATOR)
    account_services.team_member_add(team=builders, user=dave)
    acme_bot, acme_bot_token = account_services.robot_create(namespace=acme, short_name="bot", description="CI")
    alice_bot, _ = account_services.robot_create(namespace=alice.namespace, short_name="deploy")
    return World(
        alice=alice,
        bob=bob,
        charlie=charlie,
        dave=dave,
        erin=erin,
        root=root,
        acme=acme,
        globex=globex,
        readers=readers,
        builders=builders,
        acme_bot=acme_bot,
        acme_bot_token=acme_bot_token,
        alice_bot=alice_bot,
    )
