"""The OpenAPI 3 schema of /api/v1: generated without a warning, every operation describes its
parameters, body and answer, and the documented answers are the shapes the views really send."""

import json
import re

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from accounts import services as account_services
from accounts.models import Team
from tests.accounts.conftest import Api

# Operations that take no body: Quay's clients send none.
BODILESS = {
    ("post", "/api/v1/signout"),
    ("put", "/api/v1/organization/{orgname}/team/{teamname}/members/{membername}"),
    ("post", "/api/v1/user/robots/{robot_shortname}/regenerate"),
    ("post", "/api/v1/organization/{orgname}/robots/{robot_shortname}/regenerate"),
    ("post", "/api/v1/organization/{orgname}/applications/{client_id}/resetclientsecret"),
}


@pytest.fixture(scope="module")
def schema():
    document = SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS, (dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache))
    # Through JSON, as clients read it (lazy strings and enums become plain values).
    return json.loads(json.dumps(document, default=str))


def resolve(schema: dict, node: dict) -> dict:
    """Follow references, also the one-element ``allOf`` a field with a description gets."""
    while "$ref" in node or len(node.get("allOf", [])) == 1:
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].removeprefix("#/components/schemas/")]
        else:
            node = node["allOf"][0]
    return node


def body_schema(schema: dict, holder: dict) -> dict:
    return resolve(schema, holder["content"]["application/json"]["schema"])


def operations(schema: dict):
    for path, entry in schema["paths"].items():
        for method, operation in entry.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def mismatches(schema: dict, value, node: dict, where: str = "$") -> list[str]:
    """Where ``value`` differs from the documented ``node``: undocumented or missing keys, wrong types."""
    node = resolve(schema, node)
    if "oneOf" in node:
        tries = [mismatches(schema, value, option, where) for option in node["oneOf"]]
        return [] if [] in tries else tries[0]
    if value is None:
        return [] if node.get("nullable") or None in node.get("enum", []) else [f"{where}: null but not nullable"]
    kind = node.get("type")
    if kind == "object" and "properties" in node:
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        found = [f"{where}.{key}: undocumented" for key in value if key not in node["properties"]]
        found += [f"{where}.{key}: missing" for key in node.get("required", []) if key not in value]
        for key, item in value.items():
            if key in node["properties"]:
                found += mismatches(schema, item, node["properties"][key], f"{where}.{key}")
        return found
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: not an object"]
        child = node.get("additionalProperties")
        if not isinstance(child, dict) or not child:
            return []
        return [problem for key, item in value.items() for problem in mismatches(schema, item, child, f"{where}.{key}")]
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: not an array"]
        return [
            problem
            for n, item in enumerate(value)
            for problem in mismatches(schema, item, node["items"], f"{where}[{n}]")
        ]
    python = {"string": str, "boolean": bool, "integer": int, "number": (int, float)}.get(kind)
    if python is not None and (not isinstance(value, python) or (kind != "boolean" and isinstance(value, bool))):
        return [f"{where}: {value!r} is not {kind}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{where}: {value!r} not in {node['enum']}"]
    return []


def test_it_generates_a_valid_schema_without_warnings_or_errors(tmp_path, capsys):
    target = tmp_path / "schema.json"
    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", "--file", str(target))
    except Exception as exc:
        pytest.fail(f"{exc}\n{capsys.readouterr().err}")
    document = json.loads(target.read_text())
    assert document["openapi"].startswith("3.")
    assert "/api/v1/organization/{orgname}" in document["paths"]


def test_every_operation_documents_its_parameters_body_and_answer(schema):
    count = 0
    for path, method, operation in operations(schema):
        count += 1
        for parameter in operation.get("parameters", []):
            assert parameter.get("description"), (method, path, parameter["name"])
        path_names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert path_names == set(re.findall(r"{(\w+)}", path)), (method, path)
        if method in ("post", "put") and (method, path) not in BODILESS:
            assert "application/json" in operation.get("requestBody", {}).get("content", {}), (method, path)
        successes = {code: answer for code, answer in operation["responses"].items() if code.startswith("2")}
        assert successes, (method, path)
        for code, answer in successes.items():
            if code != "204":
                assert body_schema(schema, answer).get("type") in ("object", "string"), (method, path, code)
    # The account views alone have more than thirty operations.
    assert count > 60


