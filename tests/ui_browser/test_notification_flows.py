"""Repository notifications in Chromium against a live server with a real Celery worker: create a
webhook through the Create Notification form, press Test and see the signed request arrive at a
local receiver and the delivery in the log; an in-app notification raises the bell's count and
the notice is dismissed from the list.

The live server of this module is its own (not the session's ``ui_registry``): it allows
outbound requests to 127.0.0.1, where the receiver listens, and runs a worker with a fast sweeper.
"""

from __future__ import annotations

import re
import time

import pytest

from notifications import signing
from tests.e2e.conftest import live_server
from tests.notifications.receivers import Receiver
from tests.notifications.test_live import Worker
from tests.ui_browser.conftest import UiRegistry

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

DELIVERY_SECONDS = 60


@pytest.fixture(scope="module")
def ui_registry(tmp_path_factory):
    """Overrides the session's server for this module's ``ui`` fixture: outbound requests to
    127.0.0.1 allowed, and a worker (with its beat) delivering."""
    for server in live_server(
        tmp_path_factory,
        "ui-notify",
        UiRegistry,
        SIGNIN_RATE="10000/minute",
        OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32",
        NOTIFICATION_SWEEP_SECONDS="1",
        GC_INTERVAL_SECONDS="0",
    ):
        worker = Worker(server, "ui-notify-worker").start()
        try:
            yield server
        finally:
            worker.stop()


@pytest.fixture
def receiver():
    found = Receiver()
    yield found
    found.stop()


def reload_until(ui, selector: str, pattern: str, timeout: float = DELIVERY_SECONDS) -> str:
    """Reload the page until ``selector``'s text matches ``pattern`` (the worker is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        found = ui.text(selector)
        if re.search(pattern, found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} never appeared in {selector}: {found}")
        time.sleep(0.5)
        ui.page.reload()


def bell_count(ui) -> str:
    # The header loads the count with htmx after the page.
    ui.page.locator("#bell-count").wait_for()
    return ui.page.locator("#bell-count").inner_text()


def open_create_form(ui, repository: str) -> None:
    ui.goto(f"/repository/{repository}?tab=settings")
    ui.page.get_by_role("link", name="Create Notification").click()
    ui.page.get_by_role("heading", name="Create Notification").wait_for()


def test_create_a_webhook_test_it_and_see_the_delivery(ui, receiver):
    ui.sign_in("alice")
    open_create_form(ui, "alice/private-images")
    ui.page.get_by_label("Event", exact=True).select_option("repo_push")
    # Only the chosen event's filter and the chosen method's fields show.
    assert ui.page.get_by_label("Minimum severity").is_hidden()
    ui.page.get_by_label("Event", exact=True).select_option("vulnerability_found")
    assert ui.page.get_by_label("Minimum severity").is_visible()
    ui.page.get_by_label("Event", exact=True).select_option("repo_push")
    ui.page.get_by_label("Method", exact=True).select_option("webhook")
    assert ui.page.get_by_label("E-mail address", exact=True).is_hidden()
    assert ui.page.get_by_label("Slack incoming webhook URL").is_hidden()

    # A URL the guard refuses comes back next to its field, with the input kept.
    ui.page.get_by_label("Webhook URL", exact=True).fill("http://10.1.2.3/hook")
    ui.page.get_by_label("Title", exact=True).fill("Browser hook")
    ui.page.get_by_role("button", name="Create Notification").click()
    assert "The address 10.1.2.3 is not allowed" in ui.text()
    assert ui.page.get_by_label("Title", exact=True).input_value() == "Browser hook"
    assert ui.page.get_by_label("Webhook URL", exact=True).is_visible()
    ui.shot("notification-form-error")

    ui.page.get_by_label("Webhook URL", exact=True).fill(receiver.url("/hook"))
    ui.page.get_by_role("button", name="Create Notification").click()
    ui.page.get_by_role("heading", name="Created the notification “Browser hook”").wait_for()
    secret = ui.page.get_by_label("Signing secret").input_value()
    assert secret.startswith("whsec_")
    ui.shot("notification-created")

    ui.page.get_by_role("button", name="Test", exact=True).click()
    ui.page.wait_for_url(re.compile(r".*/-/notifications/[0-9a-f-]+$"))
    assert "Queued a test delivery with sample data" in ui.text()
    (request,) = receiver.wait_for(1, timeout=DELIVERY_SECONDS)
    assert request.json()["repository"] == "alice/private-images"
    assert signing.verify(secret=secret, headers=request.headers, body=request.body)

    log = reload_until(ui, "#deliveries", r"Delivered")
    assert request.headers["webhook-id"] in log
    assert "succeeded" in log and "HTTP 200" in log and re.search(r"\d+ ms", log)
    ui.shot("notification-delivery-log")

    ui.goto("/repository/alice/private-images?tab=settings")
    row = ui.page.locator("#notifications tbody tr").filter(has_text="Browser hook")
    assert "Webhook POST" in row.inner_text() and receiver.url("/hook") in row.inner_text()
    assert secret not in ui.page.content()
    ui.shot("repository-settings-notifications")
    row.get_by_role("button", name="Delete Browser hook").click()
    assert "Deleted the notification “Browser hook” and its delivery log." in ui.text()
    assert ui.page.locator("#notifications").count() == 0


def test_an_in_app_notice_raises_the_bell_and_is_dismissed(ui):
    ui.sign_in("alice")
    assert bell_count(ui) == "0"
    open_create_form(ui, "alice/public-images")
    ui.page.get_by_label("Event", exact=True).select_option("repo_push")
    ui.page.get_by_label("Method", exact=True).select_option("quay_notification")
    ui.page.get_by_label("Notify", exact=True).select_option("user")
    ui.page.get_by_label("User, team or organization name").fill("alice")
    ui.page.get_by_label("Title", exact=True).fill("Tell alice")
    ui.page.get_by_role("button", name="Create Notification").click()
    assert "Created the notification “Tell alice”." in ui.text()

    ui.page.locator("#notifications tbody tr").filter(has_text="Tell alice").get_by_role("button", name="Test").click()
    reload_until(ui, "#deliveries", r"Delivered")
    # The notice is there once the delivery is; the bell shows it on the next page.
    ui.goto("/")
    assert bell_count(ui) == "1"

    ui.page.locator("#bell").click()
    ui.page.get_by_role("heading", name="Notifications").wait_for()
    notice = ui.page.locator("#notices li").first
    assert "New push to alice/public-images: latest, v1.0" in notice.inner_text()
    ui.shot("notifications")
    notice.get_by_role("button", name=re.compile("^Dismiss")).click()
    assert "Dismissed the notification." in ui.text()
    assert "No unread notifications." in ui.text()
    assert bell_count(ui) == "0"
