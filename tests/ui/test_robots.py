"""Robot accounts of an organization and of the user's own namespace: create, token shown only
on request (and never cached), regenerate, delete; the token logs in to the registry."""

from django.test import Client

from accounts import services as account_services
from accounts.models import Robot
from registry.models import UsageLog
from tests.conftest import basic
from tests.ui.conftest import text


def registry_login(username: str, password: str) -> int:
    return Client().get("/v2/auth?service=testserver", HTTP_AUTHORIZATION=basic(username, password)).status_code


def test_it_creates_an_organization_robot_and_shows_its_token_on_request(as_alice, alice, org):
    response = as_alice.post("/organization/acme/robots", {"short_name": "ci", "description": "CI pushes"})
    assert response.status_code == 302 and response["Location"] == "/organization/acme/robots/ci"
    robot = Robot.objects.get(namespace=org, short_name="ci")
    token = account_services.robot_token(robot=robot)
    page = as_alice.get(response["Location"])
    assert token not in page.content.decode()
    assert "Show token" in text(page)
    shown = as_alice.get("/organization/acme/robots/ci/token")
    assert token in shown.content.decode()
    assert "no-cache" in shown["Cache-Control"] and "no-store" in shown["Cache-Control"]
    assert f"podman login -u=&#x27;acme+ci&#x27; -p=&#x27;{token}&#x27; testserver" in shown.content.decode()
    assert registry_login("acme+ci", token) == 200
    assert "acme+ci" in text(as_alice.get("/organization/acme/robots"))


def test_the_token_fragment_for_htmx(as_alice, org):
    account_services.robot_create(namespace=org, short_name="ci")
    fragment = as_alice.get("/organization/acme/robots/ci/token", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="robot-token")
    body = fragment.content.decode()
    assert 'id="robot-token-value"' in body and "<html" not in body


def test_regenerating_replaces_the_token(as_alice, alice, org):
    user, old = account_services.robot_create(namespace=org, short_name="ci")
    response = as_alice.post("/organization/acme/robots/ci/regenerate")
    assert response.status_code == 200
    user.robot.refresh_from_db()
    new = account_services.robot_token(robot=user.robot)
    assert new != old and new in response.content.decode()
    assert registry_login("acme+ci", old) == 401 and registry_login("acme+ci", new) == 200
    assert UsageLog.objects.filter(kind="regenerate_robot_token", actor=alice).exists()


def test_it_deletes_a_robot(as_alice, org):
    account_services.robot_create(namespace=org, short_name="ci")
    response = as_alice.post("/organization/acme/robots/ci/delete")
    assert response.status_code == 302 and response["Location"] == "/organization/acme/robots"
    assert not Robot.objects.filter(short_name="ci").exists()


def test_robot_errors_are_explained(as_alice, org):
    account_services.robot_create(namespace=org, short_name="ci")
    response = as_alice.post("/organization/acme/robots", {"short_name": "ci", "description": "again"})
    assert response.status_code == 400 and "Robot 'acme+ci' already exists" in text(response)
    response = as_alice.post("/organization/acme/robots", {"short_name": "No!", "description": "kept"})
    assert response.status_code == 400 and "Invalid robot name" in text(response)
    assert 'value="kept"' in response.content.decode()


def test_organization_robots_are_for_admins_only(as_bob, as_charlie, org, member_team):
    account_services.robot_create(namespace=org, short_name="ci")
    for path in ("", "/ci", "/ci/token"):
        assert as_charlie.get(f"/organization/acme/robots{path}").status_code == 404
        assert as_bob.get(f"/organization/acme/robots{path}").status_code == 403
    assert as_bob.post("/organization/acme/robots/ci/regenerate").status_code == 403
    assert as_bob.post("/organization/acme/robots/ci/delete").status_code == 403
    assert as_charlie.post("/organization/acme/robots", {"short_name": "mine"}).status_code == 404


def test_users_have_robots_of_their_own(as_bob, bob, as_alice, alice_robot):
    response = as_bob.post("/user/robots", {"short_name": "deploy", "description": ""})
    assert response.status_code == 302 and response["Location"] == "/user/robots/deploy"
    robot = Robot.objects.get(namespace=bob.namespace, short_name="deploy")
    assert account_services.robot_token(robot=robot) in as_bob.get("/user/robots/deploy/token").content.decode()
    # alice's robot of the same short name is not bob's to see.
    assert as_bob.get("/user/robots/nothing").status_code == 404
    _, alice_token = alice_robot
    assert alice_token not in as_bob.get("/user/robots/deploy/token").content.decode()
    assert "alice+deploy" in text(as_alice.get("/user/robots"))
    assert "alice+deploy" not in text(as_bob.get("/user/robots"))