def test_an_organization_is_described(schema):
    entry = schema["paths"]["/api/v1/organization/{orgname}"]
    assert {p["name"]: p["in"] for p in entry["get"]["parameters"]} == {"orgname": "path"}
    answer = body_schema(schema, entry["get"]["responses"]["200"])
    assert {"name", "email", "avatar", "is_admin", "is_member", "teams", "tag_expiration_s"} <= set(
        answer["properties"]
    )
    assert set(answer["required"]) == {"name", "email", "avatar", "is_admin", "is_member"}
    team = resolve(schema, answer["properties"]["teams"]["additionalProperties"])
    assert resolve(schema, team["properties"]["role"])["enum"] == ["admin", "creator", "member"]
    update = body_schema(schema, entry["put"]["requestBody"])
    assert set(update["properties"]) == {"email", "tag_expiration_s", "invoice_email", "invoice_email_address"}
    assert "required" not in update
    assert body_schema(schema, entry["put"]["responses"]["200"]) == answer
    assert set(entry["delete"]["responses"]) == {"204"}
    assert entry["put"]["operationId"] == "changeOrganizationDetails"


def test_repository_creation_and_listing_are_described(schema):
    entry = schema["paths"]["/api/v1/repository"]
    create = body_schema(schema, entry["post"]["requestBody"])
    assert set(create["required"]) == {"repository", "visibility"}
    assert set(body_schema(schema, entry["post"]["responses"]["201"])["properties"]) == {"namespace", "name", "kind"}
    listing = body_schema(schema, entry["get"]["responses"]["200"])
    assert resolve(schema, listing["properties"]["repositories"]["items"])["properties"]["is_public"] == {
        "type": "boolean"
    }
    assert {"namespace", "public", "starred", "next_page"} <= {p["name"] for p in entry["get"]["parameters"]}


def test_robots_are_described_for_users_and_organizations(schema):
    user_robot = schema["paths"]["/api/v1/user/robots/{robot_shortname}"]
    org_robot = schema["paths"]["/api/v1/organization/{orgname}/robots/{robot_shortname}"]
    # The two views share their methods; the organization's parameter must not leak into the user's.
    assert [p["name"] for p in user_robot["put"]["parameters"]] == ["robot_shortname"]
    assert sorted(p["name"] for p in org_robot["put"]["parameters"]) == ["orgname", "robot_shortname"]
    for entry in (user_robot, org_robot):
        create = body_schema(schema, entry["put"]["requestBody"])
        assert set(create["properties"]) == {"description", "unstructured_metadata"}
        created = body_schema(schema, entry["put"]["responses"]["201"])
        assert {"name", "created", "last_accessed", "description", "token"} <= set(created["properties"])
        assert body_schema(schema, entry["get"]["responses"]["200"]) == created
        assert set(entry["delete"]["responses"]) == {"204"}
    assert user_robot["put"]["operationId"] == "createUserRobot"
    assert org_robot["put"]["operationId"] == "createOrgRobot"
    listing = schema["paths"]["/api/v1/organization/{orgname}/robots"]["get"]
    assert {p["name"]: p["in"] for p in listing["parameters"]} == {
        "orgname": "path",
        "token": "query",
        "permissions": "query",
        "limit": "query",
    }


def test_team_and_repository_roles_are_separate_enums(schema):
    team = body_schema(schema, schema["paths"]["/api/v1/organization/{orgname}/team/{teamname}"]["put"]["requestBody"])
    assert resolve(schema, team["properties"]["role"])["enum"] == ["admin", "creator", "member"]
    permission = "/api/v1/repository/{repository}/permissions/user/{username}"
    role = body_schema(schema, schema["paths"][permission]["put"]["requestBody"])["properties"]["role"]
    assert resolve(schema, role)["enum"] == ["read", "write", "admin"]


def test_signin_documents_its_failure_body_and_csrf_header(schema):
    signin = schema["paths"]["/api/v1/signin"]["post"]
    assert set(body_schema(schema, signin["requestBody"])["required"]) == {"username", "password"}
    assert "X-Next-CSRF-Token" in signin["responses"]["200"]["headers"]
    failure = body_schema(schema, signin["responses"]["403"])
    assert set(failure["properties"]) == {"success", "invalidCredentials", "message"}


@pytest.fixture
def world(db, org, alice, bob, alice_robot):
    """acme with a team holding bob, a robot and an application; root is a superuser."""
    team = account_services.team_create(organization=org, name="builders", role=Team.Role.CREATOR)
    account_services.team_member_add(team=team, user=bob)
    account_services.robot_create(namespace=org, short_name="ci")
    root = account_services.user_create(username="root", password="password-123", is_superuser=True)
    return {"alice": Api(alice), "bob": Api(bob), "root": Api(root), "anonymous": Api()}


