"""The permission matrix: every HTTP endpoint x method x kind of caller, against
tests/security/matrix_expectations.py.

The endpoints are read from the URL configuration, so a new endpoint without an entry fails
``test_every_endpoint_has_an_entry``. The cast and objects are built once per module inside an
outer transaction; each request runs in its own savepoint (pytest-django's ``db``), so a delete
that authorization lets through is undone before the next request.

An outcome is a class, not an exact status: ``ok`` is a caller that got past authorization (2xx,
a redirect elsewhere than to sign-in, or a validation error such as 400/409 for the sample
body), ``login`` a redirect to a sign-in page, else the denial status (401, 403, 404, 405).
"""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.test import override_settings
from django.urls import resolve
from rest_framework.throttling import ScopedRateThrottle

from registry.storage import get_blob_store
from tests.security import matrix_expectations as matrix
from tests.security.matrix_routes import build_path, http_routes
from tests.security.matrix_world import BY_NAME, CALLER_NAMES, basic_header, build_world

ROUTES = {route.pattern: route for route in http_routes()}
ENDPOINTS = [(route.pattern, method) for route in ROUTES.values() for method in route.methods if method != "?"]
ALLOWED_STATUSES = {400, 409, 411, 413, 415, 416, 422}
SIGN_IN_PATHS = ("/signin", "/admin/login/")


@pytest.fixture
def _fresh_blob_store():
    """Overrides tests/conftest.py's per-test storage directory: the module's world keeps its
    blobs in one directory for all its tests."""


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory):
    data = tmp_path_factory.mktemp("matrix")
    with override_settings(
        STORAGE_DIR=data / "storage",
        STORAGE_BACKEND="filesystem",
        BUILD_PACKAGE_DIR=data / "build-packages",
        FEATURE_BUILD_SUPPORT=True,
        BUILDER_REGISTRATION_SECRET="",
        SERVER_HOSTNAME="",
        PREFERRED_URL_SCHEME="http",
    ):
        get_blob_store.cache_clear()
        # Thousands of requests from one address: the sign-in rate limit is another test's.
        with pytest.MonkeyPatch.context() as patch, django_db_blocker.unblock():
            patch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "signin": None})
            outer = transaction.atomic()
            outer.__enter__()
            try:
                yield build_world()
            finally:
                transaction.set_rollback(True)
                outer.__exit__(None, None, None)
        get_blob_store.cache_clear()


def outcome(response) -> str:
    status = response.status_code
    if 300 <= status < 400:
        location = response.get("Location", "")
        return "login" if any(part in location for part in SIGN_IN_PATHS) else "ok"
    if 200 <= status < 300 or status in ALLOWED_STATUSES:
        return "ok"
    return str(status)


def call(world, pattern: str, method: str, caller_name: str, extra: dict | None = None):
    route = ROUTES[pattern]
    caller = BY_NAME[caller_name]
    overrides = matrix.PARAMS.get(pattern, {})
    values = {**world.values, **{k: world.values[v[1:]] if v.startswith("@") else v for k, v in overrides.items()}}
    values.update(extra or {})
    path = build_path(route, values)
    assert resolve(path).route.replace("^", "") == route.pattern.replace("^", ""), (path, resolve(path).route)
    client, headers = world.client(caller, route.family)
    if route.family in ("v2", "squash"):
        headers = {}
        if route.family == "squash" or pattern == "v2/^auth$":
            if caller.name in world.basics:
                headers["HTTP_AUTHORIZATION"] = basic_header(*world.basics[caller.name])
        else:
            token = world.registry_token(caller, matrix.registry_scope(route, values))
            if token is not None:
                headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    query = matrix.QUERY.get((pattern, method), "")
    body, content_type = matrix.body_for(route, method)
    kwargs = {**headers}
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        kwargs["content_type"] = content_type
        kwargs["data"] = body
    url = f"{path}?{query}" if query else path
    return getattr(client, method.lower())(url, **kwargs)


def check(world, pattern: str, method: str, caller: str, public: bool = False) -> str | None:
    """The mismatch for one caller, or None. The request runs in a savepoint rolled back after
    it, so a mutation let through (a delete, a rename) does not change the next request's world."""
    expected = matrix.expected(ROUTES[pattern], method, caller, public=public)
    with transaction.atomic():
        response = call(world, pattern, method, caller, matrix.PUBLIC_VALUES if public else None)
        transaction.set_rollback(True)
    got = outcome(response)
    if (pattern, method) in matrix.FORM_REFUSALS and response.status_code in (200, 400):
        got = "403"
    if got == expected:
        return None
    body = response.content[:200]
    where = " on the public repository" if public else ""
    return f"{method} /{pattern}{where} as {caller}: expected {expected}, got {response.status_code} {body!r}"


@pytest.mark.parametrize(("pattern", "method"), ENDPOINTS, ids=[f"{m} /{p}" for p, m in ENDPOINTS])
def test_permission(world, db, pattern, method):
    """One endpoint and method against every kind of caller; a failure lists each caller whose
    outcome differs from the matrix."""
    mismatches = [
        problem
        for caller in matrix.callers_for(ROUTES[pattern])
        if (problem := check(world, pattern, method, caller)) is not None
    ]
    assert not mismatches, "\n".join(mismatches)


