"""Organizations through /api/v1: create, Quay's organization view, update, delete, members."""

import pytest

from accounts import scopes
from accounts.models import Namespace, Robot, Team, User
from registry.models import (
    Manifest,
    ManifestChild,
    Repository,
    RepositoryPermission,
    Tag,
    UsageLog,
)
from tests.accounts.conftest import problem


def test_it_creates_an_organization_owned_by_the_caller(world, api):
    response = api(world.erin).post("/api/v1/organization/", {"name": "initech", "email": "it@initech.test"})
    assert response.status_code == 201 and response.json() == "Created"
    org = Namespace.objects.get(name="initech")
    assert org.is_organization and org.email == "it@initech.test"
    owners = Team.objects.get(organization=org, name="owners")
    assert owners.role == Team.Role.ADMIN and list(owners.members.all()) == [world.erin]
    entry = UsageLog.objects.get(kind="org_create")
    assert entry.namespace == org and entry.actor == world.erin and entry.metadata["namespace"] == "initech"


@pytest.mark.parametrize("name", ["acme", "alice", "alice+deploy", "Bad Name", "x"])
def test_it_refuses_taken_or_invalid_organization_names(world, api, name):
    before = Namespace.objects.count()
    problem(api(world.erin).post("/api/v1/organization/", {"name": name}), 400, "invalid_request")
    assert Namespace.objects.count() == before


def test_it_needs_user_admin_scope_to_create_an_organization(world, api):
    client = api(world.erin, token_scopes={scopes.ORG_ADMIN, scopes.REPO_ADMIN})
    problem(client.post("/api/v1/organization/", {"name": "initech"}), 403, "insufficient_scope")
    problem(api().post("/api/v1/organization/", {"name": "initech"}), 401, "invalid_token")
    assert not Namespace.objects.filter(name="initech").exists()


def test_it_shows_admins_the_full_organization_view(world, api):
    body = api(world.alice).get("/api/v1/organization/acme").json()
    assert body["name"] == "acme" and body["email"] == "ops@acme.test"
    assert body["is_admin"] is True and body["is_member"] is True
    assert body["avatar"]["kind"] == "org"
    assert body["ordered_teams"] == ["owners", "readers", "builders"]
    owners = body["teams"]["owners"]
    assert owners == {
        "name": "owners",
        "description": "",
        "role": "admin",
        "avatar": owners["avatar"],
        "can_view": True,
        "repo_count": 0,
        "member_count": 1,
        "is_synced": False,
    }
    assert body["teams"]["builders"]["role"] == "creator"
    assert body["tag_expiration_s"] == world.acme.time_machine_seconds
    assert body["invoice_email"] is False and body["is_free_account"] is True


def test_it_counts_team_members_and_repositories(world, api):
    repo = Repository.objects.create(namespace=world.acme, name="app")
    RepositoryPermission.objects.create(repository=repo, team=world.readers, role="read")
    teams = api(world.alice).get("/api/v1/organization/acme").json()["teams"]
    assert teams["readers"]["repo_count"] == 1 and teams["readers"]["member_count"] == 1
    assert teams["builders"]["repo_count"] == 0


def test_it_shows_members_the_teams_without_admin_fields(world, api):
    body = api(world.bob).get("/api/v1/organization/acme").json()
    assert body["is_admin"] is False and body["is_member"] is True
    assert body["email"] == ""
    assert "tag_expiration_s" not in body and "invoice_email" not in body
    assert body["teams"]["readers"]["can_view"] is True
    assert body["teams"]["owners"]["can_view"] is False


@pytest.mark.parametrize("caller", ["anonymous", "erin", "charlie"])
def test_it_shows_outsiders_only_the_public_organization_view(world, api, caller):
    client = api() if caller == "anonymous" else api(getattr(world, caller))
    body = client.get("/api/v1/organization/acme").json()
    assert body == {
        "name": "acme",
        "email": "",
        "avatar": body["avatar"],
        "is_admin": False,
        "is_member": False,
    }


@pytest.mark.parametrize("name", ["nosuch", "alice"])
def test_it_answers_404_for_what_is_not_an_organization(world, api, name):
    problem(api(world.alice).get(f"/api/v1/organization/{name}"), 404, "not_found")


def test_it_updates_email_and_tag_expiration(world, api):
    response = api(world.alice).put(
        "/api/v1/organization/acme", {"email": "new@acme.test", "tag_expiration_s": 86400, "invoice_email": True}
    )
    assert response.status_code == 200, response.content
    assert response.json()["email"] == "new@acme.test" and response.json()["tag_expiration_s"] == 86400
    world.acme.refresh_from_db()
    assert world.acme.email == "new@acme.test" and world.acme.time_machine_seconds == 86400
    kinds = set(UsageLog.objects.filter(namespace=world.acme).values_list("kind", flat=True))
    assert {"org_change_email", "org_change_tag_expiration"} <= kinds


@pytest.mark.parametrize(
    "body",
    [
        {"tag_expiration_s": -1},
        {"tag_expiration_s": "soon"},
        {"tag_expiration_s": 3600},
        {"email": "new@acme.test", "tag_expiration_s": 3600},
        {"email": "not-an-email"},
    ],
)
def test_it_validates_organization_updates(world, api, body):
    problem(api(world.alice).put("/api/v1/organization/acme", body), 400, "invalid_request")
    world.acme.refresh_from_db()
    assert world.acme.email == "ops@acme.test"


