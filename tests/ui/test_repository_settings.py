"""The Settings tab: description (writers), visibility, user/team/robot permissions and delete
(admins); each change is audited, each error explained with the input kept, each missing role a 403."""

import pytest

from accounts import services as account_services
from registry.models import Repository, RepositoryPermission, Role, UsageLog
from tests.registry.conftest import grant
from tests.ui.conftest import text


def url(repository, action: str) -> str:
    return f"/repository/{repository.full_name}/-/{action}"


def test_admins_see_every_section(as_alice, private_repo):
    body = text(as_alice.get("/repository/alice/secret?tab=settings"))
    for heading in ("Description", "Permissions", "Visibility", "Delete repository"):
        assert heading in body


def test_writers_change_the_description_only(as_bob, bob, private_repo):
    grant(private_repo, bob, Role.WRITE)
    page = text(as_bob.get("/repository/alice/secret?tab=settings"))
    assert "Save description" in page and "Delete repository" not in page and "Permissions" not in page
    response = as_bob.post(url(private_repo, "description"), {"description": "**new**"})
    assert response.status_code == 302 and response["Location"] == "/repository/alice/secret?tab=settings"
    private_repo.refresh_from_db()
    assert private_repo.description == "**new**"
    assert UsageLog.objects.filter(kind="set_repo_description", actor=bob).exists()
    for action, data in (("visibility", {"visibility": "public"}), ("delete", {"confirm": "alice/secret"})):
        response = as_bob.post(url(private_repo, action), data)
        assert response.status_code == 403
        assert "Only administrators of alice/secret can do this." in text(response)
    assert Repository.objects.filter(pk=private_repo.pk, visibility="private").exists()


def test_readers_cannot_change_the_description(as_bob, bob, private_repo):
    grant(private_repo, bob, Role.READ)
    response = as_bob.post(url(private_repo, "description"), {"description": "x"})
    assert response.status_code == 403
    assert "You need write permission on alice/secret to do this." in text(response)


def test_outsiders_get_404_and_anonymous_visitors_sign_in(as_bob, anonymous, private_repo):
    assert as_bob.post(url(private_repo, "description"), {"description": "x"}).status_code == 404
    response = anonymous.post(url(private_repo, "description"), {"description": "x"})
    assert response.status_code == 302 and "/signin" in response["Location"]


def test_it_changes_visibility(as_alice, alice, private_repo, anonymous):
    response = as_alice.post(url(private_repo, "visibility"), {"visibility": "public"})
    assert response.status_code == 302
    assert anonymous.get("/repository/alice/secret").status_code == 200
    assert UsageLog.objects.filter(kind="change_repo_visibility", actor=alice).exists()
    assert as_alice.post(url(private_repo, "visibility"), {"visibility": "secretive"}).status_code == 400


def test_it_grants_changes_and_removes_a_user_permission(as_alice, bob, private_repo, as_bob):
    response = as_alice.post(url(private_repo, "permissions"), {"kind": "user", "name": "bob", "role": "read"})
    assert response.status_code == 302
    assert as_bob.get("/repository/alice/secret").status_code == 200
    as_alice.post(url(private_repo, "permissions"), {"kind": "user", "name": "bob", "role": "write"})
    assert RepositoryPermission.objects.get(repository=private_repo, user=bob).role == "write"
    page = text(as_alice.get("/repository/alice/secret?tab=settings"))
    assert "User bob" in page
    response = as_alice.post(url(private_repo, "permissions/delete"), {"kind": "user", "name": "bob"})
    assert response.status_code == 302
    assert as_bob.get("/repository/alice/secret").status_code == 404


def test_it_grants_a_robot_of_the_namespace(as_alice, alice_robot, private_repo):
    robot, _ = alice_robot
    response = as_alice.post(
        url(private_repo, "permissions"), {"kind": "user", "name": robot.username, "role": "write"}
    )
    assert response.status_code == 302
    assert RepositoryPermission.objects.get(repository=private_repo, user=robot).role == "write"
    assert "Robot alice+deploy" in text(as_alice.get("/repository/alice/secret?tab=settings"))


def test_it_grants_a_team_of_the_organization(as_alice, org_repo, member_team, as_bob):
    assert as_bob.get("/repository/acme/tools").status_code == 404
    response = as_alice.post(url(org_repo, "permissions"), {"kind": "team", "name": "devs", "role": "read"})
    assert response.status_code == 302
    assert as_bob.get("/repository/acme/tools").status_code == 200
    as_alice.post(url(org_repo, "permissions/delete"), {"kind": "team", "name": "devs"})
    assert as_bob.get("/repository/acme/tools").status_code == 404


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "user", "name": "nobody", "role": "read"}, "Invalid username: nobody"),
        ({"kind": "user", "name": "alice", "role": "read"}, "Namespace owner must always be admin."),
        ({"kind": "team", "name": "ghosts", "role": "read"}, "No team ghosts in organization alice"),
        ({"kind": "user", "name": "bob", "role": "owner"}, "Select a valid choice."),
    ],
)
def test_permission_errors_are_explained_with_the_input_kept(as_alice, bob, private_repo, data, message):
    response = as_alice.post(url(private_repo, "permissions"), data)
    assert response.status_code == 400
    assert message in text(response)
    assert f'value="{data["name"]}"' in response.content.decode()
    assert not RepositoryPermission.objects.filter(repository=private_repo).exclude(user__username="alice").exists()


def test_a_foreign_robot_is_refused(as_alice, bob, private_repo):
    robot, _ = account_services.robot_create(namespace=bob.namespace, short_name="bot")
    response = as_alice.post(url(private_repo, "permissions"), {"kind": "user", "name": robot.username, "role": "read"})
    assert response.status_code == 400
    assert "Cannot add robot bob+bot under namespace alice" in text(response)


def test_removing_a_missing_permission_is_explained(as_alice, private_repo):
    response = as_alice.post(url(private_repo, "permissions/delete"), {"kind": "user", "name": "bob"})
    assert response.status_code == 400
    assert "User does not have permission for repo." in text(response)


def test_delete_needs_the_name_typed(as_alice, alice, private_repo):
    response = as_alice.post(url(private_repo, "delete"), {"confirm": "alice/other"})
    assert response.status_code == 400
    assert "Type alice/secret exactly to delete this repository." in text(response)
    assert 'value="alice/other"' in response.content.decode()
    assert Repository.objects.filter(pk=private_repo.pk).exists()
    response = as_alice.post(url(private_repo, "delete"), {"confirm": "alice/secret"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Repository.objects.filter(pk=private_repo.pk).exists()
    assert UsageLog.objects.filter(kind="delete_repo", actor=alice).exists()
    assert "Deleted the repository alice/secret." in text(as_alice.get("/"))


def test_organization_admins_administer_its_repositories(org, org_repo, bob, as_bob):
    assert as_bob.get("/repository/acme/tools").status_code == 404
    account_services.team_member_add(team=org.teams.get(name="owners"), user=bob)
    # In the owners team (role admin): admin of every repository of acme, with no direct grant.
    assert not RepositoryPermission.objects.filter(repository=org_repo, user=bob).exists()
    assert "Delete repository" in text(as_bob.get("/repository/acme/tools?tab=settings"))


def test_settings_forms_escape_what_they_show(as_alice, alice, private_repo):
    as_alice.post(url(private_repo, "description"), {"description": '"><script>alert(1)</script>'})
    body = as_alice.get("/repository/alice/secret?tab=settings").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
