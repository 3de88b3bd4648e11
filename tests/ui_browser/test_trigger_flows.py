"""Build triggers in Chromium against a live server: create a custom git trigger from the Builds
tab's Create Build Trigger menu (a refused git URL shown next to its input first), read its SSH
public key and webhook URL on the credentials page, push to that webhook as a git server's hook
would, Run Now a branch, see both builds on the Builds tab, disable the trigger (a push is then
refused) and delete it. Screenshots go to ``UI_SCREENSHOT_DIR``."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

REPOSITORY = "alice/private-images"
TAB = f"/repository/{REPOSITORY}?tab=builds"
CREDENTIALS_URL = re.compile(rf".*/repository/{REPOSITORY}/-/triggers/([0-9a-f-]{{36}})/credentials$")
SHA = "5c1e2d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"


@pytest.fixture(scope="module")
def builds_enabled(ui_registry):
    """Builds on for this module only, and a robot of alice's to pull base images with."""
    ui_registry.shell(
        "from builds import services\n"
        "from accounts import services as accounts\n"
        "from accounts.models import User\n"
        "services.build_settings_update(enabled=True, max_queued_per_namespace=50)\n"
        "accounts.robot_create(namespace=User.objects.get(username='alice').namespace, short_name='builder')\n"
    )
    yield
    ui_registry.shell("from builds import services\nservices.build_settings_update(enabled=False)")


def push(server, webhook_url: str, **payload) -> requests.Response:
    """What a git server's post-receive hook sends: the JSON payload, with the URL's credentials
    as HTTP Basic (the URL names the public host; the request goes to the live server)."""
    parts = urlsplit(webhook_url)
    body = {"commit": SHA, "ref": "refs/heads/main", "default_branch": "main", **payload}
    return requests.post(
        f"{server.url}{parts.path}",
        json=body,
        auth=(unquote(parts.username), unquote(parts.password)),
        timeout=30,
    )


def trigger_menu(ui, trigger_uuid: str):
    """Open the gear menu of one trigger's row."""
    row = ui.page.locator(f'#triggers tr[data-trigger="{trigger_uuid}"]')
    row.locator("summary").click()
    return row


def test_custom_git_trigger_from_creation_to_disable(ui, builds_enabled):
    ui.sign_in("alice")
    ui.goto(TAB)
    ui.page.get_by_role("heading", name="Build Triggers").wait_for()
    assert "No build triggers" in ui.text("#triggers-panel")
    ui.page.locator("#trigger-create-menu summary").click()
    ui.page.get_by_role("link", name="Custom Git Repository Push").click()
    ui.page.get_by_role("heading", name="Custom Git Repository Push").wait_for()

    # A local path is not a git URL the builder may clone: refused next to the input, kept.
    ui.page.get_by_label("Git repository URL").fill("/srv/git/app.git")
    ui.page.get_by_role("button", name="Create Trigger").click()
    ui.page.locator("#id_build_source_error").wait_for()
    assert "build_source must be a git URL" in ui.text("#id_build_source_error")
    assert ui.page.get_by_label("Git repository URL").input_value() == "/srv/git/app.git"

    ui.page.get_by_label("Git repository URL").fill("git@git.example.com:alice/app.git")
    ui.page.get_by_label("Pull robot").select_option("alice+builder")
    ui.page.get_by_label("Branch/tag filter").fill("heads/main|tags/v.*")
    ui.page.get_by_label("Tag templates").fill("${commit_info.short_sha}")
    ui.shot("trigger-new")
    ui.page.get_by_role("button", name="Create Trigger").click()
    ui.page.wait_for_url(CREDENTIALS_URL)
    trigger_uuid = CREDENTIALS_URL.match(ui.page.url).group(1)

    # View Credentials (guide 3.2): the SSH public key and the webhook URL with its secret.
    assert "Created the custom git trigger" in ui.text(".messages")
    public_key = ui.page.get_by_label("SSH Public Key").input_value()
    webhook_url = ui.page.get_by_label("Webhook Endpoint URL").input_value()
    assert public_key.startswith("ssh-ed25519 ")
    assert re.fullmatch(rf"https?://\$token:[^@/]+@[^/]+/webhooks/push/trigger/{trigger_uuid}", webhook_url)
    assert "PRIVATE KEY" not in ui.page.content()
    ui.shot("trigger-credentials")

    # The git server's hook posts a push: a build is queued.
    answer = push(ui.server, webhook_url, commit_info={"url": "", "message": "Add the app", "date": "2026-12-01"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["skipped"] is False
    pushed_build = answer.json()["build_id"]

    # The trigger is listed with its source, filter and robot; Run Now from its gear menu.
    ui.goto(TAB)
    row = ui.page.locator(f'#triggers tr[data-trigger="{trigger_uuid}"]')
    listed = re.sub(r"\s+", " ", row.inner_text())
    assert "git@git.example.com:alice/app.git" in listed and "heads/main|tags/v.*" in listed
    assert "alice+builder" in listed and "Enabled" in listed
    trigger_menu(ui, trigger_uuid).get_by_role("link", name="Run Now").click()
    ui.page.get_by_role("heading", name="Run the Custom Git trigger now").wait_for()
    ui.page.get_by_label("Build").select_option("branch")
    ui.page.get_by_label("Branch, tag or commit").fill("feature/login")
    ui.shot("trigger-run")
    ui.page.get_by_role("button", name="Start Build").click()
    ui.page.wait_for_url(re.compile(r".*\?tab=builds$"))
    assert re.search(r"Started build [0-9a-f]{8} of feature/login\.", ui.text(".messages"))

    # Both builds are on the Builds tab, waiting, as the trigger's: the two newest rows (the
    # session's server may hold builds of other test modules below them).
    rows = ui.page.locator("#builds tbody tr")
    listed = rows.count()
    assert listed >= 2
    assert ui.page.locator(f'#builds tr[data-build="{pushed_build}"]').count() == 1
    for index in range(2):
        assert "Trigger commit" in rows.nth(index).inner_text()
        assert rows.nth(index).locator(".phase").inner_text() == "Waiting"
    assert SHA[:7] in ui.text("#builds")
    ui.shot("trigger-builds-tab")

    # Disable: the row says so (and why); a push is refused while it is off.
    trigger_menu(ui, trigger_uuid).get_by_role("button", name="Disable Trigger").click()
    ui.page.locator(".messages", has_text="Disabled the Custom Git trigger.").wait_for()
    row = ui.page.locator(f'#triggers tr[data-trigger="{trigger_uuid}"]')
    state = re.sub(r"\s+", " ", row.locator(".trigger-state").inner_text())
    assert "Disabled" in state and "Disabled by a user" in state
    ui.shot("trigger-disabled")
    refused = push(ui.server, webhook_url)
    assert refused.status_code == 400 and "disabled" in refused.json()["error_message"]
    assert ui.page.locator("#builds tbody tr").count() == listed  # no build added

    # Delete (the confirmation is accepted): the trigger is gone, its builds stay.
    trigger_menu(ui, trigger_uuid).get_by_role("button", name="Delete Trigger").click()
    ui.page.locator(".messages", has_text="Deleted the Custom Git trigger.").wait_for()
    assert ui.page.locator(f'#triggers tr[data-trigger="{trigger_uuid}"]').count() == 0
    assert ui.page.locator("#builds tbody tr").count() == listed  # no build added
    assert push(ui.server, webhook_url).status_code == 404
