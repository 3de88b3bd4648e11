"""Notifications in the web UI, through Django's test client with real deliveries to local
receivers: the bell and the notices page, the Settings tab's notification list and its actions,
the Create Notification form (valid and invalid input, e-mail confirmation), the delivery log and
redelivery, and who may do what."""

from __future__ import annotations

import re
from html import escape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as account_services
from notifications import services
from notifications.models import AuthorizedEmail, Delivery, RepositoryNotification, UserNotification
from registry import services as registry_services
from registry.models import UsageLog
from tests.notifications.conftest import deliver_due, eager_celery, receiver, smtp  # noqa: F401  (fixtures)
from tests.notifications.receivers import Reply
from tests.registry.conftest import user_principal
from tests.ui.conftest import make_repository, messages_of, signed_in, text

BELL = "/user/notifications/bell"


def new_url(repository) -> str:
    return f"/repository/{repository.full_name}/-/notifications/new"


def rule_url(rule, action: str = "") -> str:
    base = f"/repository/{rule.repository.full_name}/-/notifications/{rule.uuid}"
    return f"{base}/{action}" if action else base


def settings_page(client, repository):
    return client.get(f"/repository/{repository.full_name}?tab=settings")


def make_rule(repository, user, *, event="repo_push", method="webhook", config=None, title="", event_config=None):
    rule, _ = services.notification_create(
        repository=repository,
        event=event,
        method=method,
        config=config if config is not None else {"url": "https://hooks.example.com/in"},
        event_config=event_config,
        title=title,
        principal=user_principal(user),
        ip=None,
    )
    return rule


def push_event(repository, *tags: str) -> None:
    services.event_emit(event="repo_push", repository=repository, data={"updated_tags": list(tags)})


def field_errors(response, field: str) -> str:
    """The error list Django renders for one input (``id_<field>_error``), as text."""
    found = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', response.content.decode(), re.S)
    return re.sub(r"<[^>]+>", " ", found.group(1)).strip() if found else ""


@pytest.fixture
def writer_bob(org_repo, bob, alice):
    registry_services.repository_permission_set_user(
        repository=org_repo, username="bob", role="write", principal=user_principal(alice), ip=None
    )
    return bob


@pytest.fixture
def globex_rule(charlie):
    """A rule of another organization's repository (globex/site, charlie's)."""
    globex = account_services.organization_create(name="globex", creator=charlie)
    return make_rule(make_repository(globex, "site", charlie), charlie, title="Globex hook")


# --- The bell and the notices ------------------------------------------------------------------


def test_the_bell_counts_in_app_notices_and_the_list_dismisses_them(as_alice, alice, org_repo):
    make_rule(org_repo, alice, method="quay_notification", config={"target": {"kind": "user", "name": "alice"}})
    assert 'aria-label="Notifications: 0 unread"' in as_alice.get(BELL).content.decode()

    push_event(org_repo, "v1")
    push_event(org_repo, "v2", "latest")
    assert deliver_due() == ["delivered", "delivered"]
    bell = as_alice.get(BELL).content.decode()
    assert 'aria-label="Notifications: 2 unread"' in bell
    assert '<span class="bell-count" id="bell-count">2</span>' in bell

    listing = as_alice.get("/user/notifications")
    body = text(listing)
    # Newest first, each with the event's summary and a link to the repository.
    assert body.index("v2, latest") < body.index("v1")
    assert listing.content.decode().count('href="/repository/acme/tools"') == 2

    newest = UserNotification.objects.filter(user=alice).order_by("-created", "-id").first()
    response = as_alice.post(
        f"/user/notifications/{newest.uuid}/dismiss", {"dismissed": "1", "next": "/user/notifications"}
    )
    assert response.status_code == 302 and response.url == "/user/notifications"
    after = as_alice.get("/user/notifications")
    assert "v2, latest" not in text(after) and "v1" in text(after)
    assert 'aria-label="Notifications: 1 unread"' in after.content.decode()  # the page renders its count
    # Dismissed ones are still there with ?all=1, and can be marked unread again.
    everything = as_alice.get("/user/notifications?all=1")
    assert "v2, latest" in text(everything) and "Mark unread" in text(everything)
    as_alice.post(f"/user/notifications/{newest.uuid}/dismiss", {"dismissed": "0"})
    assert as_alice.get(BELL).context["count"] == 2


