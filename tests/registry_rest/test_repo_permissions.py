"""Repository permissions of users, robots and teams (repository admins manage them)."""

from __future__ import annotations

import jwt
import pytest

from registry import services
from registry.models import RepositoryPermission, Role, UsageLog
from tests.registry.conftest import V2
from tests.registry_rest.conftest import as_principal, problem

PASSWORD = "password-123"


def _avatar(body: dict, kind: str, name: str) -> None:
    assert set(body["avatar"]) == {"name", "hash", "color", "kind"}
    assert body["avatar"]["kind"] == kind and body["avatar"]["name"] == name


def test_it_lists_user_permissions_with_quay_fields(world):
    services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    services.repository_permission_set_user(
        repository=world.app, username="bob", role=Role.READ, principal=as_principal(world.alice), ip=None
    )
    services.repository_permission_set_user(
        repository=world.app, username="acme+bot", role=Role.READ, principal=as_principal(world.alice), ip=None
    )
    response = world.api("admin").get("repository/acme/app/permissions/user/")
    assert response.status_code == 200
    permissions = response.json()["permissions"]
    assert set(permissions) == {"bob", "charlie", "acme+bot"}
    assert {k: (v["role"], v["is_robot"], v["is_org_member"]) for k, v in permissions.items()} == {
        "bob": ("read", False, True),
        "charlie": ("write", False, False),
        "acme+bot": ("read", True, True),
    }
    assert permissions["charlie"]["name"] == "charlie"
    _avatar(permissions["acme+bot"], "robot", "acme+bot")
    _avatar(permissions["bob"], "user", "bob")


def test_the_owner_of_a_user_namespace_is_listed_as_admin(world):
    repo = services.repository_create(namespace=world.alice.namespace, name="mine", principal=as_principal(world.alice))
    api = world.api("admin")
    permissions = api.get("repository/alice/mine/permissions/user/").json()["permissions"]
    assert permissions == {
        "alice": {
            "role": "admin",
            "name": "alice",
            "is_robot": False,
            "avatar": permissions["alice"]["avatar"],
        }
    }
    assert api.get("repository/alice/mine/permissions/user/alice").json()["role"] == "admin"
    body = problem(api.put("repository/alice/mine/permissions/user/alice", {"role": "read"}), 400)
    assert body["detail"] == "Namespace owner must always be admin."
    problem(api.delete("repository/alice/mine/permissions/user/alice"), 400)
    assert not RepositoryPermission.objects.filter(repository=repo).exists()


