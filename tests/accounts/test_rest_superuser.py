"""Superuser management of users and organizations through /api/v1/superuser/."""

import pytest
from django.contrib.auth import authenticate

from accounts import scopes
from accounts.models import Namespace, Robot, User
from registry.models import Repository, UsageLog
from tests.accounts.conftest import PASSWORD, problem

USERS = "/api/v1/superuser/users/"
ORGS = "/api/v1/superuser/organizations/"


def test_it_lists_people_not_robots(world, api):
    world.erin.is_active = False
    world.erin.save()
    users = api(world.root).get(USERS).json()["users"]
    names = [user["username"] for user in users]
    assert names == ["alice", "bob", "charlie", "dave", "erin", "root"]
    erin = users[4]
    assert erin == {
        "kind": "user",
        "name": "erin",
        "username": "erin",
        "email": "",
        "verified": True,
        "avatar": erin["avatar"],
        "super_user": False,
        "enabled": False,
    }
    assert users[5]["super_user"] is True
    enabled = [user["username"] for user in api(world.root).get(f"{USERS}?disabled=false").json()["users"]]
    assert "erin" not in enabled and "alice" in enabled


def test_it_creates_a_user_with_a_generated_password(world, api):
    response = api(world.root).post(USERS, {"username": "frank", "email": "frank@example.com"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["username"] == "frank" and body["email"] == "frank@example.com"
    assert len(body["password"]) == 32
    frank = authenticate(username="frank", password=body["password"])
    assert frank is not None and frank.namespace.name == "frank" and not frank.is_superuser
    assert UsageLog.objects.filter(kind="user_create", actor=world.root).exists()


@pytest.mark.parametrize("username", ["alice", "acme", "Bad Name"])
def test_it_refuses_taken_or_invalid_usernames(world, api, username):
    count = User.objects.count()
    problem(api(world.root).post(USERS, {"username": username}), 400, "invalid_request")
    assert User.objects.count() == count


def test_it_reads_and_updates_a_user(world, api):
    client = api(world.root)
    assert client.get(f"{USERS}alice").json()["email"] == "alice@example.com"
    response = client.put(
        f"{USERS}alice", {"email": "new@example.com", "password": "another-password", "superuser": True}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["email"] == "new@example.com" and body["super_user"] is True and "encrypted_password" in body
    world.alice.refresh_from_db()
    assert world.alice.is_superuser and world.alice.namespace.email == "new@example.com"
    assert authenticate(username="alice", password="another-password") is not None
    assert client.put(f"{USERS}alice", {"enabled": False, "superuser": False}).json()["enabled"] is False
    world.alice.refresh_from_db()
    assert not world.alice.is_active and not world.alice.is_superuser
    kinds = set(UsageLog.objects.values_list("kind", flat=True))
    assert {"user_change_email", "user_change_password", "user_disable"} <= kinds


def test_it_refuses_a_superuser_locking_themselves_out(world, api):
    client = api(world.root)
    problem(client.put(f"{USERS}root", {"enabled": False}), 400, "invalid_request")
    problem(client.put(f"{USERS}root", {"superuser": False}), 400, "invalid_request")
    world.root.refresh_from_db()
    assert world.root.is_active and world.root.is_superuser


def test_it_validates_user_updates(world, api):
    problem(api(world.root).put(f"{USERS}alice", {"password": "short"}), 400, "invalid_request")
    problem(api(world.root).put(f"{USERS}alice", {"email": "nope"}), 400, "invalid_request")
    assert authenticate(username="alice", password=PASSWORD) is not None


def test_it_deletes_a_user_with_namespace_and_robots_but_not_superusers(world, api):
    Repository.objects.create(namespace=world.alice.namespace, name="mine")
    client = api(world.root)
    assert client.delete(f"{USERS}alice").status_code == 204
    assert not User.objects.filter(username__in=["alice", "alice+deploy"]).exists()
    assert not Namespace.objects.filter(name="alice").exists()
    assert not Repository.objects.filter(name="mine").exists()
    assert Namespace.objects.filter(name="acme").exists()
    problem(client.delete(f"{USERS}root"), 400, "invalid_request")
    problem(client.get(f"{USERS}alice"), 404, "not_found")
    problem(client.get(f"{USERS}acme+bot"), 404, "not_found")


def test_it_lists_renames_and_deletes_organizations(world, api):
    client = api(world.root)
    assert [org["name"] for org in client.get(ORGS).json()["organizations"]] == ["acme", "globex"]
    response = client.put(f"{ORGS}acme", {"name": "acme-corp", "email": "hq@acme.test"})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "acme-corp" and response.json()["email"] == "hq@acme.test"
    robot = Robot.objects.get(short_name="bot")
    assert robot.user.username == "acme-corp+bot" and robot.namespace.name == "acme-corp"
    assert api(world.alice).get("/api/v1/organization/acme-corp").json()["is_admin"] is True
    problem(client.put(f"{ORGS}acme-corp", {"name": "globex"}), 400, "invalid_request")
    problem(client.put(f"{ORGS}acme-corp", {"name": "alice"}), 400, "invalid_request")
    problem(client.put(f"{ORGS}alice", {"name": "x2"}), 404, "not_found")
    assert client.delete(f"{ORGS}globex").status_code == 204
    assert not Namespace.objects.filter(name="globex").exists()
    assert UsageLog.objects.filter(kind="org_change_name").exists()


@pytest.mark.parametrize("caller", ["alice", "bob", "erin"])
def test_it_refuses_everyone_but_superusers(world, api, caller):
    client = api(getattr(world, caller))
    problem(client.get(USERS), 403, "insufficient_scope")
    problem(client.post(USERS, {"username": "frank"}), 403, "insufficient_scope")
    problem(client.get(f"{USERS}bob"), 403, "insufficient_scope")
    problem(client.put(f"{USERS}bob", {"superuser": True}), 403, "insufficient_scope")
    problem(client.delete(f"{USERS}bob"), 403, "insufficient_scope")
    problem(client.get(ORGS), 403, "insufficient_scope")
    problem(client.put(f"{ORGS}acme", {"name": "stolen"}), 403, "insufficient_scope")
    problem(client.delete(f"{ORGS}acme"), 403, "insufficient_scope")
    assert not User.objects.filter(username="frank").exists()
    assert not User.objects.get(username="bob").is_superuser
    assert Namespace.objects.filter(name="acme").exists()


def test_it_needs_the_superuser_scope(world, api):
    problem(api().get(USERS), 401, "invalid_token")
    client = api(world.root, token_scopes=scopes.ALL - {scopes.SUPERUSER})
    problem(client.get(USERS), 403, "insufficient_scope")
    problem(client.delete(f"{USERS}bob"), 403, "insufficient_scope")
    assert api(world.root, token_scopes={scopes.SUPERUSER}).get(USERS).status_code == 200
    assert User.objects.filter(username="bob").exists()
