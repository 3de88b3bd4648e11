"""Permission matrix of the account endpoints: every endpoint x every kind of caller.

Callers (see the ``world`` fixture): anonymous; ``user`` (erin, in no organization); ``member``
(bob, in acme's member-role team ``readers``); ``creator`` (dave, in acme's creator-role team);
``admin`` (alice, in acme's owners); ``superuser`` (root); ``other_org`` (charlie, admin of
another organization). Robots are objects here: they hold no REST API credentials.
"""

import pytest

from tests.accounts.conftest import problem

CALLERS = ["anonymous", "user", "member", "creator", "admin", "superuser", "other_org"]
CALLER_USER = {
    "user": "erin",
    "member": "bob",
    "creator": "dave",
    "admin": "alice",
    "superuser": "root",
    "other_org": "charlie",
}
ORG = "/api/v1/organization/acme"


def row(anonymous, user, member, creator, admin, superuser, other_org):
    return dict(zip(CALLERS, (anonymous, user, member, creator, admin, superuser, other_org), strict=True))


# Organization internals: outsiders 404, members without admin 403.
ADMIN_ONLY = row(401, 404, 403, 403, 200, 200, 404)
ADMIN_ONLY_204 = row(401, 404, 403, 403, 204, 204, 404)
ADMIN_ONLY_201 = row(401, 404, 403, 403, 201, 201, 404)
# The organization itself is public, so refusing a change to it is a 403 for everyone signed in.
ORG_CHANGE = row(401, 403, 403, 403, 200, 200, 403)
ORG_DELETE = row(401, 403, 403, 403, 204, 204, 403)
ANY_SIGNED_IN = row(401, 200, 200, 200, 200, 200, 200)
SUPERUSER_ONLY = row(401, 403, 403, 403, 403, 200, 403)

MATRIX = [
    ("GET", ORG, None, row(200, 200, 200, 200, 200, 200, 200)),
    ("PUT", ORG, {"email": "new@acme.test"}, ORG_CHANGE),
    ("DELETE", ORG, None, ORG_DELETE),
    ("POST", "/api/v1/organization/", {"name": "initech"}, row(401, 201, 201, 201, 201, 201, 201)),
    ("GET", f"{ORG}/members", None, ADMIN_ONLY),
    ("GET", f"{ORG}/members/bob", None, ADMIN_ONLY),
    ("DELETE", f"{ORG}/members/bob", None, ADMIN_ONLY_204),
    ("PUT", f"{ORG}/team/deployers", {"role": "creator"}, ADMIN_ONLY),
    ("DELETE", f"{ORG}/team/readers", None, ADMIN_ONLY_204),
    ("GET", f"{ORG}/team/readers/members", None, row(401, 404, 200, 403, 200, 200, 404)),
    ("PUT", f"{ORG}/team/readers/members/erin", None, ADMIN_ONLY),
    ("DELETE", f"{ORG}/team/readers/members/bob", None, ADMIN_ONLY_204),
    ("GET", f"{ORG}/team/readers/permissions", None, ADMIN_ONLY),
    ("GET", f"{ORG}/robots", None, row(401, 404, 200, 200, 200, 200, 404)),
    ("GET", f"{ORG}/robots/bot", None, ADMIN_ONLY),
    ("PUT", f"{ORG}/robots/newbot", {"description": "x"}, ADMIN_ONLY_201),
    ("DELETE", f"{ORG}/robots/bot", None, ADMIN_ONLY_204),
    ("POST", f"{ORG}/robots/bot/regenerate", None, ADMIN_ONLY),
    ("GET", f"{ORG}/robots/bot/permissions", None, ADMIN_ONLY),
    ("GET", f"{ORG}/applications", None, ADMIN_ONLY),
    ("POST", f"{ORG}/applications", {"name": "ci"}, ADMIN_ONLY),
    ("GET", "/api/v1/user/robots", None, ANY_SIGNED_IN),
    ("PUT", "/api/v1/user/robots/mine", None, row(401, 201, 201, 201, 201, 201, 201)),
    ("GET", "/api/v1/user/apptoken", None, ANY_SIGNED_IN),
    ("POST", "/api/v1/user/apptoken", {"title": "cli"}, ANY_SIGNED_IN),
    ("GET", "/api/v1/entities/a?namespace=acme", None, row(200, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/superuser/users/", None, SUPERUSER_ONLY),
    ("POST", "/api/v1/superuser/users/", {"username": "frank"}, SUPERUSER_ONLY),
    ("GET", "/api/v1/superuser/users/bob", None, SUPERUSER_ONLY),
    ("PUT", "/api/v1/superuser/users/bob", {"enabled": False}, SUPERUSER_ONLY),
    ("DELETE", "/api/v1/superuser/users/bob", None, row(401, 403, 403, 403, 403, 204, 403)),
    ("GET", "/api/v1/superuser/organizations/", None, SUPERUSER_ONLY),
    ("PUT", "/api/v1/superuser/organizations/acme", {"email": "hq@acme.test"}, SUPERUSER_ONLY),
    ("DELETE", "/api/v1/superuser/organizations/acme", None, row(401, 403, 403, 403, 403, 204, 403)),
]

ERROR_TYPES = {401: "invalid_token", 403: "insufficient_scope", 404: "not_found"}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method,path,body,expected", MATRIX, ids=[f"{method} {path}" for method, path, _, _ in MATRIX])
def test_permission_matrix(world, api, caller, method, path, body, expected):
    client = api() if caller == "anonymous" else api(getattr(world, CALLER_USER[caller]))
    response = client.request(method, path, body)
    status = expected[caller]
    if status >= 400:
        problem(response, status, ERROR_TYPES[status])
    else:
        assert response.status_code == status, response.content


def test_robot_credentials_do_not_reach_the_rest_api(world, api):
    """Robots authenticate to the registry only; their token is no REST API credential."""
    import base64

    basic = base64.b64encode(f"acme+bot:{world.acme_bot_token}".encode()).decode()
    client = api()
    problem(client.get(f"{ORG}/robots", HTTP_AUTHORIZATION=f"Basic {basic}"), 401, "invalid_token")
    problem(client.get(f"{ORG}/robots", HTTP_AUTHORIZATION=f"Bearer {world.acme_bot_token}"), 401, "invalid_token")


@pytest.mark.parametrize(
    "path,method,operation_id,scope",
    [
        ("/api/v1/organization/", "post", "createOrganization", "user:admin"),
        ("/api/v1/organization/{orgname}", "get", "getOrganization", None),
        ("/api/v1/organization/{orgname}", "put", "changeOrganizationDetails", "org:admin"),
        ("/api/v1/organization/{orgname}/team/{teamname}", "put", "updateOrganizationTeam", "org:admin"),
        ("/api/v1/organization/{orgname}/robots/{robot_shortname}", "put", "createOrgRobot", "org:admin"),
        ("/api/v1/user/robots/{robot_shortname}", "get", "getUserRobot", "user:admin"),
        ("/api/v1/user/apptoken", "post", "createAppToken", "user:admin"),
        ("/api/v1/superuser/users/", "post", "createInstallUser", "super:user"),
        ("/api/v1/entities/{prefix}", "get", "getMatchingEntities", None),
    ],
)
def test_discovery_describes_account_endpoints_with_quays_names(db, api, path, method, operation_id, scope):
    document = api().get("/api/v1/discovery").json()
    operation = document["paths"][path][method]
    assert operation["operationId"] == operation_id
    assert operation["description"]
    if scope is None:
        assert "security" not in operation
    else:
        assert operation["security"] == [{"oauth2_implicit": [scope]}]
