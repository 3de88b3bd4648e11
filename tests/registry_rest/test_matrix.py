"""Who may call what: every repository, permission, star and log endpoint against every kind
of caller, and the OAuth scope each endpoint needs.

Callers (see conftest): anonymous; user (charlie, no ties to acme); member (bob, whose team
reads acme/app); creator (dave, creator team, no role on acme/app); admin (alice, acme owner);
superuser (root, token with super:user); other_org (eve, admin of globex); robot (acme+bot,
with write on acme/app, presenting its token the only way it has: HTTP Basic).
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import scopes
from registry import services
from registry.models import Role
from tests.conftest import basic
from tests.registry_rest.conftest import as_principal, problem

CALLERS = ["anonymous", "user", "member", "creator", "admin", "superuser", "other_org", "robot"]

# (method, path, body, required scope, expected status per caller in CALLERS order)
ENDPOINTS = [
    ("get", "repository/acme/app", None, "repo:read", [401, 404, 200, 404, 200, 200, 404, 401]),
    ("put", "repository/acme/app", {"description": "d"}, "repo:write", [401, 404, 403, 404, 200, 200, 404, 401]),
    ("delete", "repository/acme/app", None, "repo:admin", [401, 404, 403, 404, 204, 204, 404, 401]),
    (
        "post",
        "repository/acme/app/changevisibility",
        {"visibility": "public"},
        "repo:admin",
        [401, 404, 403, 404, 200, 200, 404, 401],
    ),
    ("get", "repository", {"namespace": "acme"}, "repo:read", [200, 200, 200, 200, 200, 200, 200, 200]),
    (
        "post",
        "repository",
        {"repository": "new", "namespace": "acme", "visibility": "private"},
        "repo:create",
        [401, 403, 403, 201, 201, 403, 403, 401],
    ),
    ("get", "repository/acme/app/permissions/user/", None, "repo:admin", [401, 404, 403, 404, 200, 200, 404, 401]),
    (
        "get",
        "repository/acme/app/permissions/user/acme+bot",
        None,
        "repo:admin",
        [401, 404, 403, 404, 200, 200, 404, 401],
    ),
    (
        "put",
        "repository/acme/app/permissions/user/charlie",
        {"role": "read"},
        "repo:admin",
        [401, 404, 403, 404, 200, 200, 404, 401],
    ),
    (
        "delete",
        "repository/acme/app/permissions/user/acme+bot",
        None,
        "repo:admin",
        [401, 404, 403, 404, 204, 204, 404, 401],
    ),
    (
        "get",
        "repository/acme/app/permissions/user/bob/transitive",
        None,
        "repo:admin",
        [401, 404, 403, 404, 200, 200, 404, 401],
    ),
    ("get", "repository/acme/app/permissions/team/", None, "repo:admin", [401, 404, 403, 404, 200, 200, 404, 401]),
    ("get", "repository/acme/app/permissions/team/devs", None, "repo:admin", [401, 404, 403, 404, 200, 200, 404, 401]),
    (
        "put",
        "repository/acme/app/permissions/team/builders",
        {"role": "write"},
        "repo:admin",
        [401, 404, 403, 404, 200, 200, 404, 401],
    ),
    (
        "delete",
        "repository/acme/app/permissions/team/devs",
        None,
        "repo:admin",
        [401, 404, 403, 404, 204, 204, 404, 401],
    ),
    ("get", "repository/acme/app/logs", None, "repo:admin", [401, 404, 403, 404, 200, 200, 404, 401]),
    ("get", "repository/acme/app/aggregatelogs", None, "repo:admin", [401, 404, 403, 404, 200, 200, 404, 401]),
    ("get", "user/logs", None, "user:admin", [401, 200, 200, 200, 200, 200, 200, 401]),
    ("get", "user/aggregatelogs", None, "user:admin", [401, 200, 200, 200, 200, 200, 200, 401]),
    ("get", "organization/acme/logs", None, "org:admin", [401, 404, 403, 403, 200, 200, 404, 401]),
    ("get", "organization/acme/aggregatelogs", None, "org:admin", [401, 404, 403, 403, 200, 200, 404, 401]),
    ("get", "user/starred", None, "user:admin", [401, 200, 200, 200, 200, 200, 200, 401]),
    (
        "post",
        "user/starred",
        {"namespace": "acme", "repository": "app"},
        "repo:read",
        [401, 404, 201, 404, 201, 201, 404, 401],
    ),
    ("delete", "user/starred/acme/app", None, "user:admin", [401, 404, 204, 404, 204, 204, 404, 401]),
    ("get", "discovery", None, None, [200, 200, 200, 200, 200, 200, 200, 200]),
]


def _call(client: Client, method: str, path: str, body, headers: dict):
    url = f"/api/v1/{path}"
    if method == "get":
        return client.get(url, body or {}, **headers)
    data = "" if body is None else body
    return getattr(client, method)(url, data=data, content_type="application/json", **headers)


def _headers(world, who: str, token_scopes=scopes.ALL) -> dict:
    if who == "robot":
        return {"HTTP_AUTHORIZATION": basic("acme+bot", world.bot_token)}
    api = world.api(who, token_scopes=token_scopes)
    return api.headers


@pytest.fixture
def robot_writes(world):
    services.repository_permission_set_user(
        repository=world.app, username="acme+bot", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    return world


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("method, path, body, scope, expected", ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_permission_matrix(robot_writes, who, method, path, body, scope, expected):
    world = robot_writes
    want = expected[CALLERS.index(who)]
    response = _call(Client(), method, path, body, _headers(world, who))
    assert response.status_code == want, (who, method, path, response.content[:300])
    if want >= 400:
        problem(response, want, {401: "invalid_token", 403: "insufficient_scope", 404: "not_found"}[want])


SCOPED = [e for e in ENDPOINTS if e[3] is not None]


@pytest.mark.parametrize("method, path, body, scope, expected", SCOPED, ids=[f"{e[0]} {e[1]}" for e in SCOPED])
def test_each_endpoint_enforces_its_scope(robot_writes, method, path, body, scope, expected):
    """A token of the org admin without the scope (or one implying it) gets 403; with only
    that scope the call goes through."""
    world = robot_writes
    lacking = {s for s in scopes.ALL if scope not in scopes.expand({s})}
    refused = _call(Client(), method, path, body, _headers(world, "admin", lacking))
    body_ = problem(refused, 403, "insufficient_scope")
    assert scope in body_["detail"]
    allowed = _call(Client(), method, path, body, _headers(world, "admin", {scope}))
    assert allowed.status_code == expected[CALLERS.index("admin")], allowed.content[:300]


def test_a_superuser_token_without_super_user_has_only_its_own_roles(world):
    headers = _headers(world, "superuser", scopes.ALL - {scopes.SUPERUSER})
    response = _call(Client(), "get", "repository/acme/app", None, headers)
    problem(response, 404, "not_found")


def test_a_session_needs_the_csrf_header_for_writes(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.alice)
    token = client.get("/csrf_token").json()["csrf_token"]
    url = "/api/v1/repository/acme/app"
    refused = client.put(url, data={"description": "s"}, content_type="application/json")
    problem(refused, 403)
    ok = client.put(url, data={"description": "s"}, content_type="application/json", HTTP_X_CSRF_TOKEN=token)
    assert ok.status_code == 200
    assert client.get(url).json()["description"] == "s"