# (caller, method, real path, body, status, path template): answers to compare with their documentation.
CALLS = [
    ("alice", "GET", "/api/v1/user/", None, 200, "/api/v1/user/"),
    ("alice", "GET", "/api/v1/organization/acme", None, 200, "/api/v1/organization/{orgname}"),
    ("bob", "GET", "/api/v1/organization/acme", None, 200, "/api/v1/organization/{orgname}"),
    ("anonymous", "GET", "/api/v1/organization/acme", None, 200, "/api/v1/organization/{orgname}"),
    ("alice", "PUT", "/api/v1/organization/acme", {"tag_expiration_s": 86400}, 200, "/api/v1/organization/{orgname}"),
    ("alice", "GET", "/api/v1/organization/acme/members", None, 200, "/api/v1/organization/{orgname}/members"),
    (
        "alice",
        "GET",
        "/api/v1/organization/acme/members/bob",
        None,
        200,
        "/api/v1/organization/{orgname}/members/{membername}",
    ),
    (
        "alice",
        "PUT",
        "/api/v1/organization/acme/team/deployers",
        {"role": "member", "description": "d"},
        200,
        "/api/v1/organization/{orgname}/team/{teamname}",
    ),
    (
        "alice",
        "GET",
        "/api/v1/organization/acme/team/builders/members",
        None,
        200,
        "/api/v1/organization/{orgname}/team/{teamname}/members",
    ),
    (
        "alice",
        "PUT",
        "/api/v1/organization/acme/team/builders/members/acme+ci",
        None,
        200,
        "/api/v1/organization/{orgname}/team/{teamname}/members/{membername}",
    ),
    ("alice", "GET", "/api/v1/user/robots?permissions=true", None, 200, "/api/v1/user/robots"),
    ("bob", "GET", "/api/v1/organization/acme/robots", None, 200, "/api/v1/organization/{orgname}/robots"),
    ("alice", "PUT", "/api/v1/user/robots/new", {"description": "x"}, 201, "/api/v1/user/robots/{robot_shortname}"),
    ("alice", "GET", "/api/v1/user/robots/deploy", None, 200, "/api/v1/user/robots/{robot_shortname}"),
    (
        "alice",
        "POST",
        "/api/v1/organization/acme/robots/ci/regenerate",
        None,
        200,
        "/api/v1/organization/{orgname}/robots/{robot_shortname}/regenerate",
    ),
    (
        "alice",
        "GET",
        "/api/v1/organization/acme/robots/ci/permissions",
        None,
        200,
        "/api/v1/organization/{orgname}/robots/{robot_shortname}/permissions",
    ),
    ("alice", "POST", "/api/v1/user/apptoken", {"title": "cli"}, 200, "/api/v1/user/apptoken"),
    ("alice", "GET", "/api/v1/user/apptoken", None, 200, "/api/v1/user/apptoken"),
    (
        "alice",
        "POST",
        "/api/v1/organization/acme/applications",
        {"name": "ci", "redirect_uri": "https://ci.example/cb"},
        200,
        "/api/v1/organization/{orgname}/applications",
    ),
    (
        "alice",
        "GET",
        "/api/v1/organization/acme/applications",
        None,
        200,
        "/api/v1/organization/{orgname}/applications",
    ),
    (
        "alice",
        "GET",
        "/api/v1/entities/a?namespace=acme&includeTeams=true&includeOrgs=true",
        None,
        200,
        "/api/v1/entities/{prefix}",
    ),
    ("root", "GET", "/api/v1/superuser/users/", None, 200, "/api/v1/superuser/users/"),
    ("root", "POST", "/api/v1/superuser/users/", {"username": "dana"}, 200, "/api/v1/superuser/users/"),
    (
        "root",
        "PUT",
        "/api/v1/superuser/users/bob",
        {"password": "another-pass"},
        200,
        "/api/v1/superuser/users/{username}",
    ),
    ("root", "GET", "/api/v1/superuser/organizations/", None, 200, "/api/v1/superuser/organizations/"),
    ("alice", "POST", "/api/v1/organization/", {"name": "initech"}, 201, "/api/v1/organization/"),
    ("alice", "POST", "/api/v1/repository", {"repository": "app", "visibility": "private"}, 201, "/api/v1/repository"),
]


@pytest.mark.parametrize("caller, method, path, body, status, template", CALLS)
def test_real_answers_have_the_documented_shape(schema, world, caller, method, path, body, status, template):
    response = world[caller].request(method, path, body)
    assert response.status_code == status, response.content
    documented = schema["paths"][template][method.lower()]["responses"][str(status)]
    node = documented["content"]["application/json"]["schema"]
    assert mismatches(schema, response.json(), node) == []


def test_the_checker_notices_an_undocumented_or_missing_key(schema):
    node = schema["paths"]["/api/v1/user/robots/{robot_shortname}"]["get"]["responses"]["200"]["content"]
    robot = node["application/json"]["schema"]
    good = {"name": "a+b", "created": "x", "last_accessed": None, "description": ""}
    assert mismatches(schema, good, robot) == []
    assert mismatches(schema, {**good, "secret": 1}, robot) == ["$.secret: undocumented"]
    assert mismatches(schema, {k: v for k, v in good.items() if k != "name"}, robot) == ["$.name: missing"]
    assert mismatches(schema, {**good, "created": None}, robot) == ["$.created: null but not nullable"]
