"""The notification API (Quay's paths and payloads, plus the delivery log): management by
repository admins only, secrets shown once and encrypted at rest, the bell, authorized e-mails,
and answers that match the OpenAPI documentation."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts import scopes
from accounts import services as account_services
from accounts.models import Team
from notifications import services
from notifications.models import AuthorizedEmail, Delivery, DeliveryAttempt, RepositoryNotification, UserNotification
from registry import services as registry_services
from tests.conftest import basic
from tests.notifications.conftest import as_principal, deliver_due, problem
from tests.test_openapi_schema import mismatches, schema  # noqa: F401  (fixture)

BASE = "repository/acme/app/notification/"
WEBHOOK = {
    "event": "repo_push",
    "method": "webhook",
    "config": {"url": "https://hooks.example.com/in"},
    "eventConfig": {},
    "title": "CI hook",
}


def _create(api, body=None, repository="acme/app"):
    response = api.post(f"repository/{repository}/notification/", body or WEBHOOK)
    assert response.status_code == 201, response.content
    return response.json()


def test_an_admin_creates_lists_reads_and_deletes_a_notification(world):
    api = world.api("admin")
    created = _create(api)
    assert set(created) >= {"uuid", "title", "event", "method", "config", "event_config", "number_of_failures"}
    assert created["title"] == "CI hook" and created["event"] == "repo_push" and created["method"] == "webhook"
    assert created["number_of_failures"] == 0 and created["enabled"] is True and created["disabled_reason"] is None
    assert created["config"]["url"] == "https://hooks.example.com/in"
    assert created["config"]["secret"].startswith("whsec_")
    listed = api.get(BASE).json()["notifications"]
    assert [n["uuid"] for n in listed] == [created["uuid"]]
    # The signing secret was shown once; it is never in a later answer.
    assert "secret" not in listed[0]["config"]
    one = api.get(f"{BASE}{created['uuid']}").json()
    assert one["config"] == {"url": "https://hooks.example.com/in"}
    assert api.delete(f"{BASE}{created['uuid']}").status_code == 204
    problem(api.get(f"{BASE}{created['uuid']}"), 404, "not_found")
    kinds = list(world.app.usagelog_set.values_list("kind", flat=True))
    assert "add_repo_notification" in kinds and "delete_repo_notification" in kinds


def test_quays_clients_may_send_event_config_in_either_spelling(world):
    api = world.api("admin")
    body = {
        "event": "vulnerability_found",
        "method": "webhook",
        "config": {"url": "https://hooks.example.com/v"},
        "eventConfig": {"level": "1"},
        "event_config": {"level": "1"},
        "title": "Vulns",
    }
    assert _create(api, body)["event_config"] == {"level": "1"}
    del body["eventConfig"]
    body["event_config"] = {"level": "High"}
    assert _create(api, body)["event_config"] == {"level": "High"}


def test_secrets_are_encrypted_at_rest(world):
    api = world.api("admin")
    _create(
        api,
        {"event": "repo_push", "method": "slack", "config": {"url": "https://hooks.slack.com/services/T1/B2/S3cr3t"}},
    )
    _create(api, {"event": "repo_push", "method": "flowdock", "config": {"flow_api_token": "flowtoken1234567"}})
    _create(
        api,
        {"event": "repo_push", "method": "hipchat", "config": {"room_id": 42, "notification_token": "hiptok987654"}},
    )
    hook = _create(api)
    with connection.cursor() as cursor:
        cursor.execute("SELECT config, secrets_encrypted FROM notifications_repositorynotification")
        stored = " ".join(f"{config} {secret}" for config, secret in cursor.fetchall())
    for secret in ("S3cr3t", "flowtoken1234567", "hiptok987654", hook["config"]["secret"]):
        assert secret not in stored
    shown = {n["method"]: n["config"] for n in api.get(BASE).json()["notifications"]}
    assert shown["slack"] == {"url": "https://hooks.slack.com/…"}
    assert shown["flowdock"] == {"flow_api_token": "…4567"}
    assert shown["hipchat"] == {"room_id": "42", "notification_token": "…7654"}
    assert shown["webhook"] == {"url": "https://hooks.example.com/in"}


@pytest.mark.parametrize(
    "body, error",
    [
        ({**WEBHOOK, "event": "repo_pull"}, "event"),
        ({**WEBHOOK, "method": "carrier_pigeon"}, "method"),
        ({**WEBHOOK, "config": "https://x"}, "config"),
        ({**WEBHOOK, "config": {}}, "Missing Webhook URL"),
        ({**WEBHOOK, "config": {"url": "ftp://example.com/x"}}, "http and https"),
        ({**WEBHOOK, "config": {"url": "http://169.254.169.254/latest"}}, "not allowed"),
        ({**WEBHOOK, "config": {"url": "http://localhost:9/x"}}, "not allowed"),
        ({**WEBHOOK, "config": {"url": "https://h.example.com", "template": "{not json"}}, "not valid JSON"),
        ({**WEBHOOK, "config": {"url": "https://h.example.com", "secret": "plain"}}, "whsec_"),
        ({**WEBHOOK, "event": "build_success", "eventConfig": {"ref-regex": "("}}, "ref-regex"),
        ({**WEBHOOK, "event": "vulnerability_found", "eventConfig": {"level": "7"}}, "level"),
        ({"event": "repo_push", "method": "email", "config": {"email": "ops@example.com"}}, "not authorized"),
        ({"event": "repo_push", "method": "email", "config": {"email": "not an address"}}, "Invalid e-mail"),
        (
            {
                "event": "repo_push",
                "method": "quay_notification",
                "config": {"target": {"kind": "user", "name": "nobody"}},
            },
            "Unknown user",
        ),
        (
            {
                "event": "repo_push",
                "method": "quay_notification",
                "config": {"target": {"kind": "team", "name": "ghosts"}},
            },
            "Unknown team",
        ),
        (
            {
                "event": "repo_push",
                "method": "quay_notification",
                "config": {"target": {"kind": "org", "name": "globex"}},
            },
            "owns the repository",
        ),
        (
            {
                "event": "repo_push",
                "method": "quay_notification",
                "config": {"target": {"kind": "user", "name": "acme+bot"}},
            },
            "Unknown user",
        ),
        ({"event": "repo_push", "method": "quay_notification", "config": {}}, "Missing target"),
        ({"event": "repo_push", "method": "slack", "config": {"url": "http://10.1.2.3/hook"}}, "not allowed"),
        ({"event": "repo_push", "method": "flowdock", "config": {}}, "Flowdock API token"),
        ({"event": "repo_push", "method": "flowdock", "config": {"flow_api_token": "a/../b"}}, "never has"),
        ({"event": "repo_push", "method": "hipchat", "config": {"notification_token": "t"}}, "room ID"),
        ({**WEBHOOK, "title": "t" * 300}, "title"),
    ],
)
def test_bad_notifications_are_refused_with_a_clear_error_and_nothing_stored(world, body, error):
    response = world.api("admin").post(BASE, body)
    detail = problem(response, 400, "invalid_request")["detail"]
    assert error in detail
    assert not RepositoryNotification.objects.exists()


def test_in_app_targets_are_a_user_a_team_of_the_organization_or_the_organization(world):
    api = world.api("admin")
    for target in (
        {"kind": "user", "name": "charlie"},
        {"kind": "team", "name": "devs"},
        {"kind": "org", "name": "acme"},
    ):
        created = _create(api, {"event": "repo_push", "method": "quay_notification", "config": {"target": target}})
        assert created["config"] == {"target": target}


def test_reset_clears_failures_and_enables_again(world):
    api = world.api("admin")
    created = _create(api)
    RepositoryNotification.objects.filter(uuid=created["uuid"]).update(
        number_of_failures=20, enabled=False, disabled_reason="Disabled after 20 failed attempts in a row"
    )
    shown = api.get(f"{BASE}{created['uuid']}").json()
    assert shown["enabled"] is False and shown["number_of_failures"] == 20
    assert shown["disabled_reason"].startswith("Disabled after 20")
    assert api.post(f"{BASE}{created['uuid']}", {}).status_code == 204
    shown = api.get(f"{BASE}{created['uuid']}").json()
    assert shown["enabled"] is True and shown["number_of_failures"] == 0 and shown["disabled_reason"] is None


def test_the_test_endpoint_queues_a_sample_delivery_visible_in_the_log(world):
    api = world.api("admin")
    created = _create(api)
    queued = api.post(f"{BASE}{created['uuid']}/test", {})
    assert queued.status_code == 200
    delivery_id = queued.json()["delivery_id"]
    log = api.get(f"{BASE}{created['uuid']}/deliveries").json()
    assert [d["id"] for d in log["deliveries"]] == [delivery_id] and log["additional"] is False
    entry = log["deliveries"][0]
    assert entry["is_test"] is True and entry["state"] == "pending" and entry["attempts"] == 0
    detail = api.get(f"{BASE}{created['uuid']}/deliveries/{delivery_id}").json()
    assert detail["payload"]["repository"] == "acme/app" and detail["payload"]["updated_tags"] == ["latest", "v1.0"]
    assert detail["attempt_log"] == []


def test_the_delivery_log_pages_newest_first(world):
    api = world.api("admin")
    created = _create(api)
    for n in range(5):
        services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": [f"v{n}"]})
    first = api.get(f"{BASE}{created['uuid']}/deliveries", limit=2).json()
    second = api.get(f"{BASE}{created['uuid']}/deliveries", limit=2, page=2).json()
    assert len(first["deliveries"]) == 2 and first["additional"] is True
    assert len(second["deliveries"]) == 1 and second["additional"] is False
    problem(api.get(f"{BASE}{created['uuid']}/deliveries", limit=0), 400, "invalid_request")
    problem(api.get(f"{BASE}{created['uuid']}/deliveries", page="x"), 400, "invalid_request")


def test_redelivery_keeps_the_delivery_id_and_needs_an_enabled_notification(world, receiver):
    api = world.api("admin")
    created = _create(api, {**WEBHOOK, "config": {"url": receiver.url()}})
    record = services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": ["v1"]})
    assert deliver_due() == ["delivered"]
    delivery = Delivery.objects.get(event=record)
    path = f"{BASE}{created['uuid']}/deliveries/{delivery.uuid}"
    again = api.post(f"{path}/redeliver", {})
    assert again.status_code == 202 and again.json()["state"] == "pending" and again.json()["id"] == str(delivery.uuid)
    assert deliver_due() == ["delivered"]
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(delivery.uuid)
    assert first.body == second.body
    detail = api.get(path).json()
    assert [a["number"] for a in detail["attempt_log"]] == [1, 2] and detail["attempts"] == 2
    RepositoryNotification.objects.filter(uuid=created["uuid"]).update(enabled=False)
    assert "reset it first" in problem(api.post(f"{path}/redeliver", {}), 400)["detail"]


def test_another_repositorys_notification_and_deliveries_are_not_found(world):
    api = world.api("admin")
    second = registry_services.repository_create(
        namespace=world.acme, name="other", principal=as_principal(world.alice)
    )
    created = _create(api, repository="acme/other")
    problem(api.get(f"{BASE}{created['uuid']}"), 404, "not_found")
    problem(api.delete(f"{BASE}{created['uuid']}"), 404, "not_found")
    problem(api.post(f"{BASE}{created['uuid']}/test", {}), 404, "not_found")
    problem(api.get(f"{BASE}{created['uuid']}/deliveries"), 404, "not_found")
    problem(api.get(f"{BASE}not-a-uuid"), 404, "not_found")
    assert RepositoryNotification.objects.filter(repository=second).count() == 1


# ---------------------------------------------------------------------------------------------
# Who may call what

CALLERS = ["anonymous", "user", "member", "creator", "admin", "superuser", "other_org", "robot"]
ADMIN_ONLY = [401, 404, 403, 404, None, None, 404, 401]


def _headers(world, who: str, token_scopes=scopes.ALL) -> dict:
    if who == "robot":
        return {"HTTP_AUTHORIZATION": basic("acme+bot", world.bot_token)}
    return world.api(who, token_scopes=token_scopes).headers


def _call(method, path, body, headers):
    client = Client()
    url = f"/api/v1/{path}"
    if method == "get":
        return client.get(url, **headers)
    return getattr(client, method)(
        url, data=json.dumps(body) if body is not None else "", content_type="application/json", **headers
    )


@pytest.fixture
def existing(world):
    created = _create(world.api("admin"))
    record = services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": ["v1"]})
    return created["uuid"], str(Delivery.objects.get(event=record).uuid)


ENDPOINTS = [
    ("get", BASE, None, 200),
    ("post", BASE, WEBHOOK, 201),
    ("get", BASE + "{n}", None, 200),
    ("post", BASE + "{n}", {}, 204),
    ("post", BASE + "{n}/test", {}, 200),
    ("get", BASE + "{n}/deliveries", None, 200),
    ("get", BASE + "{n}/deliveries/{d}", None, 200),
    ("post", BASE + "{n}/deliveries/{d}/redeliver", {}, 202),
    ("get", "repository/acme/app/authorizedemail/ops@example.com", None, 404),
    ("post", "repository/acme/app/authorizedemail/ops@example.com", {}, 200),
    ("delete", BASE + "{n}", None, 204),
]


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("method, path, body, admin_status", ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_only_repository_admins_manage_notifications(world, existing, who, method, path, body, admin_status):
    # A robot cannot present its token to /api/v1 (HTTP Basic is refused there).
    expected = dict(zip(CALLERS, ADMIN_ONLY, strict=True))[who] or admin_status
    url = path.format(n=existing[0], d=existing[1])
    response = _call(method, url, body, _headers(world, who))
    assert response.status_code == expected, (who, response.content[:300])
    if expected >= 400 and not (path.endswith("ops@example.com") and expected == 404 and who in ("admin", "superuser")):
        problem(response, expected)


@pytest.mark.parametrize("method, path, body, admin_status", ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in ENDPOINTS])
def test_each_endpoint_needs_the_repo_admin_scope(world, existing, method, path, body, admin_status):
    url = path.format(n=existing[0], d=existing[1])
    lacking = {s for s in scopes.ALL if scopes.REPO_ADMIN not in scopes.expand({s})}
    refused = _call(method, url, body, _headers(world, "admin", lacking))
    assert "repo:admin" in problem(refused, 403, "insufficient_scope")["detail"]
    allowed = _call(method, url, body, _headers(world, "admin", {scopes.REPO_ADMIN}))
    assert allowed.status_code == admin_status


# ---------------------------------------------------------------------------------------------
# The bell


def _notice(user, kind="repo_push", **extra):
    return UserNotification.objects.create(user=user, kind=kind, metadata={"repository": "acme/app"}, **extra)


def test_users_list_read_and_dismiss_their_own_notifications(world):
    api = world.api("member")  # bob
    older, newer = _notice(world.bob), _notice(world.bob, kind="build_failure", organization=world.acme)
    _notice(world.charlie)
    listed = api.get("user/notifications").json()
    assert [n["id"] for n in listed["notifications"]] == [str(newer.uuid), str(older.uuid)]
    assert listed["unread"] == 2 and listed["additional"] is False
    assert listed["notifications"][0] == {
        "id": str(newer.uuid),
        "organization": "acme",
        "kind": "build_failure",
        "created": listed["notifications"][0]["created"],
        "metadata": {"repository": "acme/app"},
        "dismissed": False,
    }
    dismissed = api.put(f"user/notifications/{older.uuid}", {"dismissed": True})
    assert dismissed.status_code == 200 and dismissed.json()["dismissed"] is True
    listed = api.get("user/notifications").json()
    assert [n["id"] for n in listed["notifications"]] == [str(newer.uuid)] and listed["unread"] == 1
    assert api.get(f"user/notifications/{older.uuid}").json()["dismissed"] is True
    problem(api.put(f"user/notifications/{older.uuid}", {"dismissed": "perhaps"}), 400, "invalid_request")


def test_another_users_notification_is_not_found(world):
    theirs = _notice(world.charlie)
    api = world.api("member")
    problem(api.get(f"user/notifications/{theirs.uuid}"), 404, "not_found")
    problem(api.put(f"user/notifications/{theirs.uuid}", {"dismissed": True}), 404, "not_found")
    problem(world.api(None).get("user/notifications"), 401, "invalid_token")
    lacking = world.api("member", token_scopes={scopes.REPO_READ})
    problem(lacking.get("user/notifications"), 403, "insufficient_scope")
    assert UserNotification.objects.get(pk=theirs.pk).dismissed is False


def test_the_bell_pages_like_quay(world):
    for _ in range(7):
        _notice(world.bob)
    api = world.api("member")
    first = api.get("user/notifications").json()
    assert len(first["notifications"]) == 5 and first["additional"] is True and first["unread"] == 7
    second = api.get("user/notifications", page=1).json()
    assert len(second["notifications"]) == 2 and second["additional"] is False


# ---------------------------------------------------------------------------------------------
# Authorized e-mail addresses


def test_authorized_email_answers_never_show_the_confirmation_code(world, django_capture_on_commit_callbacks):
    api = world.api("admin")
    problem(api.get("repository/acme/app/authorizedemail/Ops@Example.com"), 404, "not_found")
    with django_capture_on_commit_callbacks() as callbacks:
        asked = api.post("repository/acme/app/authorizedemail/Ops@Example.com", {})
    assert asked.status_code == 200
    assert asked.json() == {"email": "ops@example.com", "repository": "app", "namespace": "acme", "confirmed": False}
    assert len(callbacks) == 1  # the e-mail is sent by the worker after the commit
    assert api.get("repository/acme/app/authorizedemail/ops@example.com").json()["confirmed"] is False
    problem(api.post("repository/acme/app/authorizedemail/not-an-address", {}), 400, "invalid_request")
    record = AuthorizedEmail.objects.get()
    record.confirmed = True
    record.save()
    with django_capture_on_commit_callbacks() as callbacks:
        again = api.post("repository/acme/app/authorizedemail/ops@example.com", {})
    assert again.json()["confirmed"] is True and callbacks == []


# ---------------------------------------------------------------------------------------------
# Documented shapes


def test_real_answers_have_the_documented_shape(world, schema):  # noqa: F811
    api = world.api("admin")
    template = "/api/v1/repository/{repository}/notification/"
    created = api.post(BASE, WEBHOOK)
    node = schema["paths"][template]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    assert mismatches(schema, created.json(), node) == []
    uuid = created.json()["uuid"]
    record = services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": ["v1"]})
    delivery = Delivery.objects.get(event=record)
    Delivery.objects.filter(pk=delivery.pk).update(state="failed", attempts=1, last_status_code=500)
    DeliveryAttempt.objects.create(delivery=delivery, number=1, started=timezone.now(), duration_ms=3, status_code=500)
    _notice(world.alice, organization=world.acme)
    api.post("repository/acme/app/authorizedemail/ops@example.com", {})
    calls = [
        ("get", f"/api/v1/{BASE}", template, "200"),
        ("get", f"/api/v1/{BASE}{uuid}", template + "{uuid}", "200"),
        ("post", f"/api/v1/{BASE}{uuid}/test", template + "{uuid}/test", "200"),
        ("get", f"/api/v1/{BASE}{uuid}/deliveries", template + "{uuid}/deliveries", "200"),
        (
            "get",
            f"/api/v1/{BASE}{uuid}/deliveries/{delivery.uuid}",
            template + "{uuid}/deliveries/{delivery_uuid}",
            "200",
        ),
        (
            "post",
            f"/api/v1/{BASE}{uuid}/deliveries/{delivery.uuid}/redeliver",
            template + "{uuid}/deliveries/{delivery_uuid}/redeliver",
            "202",
        ),
        (
            "get",
            "/api/v1/repository/acme/app/authorizedemail/ops@example.com",
            "/api/v1/repository/{repository}/authorizedemail/{email}",
            "200",
        ),
        ("get", "/api/v1/user/notifications", "/api/v1/user/notifications", "200"),
    ]
    for method, path, documented, status in calls:
        response = getattr(api, method)(path, {}) if method == "post" else api.get(path)
        assert str(response.status_code) == status, (path, response.content)
        node = schema["paths"][documented][method]["responses"][status]["content"]["application/json"]["schema"]
        assert mismatches(schema, response.json(), node) == [], path
    notice = UserNotification.objects.filter(user=world.alice).first()
    response = api.put(f"user/notifications/{notice.uuid}", {"dismissed": True})
    node = schema["paths"]["/api/v1/user/notifications/{uuid}"]["put"]["responses"]["200"]["content"]
    assert mismatches(schema, response.json(), node["application/json"]["schema"]) == []


def test_team_members_role_does_not_matter_for_in_app_targets(world):
    # A team of the organization is a valid target whatever its role.
    team = account_services.team_create(organization=world.acme, name="ops", role=Team.Role.MEMBER)
    created = _create(
        world.api("admin"),
        {
            "event": "repo_push",
            "method": "quay_notification",
            "config": {"target": {"kind": "team", "name": team.name}},
        },
    )
    assert created["config"]["target"] == {"kind": "team", "name": "ops"}