def test_the_notices_page_is_paginated(as_alice, alice, org_repo):
    make_rule(org_repo, alice, method="quay_notification", config={"target": {"kind": "user", "name": "alice"}})
    for number in range(23):
        push_event(org_repo, f"t{number}")
    deliver_due()
    first = as_alice.get("/user/notifications")
    summaries = [notice["summary"] for notice in first.context["notices"]]
    assert summaries == [f"New push to acme/tools: t{number}" for number in range(22, 2, -1)]
    assert first.context["older_url"] == "?page=1" and first.context["newer_url"] is None
    assert 'href="?page=1"' in first.content.decode()
    second = as_alice.get("/user/notifications?page=1")
    assert [notice["summary"] for notice in second.context["notices"]] == [
        f"New push to acme/tools: t{number}" for number in (2, 1, 0)
    ]
    assert second.context["older_url"] is None and second.context["newer_url"] == "?page=0"


def test_pages_load_the_bell_count_with_one_count_query(as_alice, anonymous):
    # A page costs no query for the bell: its header loads the count with htmx.
    with CaptureQueriesContext(connection) as queries:
        page = as_alice.get("/organizations")
    assert page.status_code == 200
    assert not [q for q in queries.captured_queries if "notifications_usernotification" in q["sql"]]
    bell = re.search(r'<a class="bell" id="bell"[^>]*>', page.content.decode()).group(0)
    assert f'hx-get="{BELL}"' in bell and 'hx-trigger="load, every 60s"' in bell
    # The fragment counts with one query.
    with CaptureQueriesContext(connection) as queries:
        fragment = as_alice.get(BELL)
    notice_queries = [q["sql"] for q in queries.captured_queries if "notifications_usernotification" in q["sql"]]
    assert len(notice_queries) == 1 and "COUNT(" in notice_queries[0].upper()
    assert 'hx-trigger="every 60s"' in fragment.content.decode()
    # Signed out, the header has no bell.
    assert 'id="bell"' not in anonymous.get("/").content.decode()


def test_the_bell_fragment_stops_polling_when_signed_out(anonymous):
    assert anonymous.get(BELL).status_code == 286


def test_nobody_dismisses_another_users_notice(as_bob, alice, org_repo):
    make_rule(org_repo, alice, method="quay_notification", config={"target": {"kind": "user", "name": "alice"}})
    push_event(org_repo, "v1")
    deliver_due()
    notice = UserNotification.objects.get(user=alice)
    assert as_bob.post(f"/user/notifications/{notice.uuid}/dismiss").status_code == 404
    notice.refresh_from_db()
    assert notice.dismissed is False


def test_an_auto_disabled_notification_is_a_notice_and_shows_in_settings(
    settings,
    as_alice,
    alice,
    org_repo,
    receiver,  # noqa: F811
):
    settings.NOTIFICATION_DISABLE_AFTER_FAILURES = 2
    receiver.default = Reply(status=500, body=b"down")
    rule = make_rule(org_repo, alice, config={"url": receiver.url("/hook")}, title="Deploy hook")
    push_event(org_repo, "v1")
    assert deliver_due() == ["pending"]
    RepositoryNotification.objects.filter(pk=rule.pk).update(retry_after=None)
    Delivery.objects.filter(notification=rule).update(next_attempt_at=rule.created)
    assert deliver_due() == ["pending"]
    rule.refresh_from_db()
    assert rule.enabled is False

    notices = as_alice.get("/user/notifications")
    body = text(notices)
    assert "The notification “Deploy hook” of acme/tools was disabled after 2 failed attempts" in body
    assert "Answered 500" in body
    assert f'href="{rule_url(rule)}"' in notices.content.decode()
    assert 'aria-label="Notifications: 1 unread"' in notices.content.decode()

    tab = text(settings_page(as_alice, org_repo))
    assert "Deploy hook" in tab and "Disabled" in tab and "Disabled after 2 failed attempts in a row" in tab

    response = as_alice.post(rule_url(rule, "reset"))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.enabled and rule.number_of_failures == 0 and rule.disabled_reason == ""
    assert UsageLog.objects.filter(repository=org_repo, kind="reset_repo_notification").count() == 1
    assert "Enabled" in text(settings_page(as_alice, org_repo))


