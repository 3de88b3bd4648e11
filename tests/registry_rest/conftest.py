"""The cast of the REST API tests and a client that calls /api/v1 with a bearer token.

Organization ``acme`` (alice administers it through ``owners``) has a private repository
``acme/app``; bob is in team ``devs`` (role member, read on acme/app), dave in ``builders``
(role creator), eve administers another organization ``globex``, charlie is a plain user, root a
superuser. Robots ``acme+bot`` and ``globex+bot`` exist as objects to grant permissions to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.test import Client

from accounts import scopes
from accounts import services as account_services
from accounts.models import Namespace, Team, User
from registry import services
from registry.models import Repository, Role
from registry.permissions import Principal
from tests.conftest import PASSWORD


def problem(response, status: int, error_type: str | None = None) -> dict:
    """Check a Quay error answer: status and the error body's fields."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert body["status"] == status
    assert body["error_message"] == body["detail"]
    assert body["title"] == body["error_type"]
    if error_type is not None:
        assert body["error_type"] == error_type, body
    return body


class Api:
    """Calls /api/v1 as one caller: a bearer token with the given scopes, or anonymous."""

    def __init__(self, user: User | None = None, token_scopes=scopes.ALL):
        self.user = user
        self.client = Client()
        self.headers = {}
        if user is not None:
            _, token = account_services.oauth_token_create(user=user, scopes=token_scopes)
            self.token = token
            self.headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"

    def _call(self, method: str, path: str, body=None, **params):
        url = path if path.startswith("/") else f"/api/v1/{path}"
        if method == "get":
            return self.client.get(url, params, **self.headers)
        data = json.dumps(body) if body is not None else ""
        if params:
            url = f"{url}?{urlencode(params)}"
        return getattr(self.client, method)(url, data=data, content_type="application/json", **self.headers)

    def get(self, path: str, **params):
        return self._call("get", path, **params)

    def post(self, path: str, body=None, **params):
        return self._call("post", path, body, **params)

    def put(self, path: str, body=None, **params):
        return self._call("put", path, body, **params)

    def delete(self, path: str, **params):
        return self._call("delete", path, **params)


@dataclass
class World:
    alice: User
    bob: User
    charlie: User
    dave: User
    eve: User
    root: User
    acme: Namespace
    globex: Namespace
    devs: Team
    builders: Team
    app: Repository
    bot: User
    bot_token: str
    globex_bot: User

    def api(self, who: str | None, token_scopes=scopes.ALL) -> Api:
        """A client for one caller by role name: anonymous, user, member, creator, admin,
        superuser or other_org."""
        users = {
            None: None,
            "anonymous": None,
            "user": self.charlie,
            "member": self.bob,
            "creator": self.dave,
            "admin": self.alice,
            "superuser": self.root,
            "other_org": self.eve,
        }
        return Api(users[who], token_scopes=token_scopes)


def as_principal(user: User) -> Principal:
    return Principal(kind="robot" if user.is_robot else "user", user=user)


@pytest.fixture
def world(alice, bob, charlie, org) -> World:
    dave = account_services.user_create(username="dave", password=PASSWORD)
    eve = account_services.user_create(username="eve", password=PASSWORD)
    root = account_services.user_create(username="root", password=PASSWORD, is_superuser=True)
    globex = account_services.organization_create(name="globex", creator=eve)
    devs = account_services.team_create(organization=org, name="devs", role=Team.Role.MEMBER)
    account_services.team_member_add(team=devs, user=bob)
    builders = account_services.team_create(organization=org, name="builders", role=Team.Role.CREATOR)
    account_services.team_member_add(team=builders, user=dave)
    app = services.repository_create(namespace=org, name="app", principal=as_principal(alice), description="The app")
    services.repository_permission_set_team(
        repository=app, team_name="devs", role=Role.READ, principal=as_principal(alice), ip=None
    )
    bot, bot_token = account_services.robot_create(namespace=org, short_name="bot")
    globex_bot, _ = account_services.robot_create(namespace=globex, short_name="bot")
    return World(
        alice=alice,
        bob=bob,
        charlie=charlie,
        dave=dave,
        eve=eve,
        root=root,
        acme=org,
        globex=globex,
        devs=devs,
        builders=builders,
        app=app,
        bot=bot,
        bot_token=bot_token,
        globex_bot=globex_bot,
    )
