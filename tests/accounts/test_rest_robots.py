"""Robot accounts of users and organizations through /api/v1."""

import base64

import pytest
from django.test import Client

from accounts import scopes
from accounts import services as account_services
from accounts.models import Robot, User
from registry.models import Repository, RepositoryPermission, UsageLog
from tests.accounts.conftest import problem

ORG_ROBOTS = "/api/v1/organization/acme/robots"
USER_ROBOTS = "/api/v1/user/robots"


def registry_login(username: str, password: str) -> int:
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    return Client().get("/v2/auth?service=testserver", HTTP_AUTHORIZATION=f"Basic {basic}").status_code


@pytest.mark.parametrize("base,namespace", [(ORG_ROBOTS, "acme"), (USER_ROBOTS, "alice")])
def test_it_creates_a_robot_and_shows_its_token_once_more_to_admins(world, api, base, namespace):
    client = api(world.alice)
    response = client.put(f"{base}/builder", {"description": "Builds", "unstructured_metadata": {"team": "ci"}})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == f"{namespace}+builder"
    assert body["description"] == "Builds" and body["unstructured_metadata"] == {"team": "ci"}
    assert body["last_accessed"] is None and body["created"].endswith("-0000")
    assert registry_login(body["name"], body["token"]) == 200
    again = client.get(f"{base}/builder").json()
    assert again == body
    entry = UsageLog.objects.get(kind="create_robot")
    assert entry.namespace.name == namespace and entry.metadata["robot"] == "builder"


@pytest.mark.parametrize("base", [ORG_ROBOTS, USER_ROBOTS])
def test_it_creates_a_robot_without_a_body(world, api, base):
    response = api(world.alice).put(f"{base}/bare")
    assert response.status_code == 201 and response.json()["description"] == ""
    nulls = api(world.alice).put(f"{base}/nulls", {"description": None, "unstructured_metadata": None})
    assert nulls.status_code == 201, nulls.content
    assert nulls.json()["description"] == "" and nulls.json()["unstructured_metadata"] == {}


@pytest.mark.parametrize("base,existing", [(ORG_ROBOTS, "bot"), (USER_ROBOTS, "deploy")])
def test_it_refuses_an_existing_or_invalid_robot_name(world, api, base, existing):
    client = api(world.alice)
    problem(client.put(f"{base}/{existing}", {"description": "again"}), 400, "invalid_request")
    problem(client.put(f"{base}/Bad_Name!"), 400, "invalid_request")
    problem(client.put(f"{base}/x"), 400, "invalid_request")
    problem(client.put(f"{base}/ok-name", {"description": "d" * 256}), 400, "invalid_request")
    problem(client.put(f"{base}/ok-name", {"unstructured_metadata": "not a dict"}), 400, "invalid_request")
    assert Robot.objects.count() == 2


def test_it_lists_robots_with_tokens_for_admins(world, api):
    body = api(world.alice).get(ORG_ROBOTS).json()
    assert body == {
        "robots": [
            {
                "name": "acme+bot",
                "created": body["robots"][0]["created"],
                "last_accessed": None,
                "description": "CI",
                "token": world.acme_bot_token,
            }
        ]
    }
    without = api(world.alice).get(f"{ORG_ROBOTS}?token=false").json()["robots"][0]
    assert "token" not in without


def test_it_lists_robots_without_tokens_for_members(world, api):
    for caller in (world.bob, world.dave):
        robots = api(caller).get(f"{ORG_ROBOTS}?token=true&permissions=true").json()["robots"]
        assert [robot["name"] for robot in robots] == ["acme+bot"]
        assert "token" not in robots[0] and "teams" not in robots[0]


def test_it_lists_robot_teams_and_repositories_on_request(world, api):
    account_services.team_member_add(team=world.readers, user=world.acme_bot)
    repo = Repository.objects.create(namespace=world.acme, name="app")
    RepositoryPermission.objects.create(repository=repo, user=world.acme_bot, role="write")
    robot = api(world.alice).get(f"{ORG_ROBOTS}?permissions=true").json()["robots"][0]
    assert [team["name"] for team in robot["teams"]] == ["readers"]
    assert robot["teams"][0]["avatar"]["kind"] == "team"
    assert robot["repositories"] == ["app"]


def test_it_limits_robot_lists(world, api):
    client = api(world.alice)
    for name in ("aaa", "bbb", "ccc"):
        client.put(f"{USER_ROBOTS}/{name}")
    names = [robot["name"] for robot in client.get(f"{USER_ROBOTS}?limit=2").json()["robots"]]
    assert names == ["alice+aaa", "alice+bbb"]
    problem(client.get(f"{USER_ROBOTS}?limit=zero"), 400, "invalid_request")
    problem(client.get(f"{USER_ROBOTS}?limit=0"), 400, "invalid_request")
    # Found by the API fuzz test: a number past 64 bits reached SQLite's LIMIT and answered 500.
    problem(client.get(f"{USER_ROBOTS}?limit={10**24}"), 400, "invalid_request")


def test_user_robot_lists_hold_only_the_callers_robots(world, api):
    assert [r["name"] for r in api(world.alice).get(USER_ROBOTS).json()["robots"]] == ["alice+deploy"]
    assert api(world.bob).get(USER_ROBOTS).json() == {"robots": []}
    problem(api(world.bob).get(f"{USER_ROBOTS}/deploy"), 404, "not_found")