# --- The Settings tab's list -------------------------------------------------------------------------


def test_the_settings_list_shows_each_rule_without_its_secrets(as_alice, alice, org, org_repo, member_team):
    hook = make_rule(org_repo, alice, title="CI hook")
    make_rule(
        org_repo,
        alice,
        event="vulnerability_found",
        method="slack",
        config={"url": "https://hooks.slack.com/services/T1/B2/S3cr3tSlackPart"},
        event_config={"level": "High"},
    )
    flowdock = {"flow_api_token": "flowtoken0123456789"}
    make_rule(org_repo, alice, event="build_failure", method="flowdock", config=flowdock,
              event_config={"ref-regex": "^refs/heads/main$"})  # fmt: skip
    make_rule(org_repo, alice, method="hipchat", config={"room_id": "42", "notification_token": "hiptokenABCDEFGH"})
    make_rule(org_repo, alice, method="quay_notification", config={"target": {"kind": "team", "name": "devs"}})
    page = settings_page(as_alice, org_repo)
    html, body = page.content.decode(), text(page)
    rows = [text_of_row for text_of_row in re.findall(r"<tr>(.*?)</tr>", html, re.S) if "notifications/" in text_of_row]
    assert len(rows) == 5
    assert "CI hook" in body and "Push to repository" in body and "https://hooks.example.com/in" in body
    assert "Package vulnerability found" in body and "severity High or higher" in body
    assert "https://hooks.slack.com/…" in body
    assert "refs matching ^refs/heads/main$" in body and "Flow token …6789" in body
    assert "Room 42" in body and "Team devs" in body
    for secret in (
        "S3cr3tSlackPart",
        "flowtoken0123456789",
        "hiptokenABCDEFGH",
        services.notification_config(hook)["secret"],
    ):
        assert secret not in html
    assert body.count("Enabled") == 5
    assert f'href="{rule_url(hook)}"' in html


def test_readers_and_writers_do_not_see_the_list(writer_bob, org_repo, alice):
    make_rule(org_repo, alice, title="CI hook")
    page = settings_page(signed_in(writer_bob), org_repo)
    assert page.status_code == 200
    assert "CI hook" not in text(page) and "Events and notifications" not in text(page)


# --- Create Notification ------------------------------------------------------------------------------


def test_the_form_creates_a_webhook_and_shows_its_secret_once(as_alice, org_repo):
    form = as_alice.get(new_url(org_repo))
    assert form.status_code == 200
    body = text(form)
    assert "When this event occurs" in body and "Then issue a notification" in body
    response = as_alice.post(
        new_url(org_repo),
        {"event": "repo_push", "method": "webhook", "webhook_url": "https://hooks.example.com/ci", "title": "CI"},
    )
    assert response.status_code == 200
    rule = RepositoryNotification.objects.get(repository=org_repo)
    secret = services.notification_config(rule)["secret"]
    assert secret.startswith("whsec_") and secret in response.content.decode()
    assert response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]
    assert (rule.event, rule.method, rule.title, rule.config) == (
        "repo_push",
        "webhook",
        "CI",
        {"url": "https://hooks.example.com/ci"},
    )
    assert UsageLog.objects.filter(repository=org_repo, kind="add_repo_notification").count() == 1
    # Never again: the list and the log page do not show it.
    assert secret not in settings_page(as_alice, org_repo).content.decode()
    assert secret not in as_alice.get(rule_url(rule)).content.decode()


