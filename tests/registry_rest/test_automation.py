"""The REST API used the way automation uses Quay's (issue #4 item 5), over real HTTP.

A fresh live server (the production entry point, no seeded data) is bootstrapped through
``POST /api/v1/user/initialize``, whose token then creates an organization, a team, a robot and
a repository and grants the robot write through the permissions API. skopeo pushes with the
robot's credentials, and the push shows up in the repository's usage log. The same token logs
in to the registry as ``$oauthtoken``.
"""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e import images
from tests.e2e.conftest import (
    SEED_SCRIPT,
    ClientError,
    LiveRegistry,
    clients,  # noqa: F401 (fixture)
    live_server,
)

pytestmark = pytest.mark.e2e

ADMIN_PASSWORD = "automation-password-1"


class EmptyRegistry(LiveRegistry):
    """A live server that starts with no users at all, as an installation does."""

    def shell(self, code: str) -> str:
        if code.endswith(SEED_SCRIPT):
            return "SEED {}"
        return super().shell(code)


@pytest.fixture(scope="module")
def empty_registry(tmp_path_factory):
    yield from live_server(tmp_path_factory, "automation", EmptyRegistry)


class Automation:
    """A script's HTTP session against /api/v1 with a bearer token."""

    def __init__(self, base: str, token: str | None = None):
        self.base = base
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, expected: int, **kwargs) -> dict | None:
        response = self.session.request(method, f"{self.base}/api/v1/{path}", timeout=30, **kwargs)
        assert response.status_code == expected, (method, path, response.status_code, response.text[:500])
        return response.json() if response.content else None


def test_automation_sets_up_an_organization_and_a_robot_pushes(empty_registry, clients):  # noqa: F811
    registry = empty_registry
    anonymous = Automation(registry.url)
    first = anonymous.call(
        "post",
        "user/initialize",
        200,
        json={"username": "quayadmin", "password": ADMIN_PASSWORD, "email": "admin@example.com", "access_token": True},
    )
    api = Automation(registry.url, first["access_token"])

    api.call("post", "organization/", 201, json={"name": "automation", "email": "ops@example.com"})
    team = api.call("put", "organization/automation/team/deployers", 200, json={"role": "member", "description": "CD"})
    assert team["name"] == "deployers" and team["role"] == "member"
    robot = api.call("put", "organization/automation/robots/pusher", 201, json={"description": "CI pushes"})
    assert robot["name"] == "automation+pusher" and robot["token"]
    api.call("put", "organization/automation/team/deployers/members/automation+pusher", 200)
    created = api.call(
        "post",
        "repository",
        201,
        json={"repository": "service", "namespace": "automation", "visibility": "private", "description": "svc"},
    )
    assert created == {"namespace": "automation", "name": "service", "kind": "image"}
    api.call("put", "repository/automation/service/permissions/team/deployers", 200, json={"role": "read"})

    layout = images.write_oci_layout(clients.root / "automation-layout", images.hand_image(layer_count=1))
    ref = f"docker://{registry.host}/automation/service:v1"
    robot_creds = f"automation+pusher:{robot['token']}"

    def push(creds: str, destination: str, check: bool = True):
        digest_file = clients.root / "tmp" / "automation-digest"
        digest_file.unlink(missing_ok=True)
        result = clients.skopeo(
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            "--digestfile",
            str(digest_file),
            f"oci:{layout}:latest",
            destination,
            check=check,
        )
        return result, (digest_file.read_text().strip() if digest_file.exists() else None)

    # Read through the team is not enough to push.
    refused, _ = push(robot_creds, ref, check=False)
    assert refused.returncode != 0, refused.stdout

    granted = api.call(
        "put", "repository/automation/service/permissions/user/automation+pusher", 200, json={"role": "write"}
    )
    assert granted["role"] == "write" and granted["is_robot"] is True and granted["is_org_member"] is True
    _, digest = push(robot_creds, ref)

    repo = api.call("get", "repository/automation/service", 200)
    assert repo["tags"]["v1"]["manifest_digest"] == digest

    logs = api.call("get", "repository/automation/service/logs", 200)["logs"]
    pushes = [entry for entry in logs if entry["kind"] == "push_repo"]
    assert len(pushes) == 1, json.dumps(logs, indent=1)
    assert pushes[0]["performer"]["name"] == "automation+pusher" and pushes[0]["performer"]["is_robot"] is True
    assert pushes[0]["metadata"]["tag"] == "v1" and pushes[0]["metadata"]["digest"] == digest
    assert [entry["kind"] for entry in logs][-1] == "create_repo"
    org_kinds = {entry["kind"] for entry in api.call("get", "organization/automation/logs", 200)["logs"]}
    assert {"create_repo", "change_repo_permission", "push_repo"} <= org_kinds

    # The API token works for `docker login -u '$oauthtoken'` too.
    _, digest2 = push(f"$oauthtoken:{first['access_token']}", f"docker://{registry.host}/automation/service:v2")
    assert digest2 == digest
    with pytest.raises(ClientError):
        push(f"$oauthtoken:{'x' * 40}", f"docker://{registry.host}/automation/service:v3")
    read_only = registry.shell(
        "from accounts.models import User\n"
        "from accounts.services import oauth_token_create\n"
        "print('TOKEN', oauth_token_create(user=User.objects.get(username='quayadmin'), scopes={'repo:read'})[1])"
    )
    read_token = next(line.split()[1] for line in read_only.splitlines() if line.startswith("TOKEN "))
    refused, _ = push(f"$oauthtoken:{read_token}", f"docker://{registry.host}/automation/service:v4", check=False)
    assert refused.returncode != 0
    tags = set(api.call("get", "repository/automation/service", 200)["tags"])
    assert tags == {"v1", "v2"}