def test_it_grants_changes_and_removes_a_user_permission(world):
    api = world.api("admin")
    response = api.put("repository/acme/app/permissions/user/charlie", {"role": "write"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["role"] == "write" and body["name"] == "charlie" and body["is_robot"] is False
    assert body["is_org_member"] is False
    assert world.api("user").get("repository/acme/app").json()["can_write"] is True
    log = UsageLog.objects.filter(kind="change_repo_permission").latest("pk")
    assert log.metadata == {"username": "charlie", "repo": "app", "namespace": "acme", "role": "write"}
    assert api.put("repository/acme/app/permissions/user/charlie", {"role": "admin"}).json()["role"] == "admin"
    assert RepositoryPermission.objects.get(repository=world.app, user=world.charlie).role == "admin"
    assert api.get("repository/acme/app/permissions/user/charlie").json()["role"] == "admin"
    response = api.delete("repository/acme/app/permissions/user/charlie")
    assert response.status_code == 204
    assert UsageLog.objects.filter(kind="delete_repo_permission").get().metadata["username"] == "charlie"
    problem(world.api("user").get("repository/acme/app"), 404)
    body = problem(api.delete("repository/acme/app/permissions/user/charlie"), 400, "invalid_request")
    assert body["detail"] == "User does not have permission for repo."
    problem(api.get("repository/acme/app/permissions/user/charlie"), 400)


def granted_actions(client: V2, scope: str) -> list[str]:
    token = client.token(scope)
    [access] = jwt.decode(token, options={"verify_signature": False})["access"]
    return access["actions"]


def test_a_robot_of_the_namespace_can_be_granted_and_then_push(world):
    robot = V2("acme+bot", world.bot_token)
    assert granted_actions(robot, "repository:acme/app:pull,push") == []
    response = world.api("admin").put("repository/acme/app/permissions/user/acme+bot", {"role": "write"})
    assert response.status_code == 200
    assert response.json()["is_robot"] is True and response.json()["is_org_member"] is True
    assert granted_actions(robot, "repository:acme/app:pull,push") == ["pull", "push"]
    robot.push_image("acme/app", "from-robot")
    assert world.app.tags.filter(name="from-robot").exists()


@pytest.mark.parametrize(
    "username, detail",
    [
        ("globex+bot", "Cannot add robot globex+bot under namespace acme"),
        ("alice+ghost", "Invalid username: alice+ghost"),
        ("nobody", "Invalid username: nobody"),
    ],
)
def test_it_refuses_robots_of_other_namespaces_and_unknown_users(world, username, detail):
    body = problem(world.api("admin").put(f"repository/acme/app/permissions/user/{username}", {"role": "read"}), 400)
    assert body["detail"] == detail
    assert not RepositoryPermission.objects.filter(repository=world.app, user__username=username).exists()


@pytest.mark.parametrize("body", [{"role": "owner"}, {}, {"role": None}])
def test_it_refuses_unknown_roles(world, body):
    problem(world.api("admin").put("repository/acme/app/permissions/user/charlie", body), 400, "invalid_request")
    assert not RepositoryPermission.objects.filter(user=world.charlie).exists()


def test_team_permissions(world):
    api = world.api("admin")
    listed = api.get("repository/acme/app/permissions/team/").json()["permissions"]
    assert list(listed) == ["devs"] and listed["devs"]["role"] == "read" and listed["devs"]["name"] == "devs"
    _avatar(listed["devs"], "team", "devs")
    response = api.put("repository/acme/app/permissions/team/builders", {"role": "write"})
    assert response.status_code == 200
    assert response.json()["role"] == "write" and response.json()["name"] == "builders"
    assert api.get("repository/acme/app/permissions/team/builders").json() == {"role": "write"}
    assert world.api("creator").get("repository/acme/app").json()["can_write"] is True
    log = UsageLog.objects.filter(kind="change_repo_permission").latest("pk")
    assert log.metadata == {"team": "builders", "repo": "app", "role": "write"}
    assert api.delete("repository/acme/app/permissions/team/builders").status_code == 204
    body = problem(api.get("repository/acme/app/permissions/team/builders"), 400)
    assert body["detail"] == "Team does not have permission for repo."
    problem(api.delete("repository/acme/app/permissions/team/builders"), 400)
    problem(world.api("creator").get("repository/acme/app"), 404)


def test_only_teams_of_the_repositorys_organization(world):
    from accounts import services as account_services

    account_services.team_create(organization=world.globex, name="globexonly")
    body = problem(world.api("admin").put("repository/acme/app/permissions/team/globexonly", {"role": "read"}), 400)
    assert body["detail"] == "No team globexonly in organization acme"
    services.repository_create(namespace=world.alice.namespace, name="mine", principal=as_principal(world.alice))
    problem(world.api("admin").put("repository/alice/mine/permissions/team/devs", {"role": "read"}), 400)


def test_transitive_permissions(world):
    api = world.api("admin")
    services.repository_permission_set_user(
        repository=world.app, username="bob", role=Role.WRITE, principal=as_principal(world.alice), ip=None
    )
    response = api.get("repository/acme/app/permissions/user/bob/transitive")
    assert response.status_code == 200
    assert sorted(p["role"] for p in response.json()["permissions"]) == ["read", "write"]
    problem(api.get("repository/acme/app/permissions/user/charlie/transitive"), 404)


@pytest.mark.parametrize(
    "who, status",
    [
        ("anonymous", 401),
        ("user", 404),
        ("member", 403),
        ("creator", 404),
        ("other_org", 404),
        ("admin", 200),
        ("superuser", 200),
    ],
)
def test_only_repository_admins_manage_permissions(world, who, status):
    api = world.api(who)
    paths = [
        ("get", "repository/acme/app/permissions/user/", None),
        ("get", "repository/acme/app/permissions/team/", None),
        ("put", "repository/acme/app/permissions/user/charlie", {"role": "read"}),
        ("put", "repository/acme/app/permissions/team/builders", {"role": "read"}),
        ("get", "repository/acme/app/permissions/team/devs", None),
    ]
    for method, path, body in paths:
        response = getattr(api, method)(path, body) if body is not None else getattr(api, method)(path)
        assert response.status_code == status, (method, path, response.content)
    granted = RepositoryPermission.objects.filter(repository=world.app, user=world.charlie).exists()
    assert granted == (status == 200)


def test_a_repository_admin_who_is_not_an_org_admin_manages_permissions(world):
    services.repository_permission_set_user(
        repository=world.app, username="charlie", role=Role.ADMIN, principal=as_principal(world.alice), ip=None
    )
    api = world.api("user")
    assert api.put("repository/acme/app/permissions/user/acme+bot", {"role": "write"}).status_code == 200
    assert api.get("repository/acme/app/permissions/user/").status_code == 200
