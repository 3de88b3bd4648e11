"""Teams and team members through /api/v1."""

import pytest

from accounts import scopes
from accounts import services as account_services
from accounts.models import Team, TeamMember
from registry.models import Repository, RepositoryPermission, UsageLog
from tests.accounts.conftest import problem

TEAM = "/api/v1/organization/acme/team"


def test_it_creates_a_team(world, api):
    response = api(world.alice).put(f"{TEAM}/deployers", {"role": "creator", "description": "Ship it"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "name": "deployers",
        "description": "Ship it",
        "can_view": True,
        "role": "creator",
        "avatar": body["avatar"],
        "new_team": True,
    }
    assert body["avatar"]["kind"] == "team"
    team = Team.objects.get(organization=world.acme, name="deployers")
    assert team.role == Team.Role.CREATOR and team.description == "Ship it"
    assert UsageLog.objects.filter(kind="org_create_team", namespace=world.acme).exists()


def test_it_updates_role_and_description_and_ignores_extra_fields(world, api):
    response = api(world.alice).put(
        f"{TEAM}/readers", {"name": "readers", "role": "creator", "description": "Now creators"}
    )
    body = response.json()
    assert response.status_code == 200 and body["new_team"] is False and body["role"] == "creator"
    world.readers.refresh_from_db()
    assert world.readers.role == Team.Role.CREATOR and world.readers.description == "Now creators"
    kinds = set(UsageLog.objects.values_list("kind", flat=True))
    assert {"org_set_team_role", "org_set_team_description"} <= kinds


@pytest.mark.parametrize(
    "name,body",
    [
        ("deployers", {"description": "no role"}),
        ("deployers", {"role": "owner"}),
        ("Bad Team!", {"role": "member"}),
    ],
)
def test_it_validates_team_input(world, api, name, body):
    problem(api(world.alice).put(f"{TEAM}/{name}", body), 400, "invalid_request")
    assert not Team.objects.filter(organization=world.acme, name__in=["deployers", "Bad Team!"]).exists()


def test_it_refuses_to_demote_or_delete_the_last_admin_team(world, api):
    client = api(world.alice)
    problem(client.put(f"{TEAM}/owners", {"role": "member"}), 400, "invalid_request")
    problem(client.delete(f"{TEAM}/owners"), 400, "invalid_request")
    owners = Team.objects.get(organization=world.acme, name="owners")
    assert owners.role == Team.Role.ADMIN


def test_it_allows_demoting_an_admin_team_when_another_admin_remains(world, api):
    client = api(world.alice)
    client.put(f"{TEAM}/admins2", {"role": "admin"})
    client.put(f"{TEAM}/admins2/members/bob")
    assert client.put(f"{TEAM}/owners", {"role": "member"}).status_code == 200
    # alice was admin only through owners: the demotion took her rights at once.
    problem(client.delete(f"{TEAM}/owners"), 403, "insufficient_scope")
    assert api(world.bob).delete(f"{TEAM}/owners").status_code == 204


def test_it_deletes_a_team_with_its_permissions(world, api):
    repo = Repository.objects.create(namespace=world.acme, name="app")
    RepositoryPermission.objects.create(repository=repo, team=world.readers, role="read")
    assert api(world.alice).delete(f"{TEAM}/readers").status_code == 204
    assert not Team.objects.filter(pk=world.readers.pk).exists()
    assert not RepositoryPermission.objects.filter(repository=repo).exists()
    assert UsageLog.objects.filter(kind="org_delete_team", metadata__team="readers").exists()
    problem(api(world.alice).delete(f"{TEAM}/readers"), 404, "not_found")


def test_it_lists_team_members_for_members_of_the_team(world, api):
    account_services.team_member_add(team=world.readers, user=world.acme_bot)
    body = api(world.bob).get(f"{TEAM}/readers/members").json()
    assert body["name"] == "readers" and body["can_edit"] is False
    assert [(m["name"], m["kind"], m["is_robot"], m["invited"]) for m in body["members"]] == [
        ("acme+bot", "user", True, False),
        ("bob", "user", False, False),
    ]
    assert api(world.alice).get(f"{TEAM}/readers/members?includePending=true").json()["can_edit"] is True


def test_it_hides_a_team_from_org_members_outside_it(world, api):
    problem(api(world.dave).get(f"{TEAM}/readers/members"), 403, "insufficient_scope")
    problem(api(world.charlie).get(f"{TEAM}/readers/members"), 404, "not_found")
    problem(api(world.alice).get(f"{TEAM}/nosuch/members"), 404, "not_found")


def test_it_adds_users_and_the_organizations_robots(world, api):
    client = api(world.alice)
    response = client.put(f"{TEAM}/readers/members/erin")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "name": "erin",
        "kind": "user",
        "is_robot": False,
        "avatar": response.json()["avatar"],
        "invited": False,
    }
    assert client.put(f"{TEAM}/readers/members/acme+bot").json()["is_robot"] is True
    assert set(world.readers.members.values_list("username", flat=True)) == {"bob", "erin", "acme+bot"}
    assert UsageLog.objects.filter(kind="org_add_team_member", metadata__member="erin").exists()
    # Adding again changes nothing and logs nothing.
    client.put(f"{TEAM}/readers/members/erin")
    assert UsageLog.objects.filter(kind="org_add_team_member", metadata__member="erin").count() == 1