@pytest.mark.parametrize(
    ("fields", "event", "event_config", "method", "config"),
    [
        (
            {"event": "build_success", "ref_regex": "^refs/tags/v", "method": "slack",
             "slack_url": "https://hooks.slack.com/services/T/B/X"},
            "build_success", {"ref-regex": "^refs/tags/v"}, "slack", {},
        ),
        (
            {"event": "vulnerability_found", "level": "Critical", "method": "hipchat", "hipchat_room": "7",
             "hipchat_token": "tok-123"},
            "vulnerability_found", {"level": "Critical"}, "hipchat", {"room_id": "7"},
        ),
        (
            {"event": "repo_push", "ref_regex": "ignored-for-pushes", "method": "quay_notification",
             "target_kind": "org", "target_name": "acme"},
            "repo_push", {}, "quay_notification", {"target": {"kind": "org", "name": "acme"}},
        ),
        (
            {"event": "build_queued", "method": "flowdock", "flowdock_token": "abc_DEF-123"},
            "build_queued", {}, "flowdock", {},
        ),
    ],
)  # fmt: skip
def test_the_form_sends_only_the_chosen_events_and_methods_fields(
    as_alice, org_repo, fields, event, event_config, method, config
):
    decoys = {"email": "not-used@example.com", "webhook_url": "ftp://not-used", "target_name": "nobody"}
    response = as_alice.post(new_url(org_repo), {**decoys, **fields})
    assert response.status_code == 302, field_errors(response, "__all__") or text(response)
    assert response.url == f"/repository/{org_repo.full_name}?tab=settings#settings-notifications"
    rule = RepositoryNotification.objects.get(repository=org_repo)
    assert (rule.event, rule.event_config, rule.method, rule.config) == (event, event_config, method, config)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"event": "build_start", "ref_regex": "(", "method": "webhook", "webhook_url": "https://h.example.com/"},
         "ref_regex", "ref-regex is not a valid regular expression"),
        ({"event": "repo_push", "method": "webhook", "webhook_url": "ftp://h.example.com/"},
         "webhook_url", "Only http and https URLs are allowed"),
        ({"event": "repo_push", "method": "webhook", "webhook_url": "http://10.1.2.3/hook"},
         "webhook_url", "not allowed"),
        ({"event": "repo_push", "method": "webhook", "webhook_url": "https://h.example.com/", "webhook_template": "{"},
         "webhook_template", "not valid JSON"),
        ({"event": "repo_push", "method": "slack", "slack_url": ""}, "slack_url", "Missing Slack webhook URL"),
        ({"event": "repo_push", "method": "quay_notification", "target_kind": "user", "target_name": "nobody"},
         "target_name", "Unknown user nobody"),
        ({"event": "repo_push", "method": "quay_notification", "target_kind": "team", "target_name": "ghosts"},
         "target_name", "Unknown team ghosts in acme"),
        ({"event": "repo_push", "method": "email", "email": "not an address"}, "email", "Invalid e-mail address"),
        ({"event": "repo_push", "method": "hipchat", "hipchat_room": "7"}, "hipchat_token", "Missing HipChat"),
        ({"event": "no_such_event", "method": "webhook"}, "event", "Select a valid choice"),
        ({"event": "repo_push", "method": "carrier_pigeon"}, "method", "Select a valid choice"),
        ({"event": "repo_push", "method": "flowdock", "flowdock_token": "x", "title": "t" * 256},
         "title", "at most 255"),
    ],
)  # fmt: skip
def test_invalid_input_is_refused_next_to_its_field_and_nothing_is_stored(as_alice, org_repo, fields, field, message):
    response = as_alice.post(new_url(org_repo), {"title": "Kept title", **fields})
    assert response.status_code == 400
    assert message in field_errors(response, field), text(response)
    assert not RepositoryNotification.objects.exists()
    assert not UsageLog.objects.filter(kind="add_repo_notification").exists()
    # The input is kept.
    html = response.content.decode()
    for name, value in fields.items():
        if name not in ("event", "method", "target_kind", "level") and len(value) < 100:
            assert f'value="{escape(value)}"' in html or re.search(rf">\s*{re.escape(escape(value))}</textarea>", html)