PUBLIC_ENDPOINTS = [(pattern, method) for pattern, method in ENDPOINTS if matrix.on_public(ROUTES[pattern], method)]


@pytest.mark.parametrize(("pattern", "method"), PUBLIC_ENDPOINTS, ids=[f"{m} /{p} public" for p, m in PUBLIC_ENDPOINTS])
def test_permission_on_a_public_repository(world, db, pattern, method):
    """The repository endpoints again on a public repository: reading is open to all, changing
    is not (a reader without the role gets 403 where the private repository was hidden)."""
    mismatches = [
        problem
        for caller in matrix.callers_for(ROUTES[pattern])
        if (problem := check(world, pattern, method, caller, public=True)) is not None
    ]
    assert not mismatches, "\n".join(mismatches)


# Object-level authorization (DESIGN section 12): an object of another organization named in a
# path under acme's repository or organization is not found, even by acme's admin or a
# superuser (who may act on ``other``, but not through acme's path).
FOREIGN_KINDS = ("uuid", "notification_uuid", "delivery_uuid", "trigger_uuid", "build_uuid", "client_id")
FOREIGN_CASES = [
    (route.pattern, method, kind)
    for route in ROUTES.values()
    if route.pattern.startswith(("api/v1/repository/", "api/v1/organization/", "repository/"))
    for kind in route.kwargs
    if kind in FOREIGN_KINDS
    for method in route.methods
]


@pytest.mark.parametrize(
    ("pattern", "method", "kind"), FOREIGN_CASES, ids=[f"{m} /{p} with other's {k}" for p, m, k in FOREIGN_CASES]
)
def test_another_organizations_object_is_not_found(world, db, pattern, method, kind):
    mismatches = []
    for caller in ("org_admin", "superuser"):
        with transaction.atomic():
            response = call(world, pattern, method, caller, {kind: world.foreign[kind]})
            transaction.set_rollback(True)
        if outcome(response) != "404":
            mismatches.append(f"{method} /{pattern} as {caller}: got {response.status_code} {response.content[:200]!r}")
    assert not mismatches, "\n".join(mismatches)


def test_members_listing_robots_get_no_tokens(world, db):
    """Members may list the organization's robots (Quay), admins alone see their tokens."""
    tokens = {}
    for caller in ("org_member", "reader", "org_admin"):
        client, headers = world.client(BY_NAME[caller], "api")
        response = client.get("/api/v1/organization/acme/robots", **headers)
        assert response.status_code == 200, response.content
        tokens[caller] = [robot.get("token") for robot in response.json()["robots"]]
    assert tokens["org_member"] and not any(tokens["org_member"]) and not any(tokens["reader"])
    assert all(tokens["org_admin"])


def test_entity_search_shows_robots_and_teams_to_members_only(world, db):
    names = {}
    for caller in ("org_member", "user", "other_org", "anonymous"):
        client, headers = world.client(BY_NAME[caller], "api")
        response = client.get("/api/v1/entities/b?namespace=acme&includeTeams=true", **headers)
        assert response.status_code == 200, response.content
        names[caller] = {entry["name"] for entry in response.json()["results"]}
    assert {"acme+bot", "builders"} <= names["org_member"]
    for outsider in ("user", "other_org", "anonymous"):
        assert not names[outsider] & {"acme+bot", "builders"}, (outsider, names[outsider])


# Authorization that depends on the body: a robot named in it must belong to the repository's
# namespace (a pull robot, a permission, a team member), as in Quay. As acme's admin.
NAMED_ROBOTS = [
    ("PUT", "/api/v1/repository/acme/app/permissions/user/{robot}", {"role": "read"}),
    ("PUT", "/api/v1/organization/acme/team/readers/members/{robot}", {}),
    (
        "POST",
        "/api/v1/repository/acme/app/build/",
        {"file_id": "{spare_file_id}", "pull_robot": "{robot}"},
    ),
    (
        "POST",
        "/api/v1/repository/acme/app/trigger/",
        {
            "service": "custom-git",
            "config": {"build_source": "git@git.example.com:acme/app.git"},
            "pull_robot": "{robot}",
        },
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), NAMED_ROBOTS, ids=[f"{m} {p}" for m, p, _ in NAMED_ROBOTS])
def test_a_robot_of_another_namespace_cannot_be_named(world, db, method, path, body):
    client, headers = world.client(BY_NAME["org_admin"], "api")
    statuses = {}
    for robot in ("acme+bot", "other+bot", "eve+mine"):
        data = json.dumps(body).replace("{robot}", robot).replace("{spare_file_id}", world.values["spare_file_id"])
        with transaction.atomic():
            response = getattr(client, method.lower())(
                path.format(robot=robot), data=data, content_type="application/json", **headers
            )
            transaction.set_rollback(True)
        statuses[robot] = (response.status_code, response.content[:200])
    assert 200 <= statuses["acme+bot"][0] < 300, statuses
    assert statuses["other+bot"][0] in (400, 403, 404), statuses
    assert statuses["eve+mine"][0] in (400, 403, 404), statuses