def test_it_refuses_robots_of_other_namespaces_and_unknown_users(world, api):
    client = api(world.alice)
    other_bot, _ = account_services.robot_create(namespace=world.globex, short_name="spy")
    problem(client.put(f"{TEAM}/readers/members/globex+spy"), 400, "invalid_request")
    problem(client.put(f"{TEAM}/readers/members/alice+deploy"), 400, "invalid_request")
    problem(client.put(f"{TEAM}/readers/members/nobody"), 400, "invalid_request")
    problem(client.put(f"{TEAM}/nosuch/members/erin"), 404, "not_found")
    assert not TeamMember.objects.filter(user__in=[other_bot, world.alice_bot]).exists()


def test_it_removes_members(world, api):
    client = api(world.alice)
    assert client.delete(f"{TEAM}/readers/members/bob").status_code == 204
    assert not world.readers.members.exists()
    assert UsageLog.objects.filter(kind="org_remove_team_member", metadata__member="bob").exists()
    problem(client.delete(f"{TEAM}/readers/members/bob"), 404, "not_found")
    problem(client.delete(f"{TEAM}/readers/members/nobody"), 404, "not_found")


def test_it_refuses_removing_the_last_admin_from_owners(world, api):
    problem(api(world.alice).delete(f"{TEAM}/owners/members/alice"), 400, "invalid_request")
    assert Team.objects.get(organization=world.acme, name="owners").members.filter(pk=world.alice.pk).exists()


def test_it_lists_a_teams_repository_permissions(world, api):
    repo = Repository.objects.create(namespace=world.acme, name="app", visibility="public")
    RepositoryPermission.objects.create(repository=repo, team=world.readers, role="write")
    body = api(world.alice).get(f"{TEAM}/readers/permissions").json()
    assert body == {"permissions": [{"repository": {"name": "app", "is_public": True}, "role": "write"}]}
    problem(api(world.bob).get(f"{TEAM}/readers/permissions"), 403, "insufficient_scope")


@pytest.mark.parametrize("caller,status", [("bob", 403), ("dave", 403), ("charlie", 404), ("erin", 404)])
def test_it_refuses_team_changes_by_non_admins(world, api, caller, status):
    client = api(getattr(world, caller))
    error = "not_found" if status == 404 else "insufficient_scope"
    problem(client.put(f"{TEAM}/readers", {"role": "admin"}), status, error)
    problem(client.delete(f"{TEAM}/readers"), status, error)
    problem(client.put(f"{TEAM}/readers/members/{caller}"), status, error)
    problem(client.delete(f"{TEAM}/readers/members/bob"), status, error)
    world.readers.refresh_from_db()
    assert world.readers.role == Team.Role.MEMBER
    assert list(world.readers.members.values_list("username", flat=True)) == ["bob"]


def test_it_needs_org_admin_scope_for_teams(world, api):
    client = api(world.alice, token_scopes={scopes.USER_ADMIN, scopes.REPO_ADMIN})
    problem(client.put(f"{TEAM}/deployers", {"role": "member"}), 403, "insufficient_scope")
    problem(client.get(f"{TEAM}/readers/members"), 403, "insufficient_scope")
    problem(client.put(f"{TEAM}/readers/members/erin"), 403, "insufficient_scope")
    assert not Team.objects.filter(name="deployers").exists()