def test_an_email_address_is_confirmed_from_the_form_before_it_is_used(
    as_alice,
    anonymous,
    org_repo,
    smtp,  # noqa: F811
    eager_celery,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    fields = {"event": "repo_push", "method": "email", "email": "Ops@Example.com", "title": "Mail ops"}
    refused = as_alice.post(new_url(org_repo), fields)
    assert refused.status_code == 400
    assert "not authorized" in field_errors(refused, "email")
    assert "Not confirmed" in text(refused) and "Send confirmation e-mail" in text(refused)
    state = as_alice.get(f"/repository/{org_repo.full_name}/-/notifications/email-state?email=ops@example.com")
    assert "Not confirmed" in text(state)

    with django_capture_on_commit_callbacks(execute=True):
        sent = as_alice.post(new_url(org_repo), {**fields, "action": "verify"})
    assert sent.status_code == 200
    assert messages_of(sent) == [
        "Sent a confirmation link to ops@example.com. Create the notification once it has been opened."
    ]
    assert 'value="Ops@Example.com"' in sent.content.decode()  # the form comes back as it was
    assert "Waiting" in text(sent)
    (mail,) = smtp.wait_for(1)
    assert not RepositoryNotification.objects.exists()
    code = re.search(r"/authrepoemail\?code=([\w-]+)", mail.get_body(("plain",)).get_content()).group(1)
    assert anonymous.post("/authrepoemail", {"code": code}).status_code == 200
    assert AuthorizedEmail.objects.get(repository=org_repo).confirmed
    assert "Confirmed" in text(
        as_alice.get(f"/repository/{org_repo.full_name}/-/notifications/email-state?email=OPS@example.com")
    )

    created = as_alice.post(new_url(org_repo), fields)
    assert created.status_code == 302
    assert RepositoryNotification.objects.get(repository=org_repo).config == {"email": "ops@example.com"}


# --- Delete, reset, test, the delivery log, redelivery ---------------------------------------------


def test_delete_removes_the_rule_and_logs_it(as_alice, alice, org_repo):
    rule = make_rule(org_repo, alice, title="Gone soon")
    response = as_alice.post(rule_url(rule, "delete"))
    assert response.status_code == 302 and response.url.endswith("?tab=settings#settings-notifications")
    assert not RepositoryNotification.objects.filter(pk=rule.pk).exists()
    assert UsageLog.objects.filter(repository=org_repo, kind="delete_repo_notification").count() == 1
    assert "Deleted the notification “Gone soon” and its delivery log." in messages_of(as_alice.get(response.url))
    assert as_alice.get(rule_url(rule)).status_code == 404


def test_test_sends_sample_data_shown_in_the_log_and_redeliver_keeps_the_id(
    as_alice,
    alice,
    org_repo,
    receiver,  # noqa: F811
):
    rule = make_rule(org_repo, alice, config={"url": receiver.url("/ci")}, title="CI")
    response = as_alice.post(rule_url(rule, "test"))
    assert response.status_code == 302 and response.url == rule_url(rule)
    delivery = Delivery.objects.get(notification=rule)
    assert delivery.is_test and delivery.state == "pending"
    pending = as_alice.get(rule_url(rule))
    assert "Not tried yet" in text(pending) and "Pending" in text(pending)

    assert deliver_due() == ["delivered"]
    (request,) = receiver.wait_for(1)
    assert request.json()["repository"] == "acme/tools" and request.headers["webhook-id"] == str(delivery.uuid)
    log = as_alice.get(rule_url(rule))
    row = re.search(rf'<tr id="delivery-{delivery.uuid}">(.*?)</tr>', log.content.decode(), re.S).group(1)
    row_text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))
    assert "Push to repository" in row_text and "test" in row_text and "Delivered" in row_text
    assert str(delivery.uuid) in row_text and "succeeded" in row_text and "HTTP 200" in row_text
    assert re.search(r"\d+ ms", row_text)

    receiver.reply(Reply(status=503, body=b"busy"))
    redelivered = as_alice.post(rule_url(rule, f"deliveries/{delivery.uuid}/redeliver"), {"next": rule_url(rule)})
    assert redelivered.status_code == 302 and redelivered.url == rule_url(rule)
    assert f"Queued delivery {delivery.uuid} again, with the same id." in messages_of(as_alice.get(rule_url(rule)))
    assert deliver_due() == ["pending"]
    second = receiver.wait_for(2)[1]
    assert second.headers["webhook-id"] == str(delivery.uuid)
    again = text(as_alice.get(rule_url(rule)))
    assert "failed" in again and "HTTP 503" in again and "Answered 503" in again
    assert again.count("succeeded") == 1


