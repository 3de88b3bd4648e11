"""Organizations: create from the + menu, the overview, teams with roles and members, members,
settings (e-mail, time machine); outsiders get 404, members who are not admins 403."""

import pytest

from accounts.models import Namespace, Team, TeamMember
from registry.models import UsageLog
from tests.ui.conftest import text


def test_it_creates_an_organization_with_its_creator_as_owner(as_bob, bob):
    response = as_bob.post("/new/organization", {"name": "initech", "email": "it@example.com"})
    assert response.status_code == 302 and response["Location"] == "/organization/initech"
    org = Namespace.objects.get(name="initech", kind="org")
    owners = Team.objects.get(organization=org, name="owners")
    assert owners.role == "admin" and TeamMember.objects.filter(team=owners, user=bob).exists()
    assert UsageLog.objects.filter(kind="org_create", actor=bob).exists()
    page = text(as_bob.get("/organization/initech"))
    assert "Created the organization initech." in page and "owners" in page
    assert "initech" in text(as_bob.get("/organizations"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("acme", "already taken"),
        ("alice", "already taken"),
        ("No Way", "is not a valid name"),
        ("x", "is not a valid name"),
    ],
)
def test_it_explains_bad_or_taken_names(as_bob, org, name, message):
    response = as_bob.post("/new/organization", {"name": name, "email": "kept@example.com"})
    assert response.status_code == 400
    assert message in text(response)
    assert 'value="kept@example.com"' in response.content.decode()


def test_the_overview_is_public_but_teams_are_for_members(anonymous, as_bob, as_alice, org, org_repo, member_team):
    public = anonymous.get("/organization/acme")
    assert public.status_code == 200 and "Teams" not in text(public) and "acme/tools" not in text(public)
    bob_page = text(as_bob.get("/organization/acme"))
    assert "devs" in bob_page and "owners" in bob_page and "Create a team" not in bob_page
    alice_page = text(as_alice.get("/organization/acme"))
    assert "acme/tools" in alice_page and "Create a team" in alice_page
    assert as_bob.get("/organization/nope").status_code == 404


@pytest.mark.parametrize("path", ["members", "settings", "robots"])
def test_admin_pages_are_404_to_outsiders_and_403_to_members(as_alice, as_bob, as_charlie, org, member_team, path):
    assert as_alice.get(f"/organization/acme/{path}").status_code == 200
    assert as_charlie.get(f"/organization/acme/{path}").status_code == 404
    response = as_bob.get(f"/organization/acme/{path}")
    assert response.status_code == 403
    assert "Only administrators of the organization acme can do this." in text(response)


def test_team_pages_are_for_members(as_bob, as_charlie, org, member_team):
    assert as_bob.get("/organization/acme/teams/devs").status_code == 200
    assert as_charlie.get("/organization/acme/teams/devs").status_code == 404
    assert as_bob.post("/organization/acme/teams/devs/members", {"username": "charlie"}).status_code == 403
    assert as_bob.get("/organization/acme/teams/ghosts").status_code == 404


def test_it_creates_a_team_and_manages_its_members_and_role(as_alice, alice, org, bob, alice_robot):
    response = as_alice.post("/organization/acme/teams", {"name": "qa", "role": "creator", "description": "Testers"})
    assert response.status_code == 302 and response["Location"] == "/organization/acme/teams/qa"
    team = Team.objects.get(organization=org, name="qa")
    assert (team.role, team.description) == ("creator", "Testers")
    assert as_alice.post("/organization/acme/teams/qa/members", {"username": "bob"}).status_code == 302
    assert TeamMember.objects.filter(team=team, user=bob).exists()
    assert "bob" in text(as_alice.get("/organization/acme/teams/qa"))
    response = as_alice.post("/organization/acme/teams/qa/update", {"role": "member", "description": "QA"})
    assert response.status_code == 302
    team.refresh_from_db()
    assert (team.role, team.description) == ("member", "QA")
    assert as_alice.post("/organization/acme/teams/qa/members/bob/remove").status_code == 302
    assert not TeamMember.objects.filter(team=team, user=bob).exists()
    assert as_alice.post("/organization/acme/teams/qa/delete").status_code == 302
    assert not Team.objects.filter(pk=team.pk).exists()


def test_team_errors_are_explained(as_alice, org, alice_robot):
    response = as_alice.post("/organization/acme/teams", {"name": "owners", "role": "member"})
    assert response.status_code == 400 and "The team owners already exists in acme." in text(response)
    response = as_alice.post("/organization/acme/teams", {"name": "Bad Team", "role": "member", "description": "kept"})
    assert response.status_code == 400 and "is not a valid team name" in text(response)
    assert 'value="kept"' in response.content.decode()
    response = as_alice.post("/organization/acme/teams/owners/members", {"username": "ghost"})
    assert response.status_code == 400 and "There is no user or robot named “ghost”." in text(response)
    robot, _ = alice_robot
    response = as_alice.post("/organization/acme/teams/owners/members", {"username": robot.username})
    assert response.status_code == 400 and "not a member of the organization" in text(response)


def test_the_last_admin_cannot_be_removed(as_alice, org):
    response = as_alice.post("/organization/acme/teams/owners/update", {"role": "member", "description": ""})
    assert response.status_code == 400
    assert "at least one user in a team with the admin role" in text(response)
    assert Team.objects.get(organization=org, name="owners").role == "admin"
    response = as_alice.post("/organization/acme/teams/owners/members/alice/remove")
    assert response.status_code == 400
    assert TeamMember.objects.filter(team__name="owners", user__username="alice").exists()
    response = as_alice.post("/organization/acme/members/alice/remove", follow=True)
    assert "at least one user in a team with the admin role" in text(response)


def test_admins_see_and_remove_members(as_alice, org, member_team, bob):
    page = text(as_alice.get("/organization/acme/members"))
    assert "bob devs" in page and "alice owners" in page
    assert as_alice.post("/organization/acme/members/bob/remove").status_code == 302
    assert not TeamMember.objects.filter(team__organization=org, user=bob).exists()
    assert as_alice.post("/organization/acme/members/charlie/remove").status_code == 404


def test_settings_change_email_and_time_machine(as_alice, org):
    page = as_alice.get("/organization/acme/settings")
    assert '<option value="1209600" selected>2 weeks</option>' in page.content.decode()
    assert as_alice.post("/organization/acme/settings", {"email": "ops@example.com"}).status_code == 302
    assert as_alice.post("/organization/acme/settings", {"seconds": "86400"}).status_code == 302
    org.refresh_from_db()
    assert (org.email, org.time_machine_seconds) == ("ops@example.com", 86400)
    assert UsageLog.objects.filter(kind="org_change_tag_expiration", namespace=org).exists()
    response = as_alice.post("/organization/acme/settings", {"seconds": "12345"})
    assert response.status_code == 400 and "Select a valid choice" in text(response)
    response = as_alice.post("/organization/acme/settings", {"email": "not-an-address"})
    assert response.status_code == 400 and 'value="not-an-address"' in response.content.decode()