@pytest.mark.parametrize("caller", ["bob", "dave", "charlie", "erin"])
def test_it_refuses_updates_and_deletes_by_non_admins(world, api, caller):
    client = api(getattr(world, caller))
    problem(client.put("/api/v1/organization/acme", {"email": "x@evil.test"}), 403, "insufficient_scope")
    problem(client.delete("/api/v1/organization/acme"), 403, "insufficient_scope")
    world.acme.refresh_from_db()
    assert world.acme.email == "ops@acme.test"


def test_it_needs_org_admin_scope_for_updates(world, api):
    client = api(world.alice, token_scopes={scopes.USER_ADMIN, scopes.REPO_ADMIN})
    problem(client.put("/api/v1/organization/acme", {"email": "x@acme.test"}), 403, "insufficient_scope")
    problem(client.delete("/api/v1/organization/acme"), 403, "insufficient_scope")
    assert Namespace.objects.filter(name="acme").exists()


def test_it_deletes_an_organization_with_its_repositories_robots_and_teams(world, api):
    repo = Repository.objects.create(namespace=world.acme, name="app")
    child = Manifest.objects.create(repository=repo, digest="sha256:" + "1" * 64, media_type="m", raw=b"{}", size=2)
    index = Manifest.objects.create(repository=repo, digest="sha256:" + "2" * 64, media_type="i", raw=b"{}", size=2)
    ManifestChild.objects.create(manifest=index, child=child)
    Tag.objects.create(repository=repo, name="latest", manifest=index, lifetime_start=index.created)
    RepositoryPermission.objects.create(repository=repo, user=world.acme_bot, role="write")

    response = api(world.alice).delete("/api/v1/organization/acme")
    assert response.status_code == 204
    assert not Namespace.objects.filter(name="acme").exists()
    assert not Repository.objects.filter(pk=repo.pk).exists()
    assert not User.objects.filter(username="acme+bot").exists()
    assert not Team.objects.filter(name="readers").exists()
    assert User.objects.filter(username="bob").exists()
    assert Robot.objects.filter(user=world.alice_bot).exists()
    entry = UsageLog.objects.get(kind="org_delete")
    assert entry.metadata == {"namespace": "acme"} and entry.actor == world.alice


def test_it_lets_a_superuser_manage_any_organization(world, api):
    response = api(world.root).put("/api/v1/organization/acme", {"email": "root@acme.test"})
    assert response.status_code == 200 and response.json()["is_admin"] is True
    assert api(world.root).delete("/api/v1/organization/globex").status_code == 204


def test_it_ignores_superuser_powers_without_the_superuser_scope(world, api):
    client = api(world.root, token_scopes={scopes.ORG_ADMIN})
    problem(client.put("/api/v1/organization/acme", {"email": "root@acme.test"}), 403, "insufficient_scope")
    problem(client.get("/api/v1/organization/acme/members"), 404, "not_found")


def test_it_lists_human_members_with_teams_and_repositories(world, api):
    repo = Repository.objects.create(namespace=world.acme, name="app")
    RepositoryPermission.objects.create(repository=repo, user=world.bob, role="write")
    other = Repository.objects.create(namespace=world.globex, name="elsewhere")
    RepositoryPermission.objects.create(repository=other, user=world.bob, role="read")
    members = api(world.alice).get("/api/v1/organization/acme/members").json()["members"]
    by_name = {member["name"]: member for member in members}
    assert set(by_name) == {"alice", "bob", "dave"}
    assert by_name["bob"]["kind"] == "user"
    assert [team["name"] for team in by_name["bob"]["teams"]] == ["readers"]
    assert by_name["bob"]["repositories"] == ["app"]
    assert by_name["alice"]["repositories"] == []


def test_it_reads_and_removes_one_member(world, api):
    client = api(world.alice)
    body = client.get("/api/v1/organization/acme/members/dave").json()
    assert body["name"] == "dave" and [team["name"] for team in body["teams"]] == ["builders"]
    robot = client.get("/api/v1/organization/acme/members/acme+bot").json()
    assert robot["kind"] == "robot" and robot["teams"] == []
    problem(client.get("/api/v1/organization/acme/members/erin"), 404, "not_found")
    problem(client.get("/api/v1/organization/acme/members/alice+deploy"), 404, "not_found")

    repo = Repository.objects.create(namespace=world.acme, name="app")
    RepositoryPermission.objects.create(repository=repo, user=world.dave, role="read")
    assert client.delete("/api/v1/organization/acme/members/dave").status_code == 204
    assert not world.builders.members.filter(pk=world.dave.pk).exists()
    assert not RepositoryPermission.objects.filter(user=world.dave).exists()


def test_it_refuses_to_remove_the_last_admin(world, api):
    problem(api(world.alice).delete("/api/v1/organization/acme/members/alice"), 400, "invalid_request")
    assert Team.objects.get(organization=world.acme, name="owners").members.filter(pk=world.alice.pk).exists()