def test_the_delivery_log_is_paginated_with_a_fixed_number_of_queries(
    as_alice, alice, org_repo, django_assert_max_num_queries
):
    rule = make_rule(org_repo, alice, title="Many")
    for number in range(25):
        push_event(org_repo, f"t{number}")
    with django_assert_max_num_queries(12):
        first = as_alice.get(rule_url(rule))
    assert len(first.context["deliveries"]) == 20 and first.context["older_url"] == "?page=1"
    second = as_alice.get(rule_url(rule) + "?page=1")
    assert len(second.context["deliveries"]) == 5 and second.context["older_url"] is None


def test_redelivering_a_disabled_rules_delivery_says_to_reset_first(as_alice, alice, org_repo):
    rule = make_rule(org_repo, alice)
    push_event(org_repo, "v1")
    delivery = Delivery.objects.get(notification=rule)
    RepositoryNotification.objects.filter(pk=rule.pk).update(enabled=False, disabled_reason="Disabled by a test")
    response = as_alice.post(rule_url(rule, f"deliveries/{delivery.uuid}/redeliver"))
    assert "The notification is disabled: reset it first" in messages_of(as_alice.get(response.url))


# --- Who may do what --------------------------------------------------------------------------------


def _every_action(rule, delivery_uuid) -> list[tuple[str, str]]:
    return [
        ("get", new_url(rule.repository)),
        ("post", new_url(rule.repository)),
        ("get", rule_url(rule)),
        ("post", rule_url(rule, "delete")),
        ("post", rule_url(rule, "reset")),
        ("post", rule_url(rule, "test")),
        ("post", rule_url(rule, f"deliveries/{delivery_uuid}/redeliver")),
        ("get", f"/repository/{rule.repository.full_name}/-/notifications/email-state?email=a@example.com"),
    ]


def test_writers_get_403_and_outsiders_404_on_every_notification_page(writer_bob, as_charlie, alice, org_repo):
    rule = make_rule(org_repo, alice)
    push_event(org_repo, "v1")
    delivery = Delivery.objects.get(notification=rule)
    as_writer = signed_in(writer_bob)
    for method, url in _every_action(rule, delivery.uuid):
        assert getattr(as_writer, method)(url).status_code == 403, url
        assert getattr(as_charlie, method)(url).status_code == 404, url
    assert RepositoryNotification.objects.filter(pk=rule.pk, enabled=True).exists()
    assert Delivery.objects.filter(notification=rule).count() == 1


def test_another_organizations_rule_is_not_found(as_alice, alice, org_repo, globex_rule):
    make_rule(org_repo, alice)
    delivery_uuid = "00000000-0000-0000-0000-000000000000"
    # Alice administers acme/tools, not globex/site: its rule id under her repository is unknown.
    for path in ("", "/delete", "/reset", "/test", f"/deliveries/{delivery_uuid}/redeliver"):
        url = f"/repository/{org_repo.full_name}/-/notifications/{globex_rule.uuid}{path}"
        response = as_alice.get(url) if not path else as_alice.post(url)
        assert response.status_code == 404, url
    assert as_alice.get(rule_url(globex_rule)).status_code == 404
    assert RepositoryNotification.objects.filter(pk=globex_rule.pk).exists()
    assert not Delivery.objects.filter(notification=globex_rule).exists()


def test_anonymous_visitors_are_sent_to_sign_in(anonymous, alice, org_repo):
    rule = make_rule(org_repo, alice)
    for url in ("/user/notifications", new_url(org_repo), rule_url(rule)):
        response = anonymous.get(url)
        assert response.status_code == 302 and response.url.startswith("/signin?next="), url
    assert anonymous.post(rule_url(rule, "delete")).status_code == 302
    assert RepositoryNotification.objects.filter(pk=rule.pk).exists()
