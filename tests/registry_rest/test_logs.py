"""Usage logs of a repository, the caller's namespace and an organization."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from registry import services
from registry.models import UsageLog
from tests.registry.conftest import V2, flush_pulls
from tests.registry_rest.conftest import as_principal, problem

PASSWORD = "password-123"
ENTRY_KEYS = {"kind", "metadata", "ip", "datetime", "performer", "namespace"}


def _log(world, kind: str, *, when: datetime, repository=None, namespace=None, actor=None) -> UsageLog:
    repository = repository or world.app
    return UsageLog.objects.create(
        kind=kind,
        actor=actor or world.alice,
        actor_name=(actor or world.alice).username,
        repository=repository,
        namespace=namespace or repository.namespace,
        created=when,
    )


def test_it_lists_a_repositorys_log_newest_first(world):
    V2("alice", PASSWORD).push_image("acme/app", "latest")
    response = world.api("admin").get("repository/acme/app/logs")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"start_time", "end_time", "logs"}
    assert body["start_time"].endswith("-0000") and body["end_time"].endswith("-0000")
    kinds = [entry["kind"] for entry in body["logs"]]
    assert kinds == ["push_repo", "create_tag", "change_repo_permission", "create_repo"]
    push = body["logs"][0]
    assert set(push) == ENTRY_KEYS
    assert push["performer"]["name"] == "alice" and push["performer"]["kind"] == "user"
    assert push["performer"]["is_robot"] is False and push["performer"]["avatar"]["kind"] == "user"
    assert push["namespace"]["name"] == "acme" and push["namespace"]["kind"] == "org"
    assert push["metadata"]["tag"] == "latest" and push["ip"] == "127.0.0.1"
    assert datetime.strptime(push["datetime"], "%a, %d %b %Y %H:%M:%S -0000")


def test_robot_pulls_show_as_robot_performers(world):
    services.repository_permission_set_user(
        repository=world.app, username="acme+bot", role="read", principal=as_principal(world.alice), ip=None
    )
    V2("alice", PASSWORD).push_image("acme/app", "latest")
    robot = V2("acme+bot", world.bot_token)
    assert robot.client.get("/v2/acme/app/manifests/latest", **robot.pull("acme/app")).status_code == 200
    assert flush_pulls() == 1
    entry = world.api("admin").get("repository/acme/app/logs").json()["logs"][0]
    assert entry["kind"] == "pull_repo"
    assert entry["performer"]["name"] == "acme+bot" and entry["performer"]["is_robot"] is True
    assert entry["performer"]["avatar"]["kind"] == "robot"


def test_the_default_window_is_the_last_day(world):
    now = timezone.now()
    _log(world, "push_repo", when=now - timedelta(hours=30))
    _log(world, "pull_repo", when=now - timedelta(hours=20))
    kinds = [e["kind"] for e in world.api("admin").get("repository/acme/app/logs").json()["logs"]]
    assert "pull_repo" in kinds and "push_repo" not in kinds


def test_starttime_and_endtime_are_utc_days(world):
    _log(world, "push_repo", when=datetime(2024, 3, 1, 23, 59, tzinfo=UTC))
    _log(world, "pull_repo", when=datetime(2024, 3, 2, 0, 0, tzinfo=UTC))
    _log(world, "delete_tag", when=datetime(2024, 3, 4, 12, 0, tzinfo=UTC))
    api = world.api("admin")

    def kinds(**params):
        response = api.get("repository/acme/app/logs", **params)
        assert response.status_code == 200, response.content
        return [e["kind"] for e in response.json()["logs"]]

    assert kinds(starttime="03/02/2024", endtime="03/03/2024") == ["pull_repo"]
    assert kinds(starttime="03/01/2024", endtime="03/04/2024") == ["delete_tag", "pull_repo", "push_repo"]
    body = api.get("repository/acme/app/logs", starttime="03/02/2024", endtime="03/03/2024").json()
    assert body["start_time"] == "Sat, 02 Mar 2024 00:00:00 -0000"
    assert body["end_time"] == "Mon, 04 Mar 2024 00:00:00 -0000"


@pytest.mark.parametrize(
    "params, detail",
    [
        ({"starttime": "2024-03-01"}, "Invalid starttime"),
        ({"endtime": "13/45/2024"}, "Invalid endtime"),
        ({"starttime": "03/05/2024", "endtime": "03/01/2024"}, "endtime is before starttime"),
        ({"next_page": "not-a-token"}, "Invalid next_page token"),
    ],
)
def test_it_refuses_bad_log_parameters(world, params, detail):
    body = problem(world.api("admin").get("repository/acme/app/logs", **params), 400, "invalid_request")
    assert detail in body["detail"]


def test_it_pages_logs_twenty_at_a_time(world):
    moment = timezone.now() - timedelta(minutes=5)
    UsageLog.objects.all().delete()
    # Equal times on purpose: batched pull entries share timestamps, paging must not lose them.
    rows = [_log(world, "pull_repo", when=moment - timedelta(seconds=i // 3)) for i in range(45)]
    api = world.api("admin")
    seen, token, pages = [], None, 0
    while True:
        params = {"next_page": token} if token else {}
        body = api.get("repository/acme/app/logs", **params).json()
        pages += 1
        seen += [e["datetime"] for e in body["logs"]]
        assert len(body["logs"]) == (20 if pages < 3 else 5)
        token = body.get("next_page")
        if not token:
            break
    assert pages == 3 and len(seen) == len(rows) == 45


def test_user_logs_cover_the_callers_namespace(world):
    mine = services.repository_create(namespace=world.alice.namespace, name="mine", principal=as_principal(world.alice))
    services.repository_permission_set_user(
        repository=mine, username="bob", role="write", principal=as_principal(world.alice), ip=None
    )
    V2("bob", PASSWORD).push_image("alice/mine", "latest")
    api = world.api("admin")
    body = api.get("user/logs").json()
    assert {e["kind"] for e in body["logs"]} == {"create_repo", "change_repo_permission", "create_tag", "push_repo"}
    assert all(e["namespace"]["name"] == "alice" for e in body["logs"])
    by_bob = api.get("user/logs", performer="bob").json()["logs"]
    assert {e["kind"] for e in by_bob} == {"create_tag", "push_repo"}
    assert world.api("user").get("user/logs").json()["logs"] == []


@pytest.mark.parametrize(
    "who, status",
    [("anonymous", 401), ("user", 404), ("member", 403), ("creator", 403), ("other_org", 404), ("admin", 200)],
)
def test_organization_logs_are_for_its_admins(world, who, status):
    response = world.api(who).get("organization/acme/logs")
    assert response.status_code == status, response.content
    if status == 200:
        assert {e["kind"] for e in response.json()["logs"]} == {"create_repo", "change_repo_permission"}


def test_a_superuser_reads_any_organizations_logs(world):
    assert world.api("superuser").get("organization/acme/logs").status_code == 200
    problem(world.api("superuser", token_scopes={"org:admin"}).get("organization/acme/logs"), 404)
    problem(world.api("admin").get("organization/nosuchorg/logs"), 404)


def test_deleted_repositories_stay_in_the_organization_log(world):
    assert world.api("admin").delete("repository/acme/app").status_code == 204
    kinds = [e["kind"] for e in world.api("admin").get("organization/acme/logs").json()["logs"]]
    assert kinds[0] == "delete_repo"


def test_aggregated_logs_count_per_kind_and_day(world):
    day = datetime(2024, 3, 2, 10, tzinfo=UTC)
    for _ in range(3):
        _log(world, "pull_repo", when=day)
    _log(world, "push_repo", when=day + timedelta(days=1))
    params = {"starttime": "03/01/2024", "endtime": "03/05/2024"}
    for path in ("repository/acme/app/aggregatelogs", "organization/acme/aggregatelogs"):
        response = world.api("admin").get(path, **params)
        assert response.status_code == 200
        assert response.json() == {
            "aggregated": [
                {"kind": "pull_repo", "count": 3, "datetime": "Sat, 02 Mar 2024 00:00:00 -0000"},
                {"kind": "push_repo", "count": 1, "datetime": "Sun, 03 Mar 2024 00:00:00 -0000"},
            ]
        }
    assert world.api("user").get("user/aggregatelogs", **params).json() == {"aggregated": []}
    problem(world.api("member").get("repository/acme/app/aggregatelogs"), 403)
    problem(world.api("member").get("organization/acme/aggregatelogs"), 403)


@pytest.mark.parametrize(
    "who, status",
    [("anonymous", 401), ("user", 404), ("member", 403), ("creator", 404), ("other_org", 404), ("admin", 200)],
)
def test_repository_logs_are_for_repository_admins(world, who, status):
    assert world.api(who).get("repository/acme/app/logs").status_code == status
