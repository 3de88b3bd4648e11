"""Delivery through the outbox to real local receivers: signed webhooks, Slack, Flowdock and
HipChat messages, in-app notices; retries with backoff, a failing endpoint held to one probe,
auto-disable that is never silent, leases, the sweeper and the Celery path."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

from django.db import OperationalError, connection
from django.utils import timezone

from notifications import selectors, services, signing
from notifications.models import Delivery, DeliveryAttempt, RepositoryNotification, UserNotification
from tests.notifications.conftest import as_principal, deliver_due
from tests.notifications.receivers import Reply


def _rule(world, method: str, config: dict, event: str = "repo_push", event_config=None):
    rule, shown = services.notification_create(
        repository=world.app,
        event=event,
        method=method,
        config=config,
        event_config=event_config or {},
        title=f"{method} rule",
        principal=as_principal(world.alice),
        ip=None,
    )
    return rule, shown


def _push(world, *tags: str):
    return services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": list(tags)})


# ---------------------------------------------------------------------------------------------
# Webhooks


def test_a_webhook_gets_the_event_json_signed_with_its_secret(world, receiver, public_host):
    _, shown = _rule(world, "webhook", {"url": receiver.url("/hook")})
    record = _push(world, "v1", "latest")
    assert deliver_due() == ["delivered"]
    (request,) = receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "repository": "acme/app",
        "namespace": "acme",
        "name": "app",
        "docker_url": "registry.example:5000/acme/app",
        "homepage": "https://registry.example:5000/repository/acme/app",
        "updated_tags": ["v1", "latest"],
    }
    delivery = Delivery.objects.get(event=record)
    assert request.headers["webhook-id"] == str(delivery.uuid)
    assert request.headers["webhook-signature"].startswith("v1,")
    assert signing.verify(secret=shown["secret"], headers=request.headers, body=request.body)
    # Any change of body, id or timestamp breaks the signature.
    assert not signing.verify(secret=shown["secret"], headers=request.headers, body=request.body + b" ")
    forged = {**request.headers, "webhook-id": "another"}
    assert not signing.verify(secret=shown["secret"], headers=forged, body=request.body)
    old = {**request.headers, "webhook-timestamp": str(int(request.headers["webhook-timestamp"]) - 3600)}
    assert not signing.verify(secret=shown["secret"], headers=old, body=request.body)
    assert not signing.verify(secret=signing.secret_generate(), headers=request.headers, body=request.body)
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.attempts == 1 and delivery.last_status_code == 200


def test_a_webhook_template_shapes_the_body(world, receiver):
    template = json.dumps({"text": "Pushed ${updated_tags[0]} to ${repository}", "tags": "${updated_tags}", "n": 1})
    _rule(world, "webhook", {"url": receiver.url(), "template": template})
    _push(world, "v2", "v3")
    deliver_due()
    assert receiver.wait_for(1)[0].json() == {"text": "Pushed v2 to acme/app", "tags": ["v2", "v3"], "n": 1}


def test_a_webhook_answering_500_then_200_is_retried_with_the_same_id(world, receiver, fast_retries):
    rule, shown = _rule(world, "webhook", {"url": receiver.url()})
    receiver.reply(Reply(status=500, body=b"database down"))
    record = _push(world, "v1")
    assert deliver_due() == ["pending"]
    rule.refresh_from_db()
    assert rule.number_of_failures == 1 and rule.retry_after is not None
    assert deliver_due(wait=2) == ["delivered"]
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    assert signing.verify(secret=shown["secret"], headers=second.headers, body=second.body)
    delivery = Delivery.objects.get(event=record)
    attempts = list(delivery.attempt_log.values_list("number", "success", "status_code", "response_excerpt"))
    assert attempts == [(1, False, 500, "database down"), (2, True, 200, "ok")]
    rule.refresh_from_db()
    assert rule.number_of_failures == 0 and rule.retry_after is None and rule.enabled


def test_retries_back_off_exponentially_with_jitter(settings, world, receiver):
    settings.NOTIFICATION_RETRY_BASE_SECONDS = 30
    settings.NOTIFICATION_RETRY_MAX_SECONDS = 6 * 3600
    receiver.default = Reply(status=503)
    rule, _ = _rule(world, "webhook", {"url": receiver.url()})
    record = _push(world, "v1")
    delivery = Delivery.objects.get(event=record)
    for failures, nominal in ((1, 30), (2, 60), (3, 120), (4, 240)):
        # Make the retry due now, as time passing would.
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        RepositoryNotification.objects.filter(pk=rule.pk).update(retry_after=None)
        before = timezone.now()
        assert services.delivery_attempt(delivery_id=delivery.pk) == "pending"
        delivery.refresh_from_db()
        wait = (delivery.next_attempt_at - before).total_seconds()
        assert nominal / 2 <= wait <= nominal + 1, (failures, wait)
    assert [services.retry_delay(40) <= 6 * 3600 for _ in range(5)] == [True] * 5
    delays = {round(services.retry_delay(5), 3) for _ in range(20)}
    assert len(delays) > 1  # jitter


def test_a_redirect_is_a_failure_and_is_not_followed(world, receiver, fast_retries):
    _rule(world, "webhook", {"url": receiver.url("/moved")})
    receiver.reply(Reply(status=302, headers={"Location": receiver.url("/elsewhere")}))
    record = _push(world, "v1")
    assert deliver_due() == ["pending"]
    assert [r.path for r in receiver.requests] == ["/moved"]
    delivery = Delivery.objects.get(event=record)
    assert delivery.last_status_code == 302 and "redirects are not followed" in delivery.last_error


def test_a_refused_destination_fails_at_once_without_retries(world, receiver, settings):
    _rule(world, "webhook", {"url": receiver.url()})
    settings.OUTBOUND_ALLOWED_NETWORKS = []  # the operator closed the network after creation
    record = _push(world, "v1")
    assert deliver_due() == ["failed"]
    delivery = Delivery.objects.get(event=record)
    assert "not allowed" in delivery.last_error and receiver.requests == []


def test_a_failing_endpoint_gets_one_probe_while_the_backlog_waits(world, receiver):
    rule, _ = _rule(world, "webhook", {"url": receiver.url()})
    receiver.reply(Reply(status=500))
    for n in range(4):
        _push(world, f"v{n}")
    # The first attempt fails; the three others are held back while the endpoint cools down.
    first = Delivery.objects.order_by("id").first()
    assert services.delivery_attempt(delivery_id=first.pk) == "pending"
    rule.refresh_from_db()
    others = Delivery.objects.exclude(pk=first.pk)
    assert [services.delivery_attempt(delivery_id=d.pk) for d in others] == [None, None, None]
    assert len(receiver.requests) == 1
    # Once the endpoint's cool-down is over, what is due for it is one probe (the earliest event),
    # not the whole backlog.
    RepositoryNotification.objects.filter(pk=rule.pk).update(retry_after=timezone.now())
    Delivery.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now())
    now = timezone.now() + timedelta(seconds=1)
    assert selectors.deliveries_due(now=now, limit=10) == [first.pk]
    # The probe succeeds: the endpoint is healthy again and the backlog goes out.
    assert services.delivery_attempt(delivery_id=first.pk) == "delivered"
    assert sorted(deliver_due()) == ["delivered"] * 3
    assert len(receiver.requests) == 5


def test_after_too_many_failures_the_notification_is_disabled_loudly(settings, world, receiver, fast_retries):
    settings.NOTIFICATION_DISABLE_AFTER_FAILURES = 3
    receiver.default = Reply(status=500)
    rule, _ = _rule(world, "webhook", {"url": receiver.url()})
    _push(world, "v1")
    states = []
    for _ in range(3):
        states += deliver_due(wait=2)
    assert states == ["pending", "pending", "pending"]
    rule.refresh_from_db()
    assert rule.enabled is False and rule.number_of_failures == 3
    assert rule.disabled_reason.startswith("Disabled after 3 failed attempts in a row; last error: Answered 500")
    # Every admin of acme/app is told (alice administers acme); a reader is not.
    notices = UserNotification.objects.filter(kind="notification_disabled")
    assert [n.user.username for n in notices] == ["alice"]
    assert notices[0].metadata["notification_uuid"] == str(rule.uuid)
    assert notices[0].metadata["repository"] == "acme/app"
    # Disabled: no new delivery, and the held one is not sent.
    assert _push(world, "v2") is None
    assert deliver_due(wait=0.2) == []
    assert len(receiver.requests) == 3
    # Reset (the API's POST .../notification/<uuid>) enables it and sends what was held.
    receiver.default = Reply(status=200)
    services.notification_reset(notification=rule, principal=as_principal(world.alice), ip=None)
    assert deliver_due() == ["delivered"]
    rule.refresh_from_db()
    assert rule.enabled and rule.number_of_failures == 0 and rule.disabled_reason == ""


def test_a_delivery_gives_up_after_the_retry_period(settings, world, receiver, fast_retries):
    receiver.default = Reply(status=500)
    _rule(world, "webhook", {"url": receiver.url()})
    record = _push(world, "v1")
    delivery = Delivery.objects.get(event=record)
    Delivery.objects.filter(pk=delivery.pk).update(retry_window_start=timezone.now() - timedelta(days=3))
    assert deliver_due() == ["failed"]
    # The sweeper also gives up on deliveries held past the period without an attempt.
    other = _push(world, "v2")
    Delivery.objects.filter(event=other).update(retry_window_start=timezone.now() - timedelta(days=4))
    assert services.delivery_sweep()["expired"] == 1
    assert Delivery.objects.get(event=other).state == "failed"


def test_test_deliveries_send_sample_data_and_leave_the_failure_count_alone(world, receiver, fast_retries):
    rule, shown = _rule(world, "webhook", {"url": receiver.url()}, event="build_failure")
    receiver.reply(Reply(status=500))
    services.notification_test(notification=rule)
    assert deliver_due() == ["pending"]
    rule.refresh_from_db()
    assert rule.number_of_failures == 0
    assert deliver_due(wait=2) == ["delivered"]
    body = receiver.wait_for(2)[1].json()
    assert body["error_message"] and body["build_id"] and body["repository"] == "acme/app"
    assert body["homepage"].endswith(f"/repository/acme/app/build/{body['build_id']}")


# ---------------------------------------------------------------------------------------------
# Claims and the sweeper


def test_two_workers_racing_for_a_delivery_send_it_once(world, receiver):
    _rule(world, "webhook", {"url": receiver.url()})
    record = _push(world, "v1")
    # Two workers read the same pending row; each tries to claim what it read.
    first_read = Delivery.objects.get(event=record)
    second_read = Delivery.objects.get(event=record)
    now = timezone.now()
    assert services._claim(first_read, now) is not None
    assert services._claim(second_read, now) is None
    assert services.delivery_attempt(delivery_id=first_read.pk) is None  # held under a live lease
    assert receiver.requests == []


def test_a_lapsed_lease_is_taken_over_with_the_same_delivery_id(world, receiver, monkeypatch):
    _rule(world, "webhook", {"url": receiver.url()})
    record = _push(world, "v1")
    delivery = Delivery.objects.get(event=record)
    # A worker claimed it, then died: its lease ran out.
    assert services._claim(delivery, timezone.now()) is not None
    Delivery.objects.filter(pk=delivery.pk).update(lease_expires=timezone.now() - timedelta(seconds=1))
    drains: list[bool] = []
    monkeypatch.setattr(services, "_queue_drain", lambda: drains.append(True))
    assert services.delivery_sweep()["due"] is True and drains == [True]
    assert selectors.deliveries_due(now=timezone.now(), limit=10) == [delivery.pk]
    assert services.delivery_attempt(delivery_id=delivery.pk) == "delivered"
    (request,) = receiver.wait_for(1)
    assert request.headers["webhook-id"] == str(delivery.uuid)
    log = list(DeliveryAttempt.objects.filter(delivery=delivery).values_list("number", "success"))
    assert log == [(1, False), (2, True)]
    assert "stopped during this attempt" in DeliveryAttempt.objects.get(delivery=delivery, number=1).error


def test_the_sweeper_wakes_a_worker_only_when_something_is_due(world, receiver, monkeypatch):
    drains: list[bool] = []
    monkeypatch.setattr(services, "_queue_drain", lambda: drains.append(True))
    rule, _ = _rule(world, "webhook", {"url": receiver.url()})
    assert services.delivery_sweep() == {"due": False, "expired": 0} and drains == []
    record = _push(world, "v1")
    # However many deliveries are due, one message: the drain it starts sends them all.
    _push(world, "v2")
    assert services.delivery_sweep()["due"] is True and drains == [True]
    # A delivery waiting for its retry, or held while its endpoint cools down, is not due.
    Delivery.objects.update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert services.delivery_sweep()["due"] is False
    Delivery.objects.filter(event=record).update(next_attempt_at=timezone.now())
    RepositoryNotification.objects.filter(pk=rule.pk).update(retry_after=timezone.now() + timedelta(minutes=1))
    assert services.delivery_sweep()["due"] is False and drains == [True]


def test_old_finished_deliveries_are_pruned(world, receiver, settings):
    _rule(world, "webhook", {"url": receiver.url()})
    old, recent = _push(world, "v1"), _push(world, "v2")
    deliver_due()
    Delivery.objects.filter(event=old).update(created=timezone.now() - timedelta(days=40))
    old.__class__.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=40))
    assert services.deliveries_prune() == 1
    assert list(Delivery.objects.values_list("event_id", flat=True)) == [recent.pk]


def test_emitting_queues_a_task_that_delivers_once_the_push_commits(
    world, receiver, eager_celery, django_capture_on_commit_callbacks
):
    _rule(world, "webhook", {"url": receiver.url()})
    with django_capture_on_commit_callbacks(execute=True):
        record = _push(world, "v9")
    assert Delivery.objects.get(event=record).state == "delivered"
    assert receiver.wait_for(1)[0].json()["updated_tags"] == ["v9"]


def test_concurrent_attempts_from_threads_send_one_request(transactional_db, receiver, settings):
    from accounts import services as account_services
    from registry import services as registry_services

    alice = account_services.user_create(username="alice", password="password-123")
    repo = registry_services.repository_create(namespace=alice.namespace, name="race", principal=as_principal(alice))
    services.notification_create(
        repository=repo,
        event="repo_push",
        method="webhook",
        config={"url": receiver.url()},
        event_config={},
        title="",
        principal=as_principal(alice),
        ip=None,
    )
    record = services.event_emit(event="repo_push", repository=repo, data={"updated_tags": ["v1"]})
    delivery = Delivery.objects.get(event=record)
    results, barrier = [], threading.Barrier(4)

    def attempt():
        try:
            barrier.wait()
            for _ in range(400):
                try:
                    results.append(services.delivery_attempt(delivery_id=delivery.pk))
                    return
                except OperationalError:
                    # The tests' shared in-memory SQLite locks a table instead of waiting, as a
                    # file database does for its busy timeout: wait here instead.
                    time.sleep(0.005)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and results.count("delivered") <= 1
    assert set(results) <= {"delivered", None}
    # Four workers, one claim, one request.
    time.sleep(0.2)
    assert len(receiver.requests) == 1


# ---------------------------------------------------------------------------------------------
# Chat services


def test_slack_gets_a_summary_linked_to_the_repository_and_the_details(world, receiver, public_host):
    _rule(world, "slack", {"url": receiver.url("/services/T1/B2/xyz")})
    _push(world, "v1", "latest")
    assert deliver_due() == ["delivered"]
    (request,) = receiver.wait_for(1)
    assert request.path == "/services/T1/B2/xyz"
    body = request.json()
    assert body["text"] == "<https://registry.example:5000/repository/acme/app|New push to acme/app: v1, latest>"
    attachment = body["attachments"][0]
    assert attachment["color"] == "good" and attachment["fallback"] == "New push to acme/app: v1, latest"
    fields = {field["title"]: field["value"] for field in attachment["fields"]}
    assert fields == {"Repository": "acme/app", "Tags": "v1, latest", "Pull": "registry.example:5000/acme/app:v1"}


def test_slack_text_escapes_its_control_characters(world, receiver):
    _rule(world, "slack", {"url": receiver.url()}, event="build_failure")
    services.event_emit(
        event="build_failure",
        repository=world.app,
        data={"build_id": "abcdef123456", "error_message": "<script> & friends"},
    )
    deliver_due()
    fields = {f["title"]: f["value"] for f in receiver.wait_for(1)[0].json()["attachments"][0]["fields"]}
    assert fields["Error"] == "&lt;script&gt; &amp; friends"
    assert receiver.requests[0].json()["attachments"][0]["color"] == "danger"


def test_flowdock_gets_a_team_inbox_message(world, receiver, public_host, settings):
    settings.DEFAULT_FROM_EMAIL = "registry@registry.example"
    _rule(world, "flowdock", {"flow_api_token": "0123456789abcdef"})
    _push(world, "v1")
    assert deliver_due() == ["delivered"]
    (request,) = receiver.wait_for(1)
    assert request.path == "/flowdock/v1/messages/team_inbox/0123456789abcdef"
    body = request.json()
    assert body["subject"] == "New push to acme/app: v1"
    assert body["from_address"] == "registry@registry.example" and body["from_name"] == "acme"
    assert body["source"] == "Container registry" and body["project"] == "acme app"
    assert body["tags"] == ["#repo_push"] and body["link"] == "https://registry.example:5000/repository/acme/app"
    assert '<a href="https://registry.example:5000/repository/acme/app">' in body["content"]


def test_hipchat_gets_a_room_notification_with_the_token_in_a_header(world, receiver):
    _rule(world, "hipchat", {"room_id": "Ops Room", "notification_token": "hiptoken123"}, event="build_failure")
    services.event_emit(event="build_failure", repository=world.app, data={"build_id": "b-1", "error_message": "x"})
    assert deliver_due() == ["delivered"]
    (request,) = receiver.wait_for(1)
    assert request.path == "/hipchat/v2/room/Ops%20Room/notification"
    assert request.headers["authorization"] == "Bearer hiptoken123"
    assert "hiptoken123" not in request.path
    body = request.json()
    assert body["color"] == "red" and body["notify"] is True and body["message_format"] == "html"
    assert "Build b-1 failed for acme/app" in body["message"]


def test_a_chat_service_answering_an_error_is_retried(world, receiver, fast_retries):
    _rule(world, "slack", {"url": receiver.url()})
    receiver.reply(Reply(status=404, body=b"no_service"))
    record = _push(world, "v1")
    assert deliver_due() == ["pending"]
    assert Delivery.objects.get(event=record).last_error == "Answered 404"
    assert deliver_due(wait=2) == ["delivered"]


# ---------------------------------------------------------------------------------------------
# In-app notices


def test_in_app_notices_reach_a_user_a_teams_members_or_the_organizations_admins(world):
    _rule(world, "quay_notification", {"target": {"kind": "user", "name": "charlie"}})
    _rule(world, "quay_notification", {"target": {"kind": "team", "name": "devs"}})
    _rule(world, "quay_notification", {"target": {"kind": "org", "name": "acme"}})
    _push(world, "v1")
    assert deliver_due() == ["delivered"] * 3
    notices = {
        (n.user.username, n.organization.name if n.organization else None) for n in UserNotification.objects.all()
    }
    assert notices == {("charlie", None), ("bob", None), ("alice", "acme")}
    assert {n.kind for n in UserNotification.objects.all()} == {"repo_push"}
    assert UserNotification.objects.get(user=world.charlie).metadata["updated_tags"] == ["v1"]


def test_a_retried_in_app_delivery_adds_no_second_notice(world):
    _rule(world, "quay_notification", {"target": {"kind": "user", "name": "charlie"}})
    record = _push(world, "v1")
    delivery = Delivery.objects.get(event=record)
    assert deliver_due() == ["delivered"]
    services.delivery_redeliver(delivery=delivery)
    assert deliver_due() == ["delivered"]
    assert UserNotification.objects.filter(user=world.charlie).count() == 1


def test_an_in_app_target_that_disappeared_fails_for_good(world):
    from accounts.models import Team

    _rule(world, "quay_notification", {"target": {"kind": "team", "name": "devs"}})
    Team.objects.filter(name="devs").delete()
    record = _push(world, "v1")
    assert deliver_due() == ["failed"]
    assert "no longer exists" in Delivery.objects.get(event=record).last_error


def test_the_readme_verification_code_accepts_a_real_delivery_and_refuses_a_forgery(world, receiver):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("**Verifying a webhook**") :]
    code = section[
        section.index("```python\n") + len("```python\n") : section.index("```\n", section.index("```python"))
    ]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    verify = namespace["verify"]
    _, shown = _rule(world, "webhook", {"url": receiver.url()})
    _push(world, "v1")
    deliver_due()
    (request,) = receiver.wait_for(1)
    assert verify(shown["secret"], request.headers, request.body) is True
    assert verify(shown["secret"], request.headers, request.body.replace(b"v1", b"v2")) is False
    assert verify(signing.secret_generate(), request.headers, request.body) is False


def test_a_worker_drains_everything_due_after_the_delivery_it_woke_for(world, receiver):
    _rule(world, "webhook", {"url": receiver.url("/a")})
    _rule(world, "webhook", {"url": receiver.url("/b")})
    for n in range(5):
        _push(world, f"v{n}")
    assert services.deliveries_drain(seconds=10) == (10, False)
    assert set(Delivery.objects.values_list("state", flat=True)) == {"delivered"}
    assert len({r.headers["webhook-id"] for r in receiver.wait_for(10)}) == 10
    assert services.deliveries_drain(seconds=10) == (0, False)