@pytest.mark.parametrize("base,short", [(ORG_ROBOTS, "bot"), (USER_ROBOTS, "deploy")])
def test_it_regenerates_a_token(world, api, base, short):
    robot = Robot.objects.get(short_name=short)
    old = account_services.robot_token(robot=robot)
    response = api(world.alice).post(f"{base}/{short}/regenerate")
    assert response.status_code == 200
    new = response.json()["token"]
    assert new != old and "unstructured_metadata" not in response.json()
    assert registry_login(robot.user.username, old) == 401
    assert registry_login(robot.user.username, new) == 200
    assert UsageLog.objects.filter(kind="regenerate_robot_token", metadata__robot=short).exists()


@pytest.mark.parametrize("base,short", [(ORG_ROBOTS, "bot"), (USER_ROBOTS, "deploy")])
def test_it_deletes_a_robot_with_its_memberships_and_permissions(world, api, base, short):
    robot = Robot.objects.get(short_name=short)
    user_id = robot.user_id
    repo = Repository.objects.create(namespace=world.acme, name="app")
    RepositoryPermission.objects.create(repository=repo, user=robot.user, role="read")
    assert api(world.alice).delete(f"{base}/{short}").status_code == 204
    assert not User.objects.filter(pk=user_id).exists()
    assert not RepositoryPermission.objects.filter(user_id=user_id).exists()
    assert UsageLog.objects.filter(kind="delete_robot", metadata__robot=short).exists()
    problem(api(world.alice).delete(f"{base}/{short}"), 404, "not_found")
    problem(api(world.alice).get(f"{base}/{short}"), 404, "not_found")


@pytest.mark.parametrize("base,short", [(ORG_ROBOTS, "bot"), (USER_ROBOTS, "deploy")])
def test_it_lists_a_robots_repository_permissions(world, api, base, short):
    robot = Robot.objects.get(short_name=short)
    public = Repository.objects.create(namespace=world.acme, name="public-app", visibility="public")
    private = Repository.objects.create(namespace=world.alice.namespace, name="mine")
    RepositoryPermission.objects.create(repository=public, user=robot.user, role="read")
    RepositoryPermission.objects.create(repository=private, user=robot.user, role="admin")
    body = api(world.alice).get(f"{base}/{short}/permissions").json()
    assert body == {
        "permissions": [
            {"repository": {"name": "mine", "is_public": False}, "role": "admin"},
            {"repository": {"name": "public-app", "is_public": True}, "role": "read"},
        ]
    }


@pytest.mark.parametrize("caller", ["bob", "dave"])
def test_it_refuses_org_members_everything_but_the_list(world, api, caller):
    client = api(getattr(world, caller))
    problem(client.get(f"{ORG_ROBOTS}/bot"), 403, "insufficient_scope")
    problem(client.put(f"{ORG_ROBOTS}/mine"), 403, "insufficient_scope")
    problem(client.delete(f"{ORG_ROBOTS}/bot"), 403, "insufficient_scope")
    problem(client.post(f"{ORG_ROBOTS}/bot/regenerate"), 403, "insufficient_scope")
    problem(client.get(f"{ORG_ROBOTS}/bot/permissions"), 403, "insufficient_scope")
    assert list(Robot.objects.filter(namespace=world.acme).values_list("short_name", flat=True)) == ["bot"]
    assert registry_login("acme+bot", world.acme_bot_token) == 200


@pytest.mark.parametrize("caller", ["charlie", "erin"])
def test_it_hides_an_organizations_robots_from_outsiders(world, api, caller):
    client = api(getattr(world, caller))
    problem(client.get(ORG_ROBOTS), 404, "not_found")
    problem(client.get(f"{ORG_ROBOTS}/bot"), 404, "not_found")
    problem(client.put(f"{ORG_ROBOTS}/mine"), 404, "not_found")
    problem(client.delete(f"{ORG_ROBOTS}/bot"), 404, "not_found")
    problem(client.post(f"{ORG_ROBOTS}/bot/regenerate"), 404, "not_found")
    problem(client.get(f"{ORG_ROBOTS}/bot/permissions"), 404, "not_found")
    assert registry_login("acme+bot", world.acme_bot_token) == 200


def test_it_answers_404_for_robots_of_unknown_organizations(world, api):
    problem(api(world.alice).get("/api/v1/organization/nosuch/robots"), 404, "not_found")
    problem(api(world.alice).get("/api/v1/organization/alice/robots/deploy"), 404, "not_found")


def test_a_superuser_reads_any_organizations_robot_tokens(world, api):
    body = api(world.root).get(f"{ORG_ROBOTS}/bot").json()
    assert body["token"] == world.acme_bot_token


def test_it_enforces_scopes_for_robots(world, api):
    org_only = api(world.alice, token_scopes={scopes.ORG_ADMIN})
    problem(org_only.get(USER_ROBOTS), 403, "insufficient_scope")
    problem(org_only.put(f"{USER_ROBOTS}/new"), 403, "insufficient_scope")
    assert org_only.get(ORG_ROBOTS).status_code == 200
    user_only = api(world.alice, token_scopes={scopes.USER_ADMIN})
    problem(user_only.get(ORG_ROBOTS), 403, "insufficient_scope")
    problem(user_only.put(f"{ORG_ROBOTS}/new"), 403, "insufficient_scope")
    assert user_only.get(USER_ROBOTS).status_code == 200
    problem(api().get(USER_ROBOTS), 401, "invalid_token")
    problem(api().get(ORG_ROBOTS), 401, "invalid_token")
    assert Robot.objects.count() == 2