def test_every_endpoint_has_an_entry():
    """A new URL pattern or method must be added to the matrix before it can ship."""
    missing = [
        f"{method} /{route.pattern} ({route.view})"
        if method != "?"
        else f"/{route.pattern}: function view {route.view}: declare its methods in FUNCTION_VIEW_METHODS"
        for route in ROUTES.values()
        for method in route.methods
        if not matrix.has_entry(route, method)
    ]
    assert not missing, "Endpoints without a permission matrix entry:\n" + "\n".join(missing)


def test_every_entry_names_an_endpoint():
    """An entry for a pattern or method that no longer exists is stale."""
    served = {(route.pattern, method) for route in ROUTES.values() for method in route.methods}
    stale = sorted(key for key in matrix.ENTRIES if key not in served)
    stale += sorted(p for p in matrix.PARAMS if p not in ROUTES)
    assert not stale, f"Matrix entries for endpoints that do not exist: {stale}"


def test_the_callers_cover_every_scope():
    from accounts import scopes

    assert {BY_NAME[name].scope for name in CALLER_NAMES if BY_NAME[name].scope} == set(scopes.ALL)


# HEAD and OPTIONS, which no handler of ours implements on most endpoints (Django answers HEAD
# with the GET handler, DRF and Django answer OPTIONS themselves), so the matrix above lists
# neither there. HEAD must be authorized exactly as GET; OPTIONS must not tell a caller anything
# about the objects in the path: the same answer whether they exist or not.
HEAD_ENDPOINTS = [
    pattern for pattern, route in ROUTES.items() if "GET" in route.methods and "HEAD" not in route.methods
]
# GETs that do work a HEAD should not start (a squash flattens the image; the OAuth callback
# spends its one-time code): they refuse HEAD with 405, the same to every caller.
HEAD_REFUSED = {"^c1/squash/(?P<name>[^?#]+)/(?P<tag>[^/?#]+)$", "oauth2/<gitprovider:service>/callback"}


@pytest.mark.parametrize("pattern", HEAD_ENDPOINTS, ids=[f"HEAD /{p}" for p in HEAD_ENDPOINTS])
def test_head_is_authorized_as_get(world, db, pattern):
    mismatches = []
    for caller in matrix.callers_for(ROUTES[pattern]):
        expected = "405" if pattern in HEAD_REFUSED else matrix.expected(ROUTES[pattern], "GET", caller)
        with transaction.atomic():
            response = call(world, pattern, "HEAD", caller)
            transaction.set_rollback(True)
        got = outcome(response)
        if got != expected:
            mismatches.append(f"HEAD /{pattern} as {caller}: expected {expected} (as GET), got {response.status_code}")
    assert not mismatches, "\n".join(mismatches)


# A value of each path parameter naming nothing that exists (same shape as the real one).
MISSING_VALUES = {
    "repository": "acme/nothing-here",
    "orgname": "nothing-here",
    "org": "nothing-here",
    "teamname": "nothing-here",
    "username": "nothing-here",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "notification_uuid": "00000000-0000-4000-8000-000000000000",
    "trigger_uuid": "00000000-0000-4000-8000-000000000000",
    "build_uuid": "00000000-0000-4000-8000-000000000000",
    "delivery_uuid": "00000000-0000-4000-8000-000000000000",
}
OPTIONS_ENDPOINTS = [
    pattern
    for pattern, route in ROUTES.items()
    if route.family in ("api", "v2", "squash", "web")
    and set(route.kwargs) & {*MISSING_VALUES, "name"}
    and "?" not in route.methods
]
OPTIONS_CALLERS = ("anonymous", "user", "other_org")


@pytest.mark.parametrize("pattern", OPTIONS_ENDPOINTS, ids=[f"OPTIONS /{p}" for p in OPTIONS_ENDPOINTS])
def test_options_tells_outsiders_nothing_about_the_objects_in_the_path(world, db, pattern):
    route = ROUTES[pattern]
    missing = {kind: value for kind, value in MISSING_VALUES.items() if kind in route.kwargs}
    if "name" in route.kwargs:  # a repository on /v2/ and /c1/squash/, an organization elsewhere
        missing["name"] = "acme/nothing-here" if route.family in ("v2", "squash") else "nothing-here"
    differences = []
    for caller in OPTIONS_CALLERS:
        answers = []
        for extra in (None, missing):
            with transaction.atomic():
                response = call(world, pattern, "OPTIONS", caller, extra)
                transaction.set_rollback(True)
            answers.append((response.status_code, response.get("Allow"), response.content))
        if answers[0] != answers[1]:
            differences.append(f"OPTIONS /{pattern} as {caller}: existing {answers[0][:2]}, missing {answers[1][:2]}")
    assert not differences, "\n".join(differences)
