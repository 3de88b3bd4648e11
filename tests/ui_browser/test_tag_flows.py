"""The Tags tab, Tag History and Fetch Tag in Chromium against a live server: push with skopeo,
see the tags, Add New Tag from the gear menu (with the keyboard), move a tag after confirming,
delete it, restore it from the history, change an expiration, then copy a pull-by-digest command
from the Fetch Tag dialog and run its equivalent with skopeo. Also: reading without JavaScript,
and the pages on a phone screen."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e import images
from tests.e2e.conftest import PASSWORD
from tests.ui_browser.conftest import Browser

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CREDS = f"alice:{PASSWORD}"


def push(clients, layout, ref: str) -> None:
    clients.skopeo("copy", "--dest-tls-verify=false", "--dest-creds", CREDS, f"oci:{layout}:latest", f"docker://{ref}")


def inspect(clients, ref: str, *, check: bool = True):
    result = clients.skopeo("inspect", "--tls-verify=false", "--creds", CREDS, f"docker://{ref}", check=check)
    return json.loads(result.stdout) if result.returncode == 0 else None


def tags_tab(ui):
    ui.page.get_by_role("navigation", name="Repository").get_by_role("link", name="Tags").click()
    ui.page.locator("#tags").wait_for()


def tag_cell(ui, name: str):
    return ui.page.locator("#tags").get_by_role("rowheader", name=name, exact=True)


def tag_row(ui, name: str):
    return ui.page.locator("#tags tbody tr").filter(has=ui.page.get_by_role("rowheader", name=name, exact=True))


def message(ui, text: str) -> None:
    """Wait for the page that says ``text`` (the answer to a form just sent)."""
    ui.page.locator(".messages li", has_text=text).wait_for()


def gear(ui, tag: str, item: str) -> None:
    """Open the tag's gear menu and choose ``item``."""
    summary = ui.page.get_by_label(f"Actions for tag {tag}", exact=True)
    summary.click()
    summary.locator("xpath=..").get_by_role("link", name=item, exact=True).click()
    ui.page.locator("#tag-panel").wait_for()


@pytest.fixture(scope="module")
def second_layout(tmp_path_factory):
    """Another image than busybox (random layers), in an OCI layout under ``latest``."""
    return images.write_oci_layout(tmp_path_factory.mktemp("ui-second") / "layout", images.hand_image())


def test_add_move_delete_restore_and_fetch_a_tag(ui, clients, busybox_layout, second_layout, tmp_path):
    host = ui.server.host
    push(clients, busybox_layout, f"{host}/alice/tagged:1.0")
    push(clients, second_layout, f"{host}/alice/tagged:2.0")
    first = inspect(clients, f"{host}/alice/tagged:1.0")["Digest"]
    second = inspect(clients, f"{host}/alice/tagged:2.0")["Digest"]

    ui.sign_in("alice")
    ui.goto("/repository/alice/tagged")
    tags_tab(ui)
    assert tag_cell(ui, "1.0").is_visible() and tag_cell(ui, "2.0").is_visible()
    assert second[:19] in ui.text("#tags") and first[:19] in ui.text("#tags")

    # Add New Tag, with the keyboard only: the gear is a <details>; Enter opens it, Tab reaches
    # its first item.
    ui.page.get_by_label("Actions for tag 1.0", exact=True).focus()
    ui.page.keyboard.press("Enter")
    ui.page.keyboard.press("Tab")
    assert ui.page.evaluate("document.activeElement.textContent") == "Add New Tag"
    ui.page.keyboard.press("Enter")
    name = ui.page.get_by_label("New tag name")
    name.wait_for()
    assert ui.page.evaluate("document.activeElement.id") == "id_name"  # the panel's field has the focus
    ui.page.keyboard.type("stable")
    ui.page.keyboard.press("Enter")
    message(ui, f"Added tag stable to {first[:19]}.")
    assert tag_cell(ui, "stable").is_visible()
    ui.page.get_by_label("Actions for tag stable", exact=True).click()
    ui.shot("tags")
    ui.page.keyboard.press("Escape")  # ui.js closes the menu
    assert ui.page.locator("details.tag-menu[open]").count() == 0
    assert inspect(clients, f"{host}/alice/tagged:stable")["Digest"] == first

    # The same from 2.0's menu with the name "stable": the UI asks to move it rather than add it.
    gear(ui, "2.0", "Add New Tag")
    ui.page.get_by_label("New tag name").fill("stable")
    ui.page.get_by_role("button", name="Add Tag").click()
    panel = ui.text("#tag-panel")
    assert "The tag stable already exists and points at" in panel and "rather than add it?" in panel
    assert inspect(clients, f"{host}/alice/tagged:stable")["Digest"] == first
    ui.shot("tag-move-confirmation")
    ui.page.locator("#tag-panel").get_by_role("button", name="Move Tag").click()
    message(ui, f"Moved tag stable from {first[:19]} to {second[:19]}.")
    assert inspect(clients, f"{host}/alice/tagged:stable")["Digest"] == second

    # Delete Tag: the panel says what it does; the tag is gone for clients too.
    gear(ui, "1.0", "Delete Tag")
    assert "it can be restored from Tag History" in ui.text("#tag-panel")
    ui.page.locator("#tag-panel").get_by_role("button", name="Delete Tag").click()
    # (The window is alice's time machine, which another test of the session may have changed.)
    message(ui, "Deleted tag 1.0. Restore it from Tag History within ")
    assert tag_cell(ui, "1.0").count() == 0
    assert inspect(clients, f"{host}/alice/tagged:1.0", check=False) is None

    # Actions -> View Tags History; Restore on the line where 1.0 ended.
    ui.page.locator("#tags-actions summary").click()
    ui.page.get_by_role("link", name="View Tags History").click()
    ui.page.locator("#tag-history").wait_for()
    history = ui.text("#tag-history")
    assert "stable" in history and "1.0" in history
    ui.shot("tag-history")
    ui.page.get_by_role("button", name=f"Restore tag 1.0 to {first[:19]}").click()
    message(ui, f"Restored tag 1.0 to {first[:19]}.")
    assert inspect(clients, f"{host}/alice/tagged:1.0")["Digest"] == first
    # The restored line is the current one now, marked as restored.
    assert re.search(r"1\.0 restored sha256:\w{12}.*now", ui.text("#tag-history"))

    # Fetch Tag: pick the pull by digest, copy it, and run what it names.
    ui.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui.server.url)
    tags_tab(ui)
    gear(ui, "stable", "Fetch Tag")
    ui.page.get_by_label("Image format").select_option(label="Docker Pull (by digest)")
    command = ui.page.get_by_label("Command", exact=True)
    assert command.input_value() == f"docker pull {host}/alice/tagged@{second}"
    ui.page.get_by_role("button", name="Copy Command").click()
    ui.page.get_by_role("button", name="Copied").wait_for()
    ui.shot("fetch-tag")
    copied = ui.page.evaluate("navigator.clipboard.readText()")
    assert copied == f"docker pull {host}/alice/tagged@{second}"
    reference = copied.removeprefix("docker pull ")
    assert inspect(clients, reference)["Digest"] == second
    clients.skopeo(
        "copy", "--src-tls-verify=false", "--src-creds", CREDS, f"docker://{reference}", f"oci:{tmp_path}/pulled:x"
    )
    pulled = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert pulled["manifests"][0]["digest"] == second

    # The other formats are whole command lines too.
    for label, expected in (
        ("Docker Pull (by tag)", f"docker pull {host}/alice/tagged:stable"),
        ("Podman Pull (by tag)", f"podman pull {host}/alice/tagged:stable"),
        ("rkt Fetch", f"rkt fetch {host}/alice/tagged:stable"),
    ):
        ui.page.get_by_label("Image format").select_option(label=label)
        assert command.input_value() == expected


def test_change_an_expiration_with_errors_explained(ui, clients, busybox_layout):
    push(clients, busybox_layout, f"{ui.server.host}/alice/expiring:1.0")
    ui.sign_in("alice")
    ui.goto("/repository/alice/expiring?tab=tags")
    gear(ui, "1.0", "Change Expiration")
    field = ui.page.get_by_label(re.compile(r"^Expires at"))
    field.fill("2001-01-01T10:00")
    ui.page.get_by_role("button", name="Save Expiration").click()
    assert "The expiration must be in the future" in ui.text("#tag-panel")
    assert ui.page.get_by_label(re.compile(r"^Expires at")).input_value() == "2001-01-01T10:00"
    ui.page.get_by_label(re.compile(r"^Expires at")).fill("2099-01-01T10:00")
    ui.page.get_by_role("button", name="Save Expiration").click()
    assert "An expiration can be at most 104 weeks after the tag was pushed" in ui.text("#tag-panel")

    ui.page.get_by_label(re.compile(r"^Expires at")).fill(_in_days(ui, 30))
    ui.page.get_by_role("button", name="Save Expiration").click()
    message(ui, "Tag 1.0 expires at")
    assert _in_days(ui, 30)[:10] in tag_row(ui, "1.0").inner_text()

    gear(ui, "1.0", "Change Expiration")
    ui.page.get_by_label(re.compile(r"^Expires at")).fill("")
    ui.page.get_by_role("button", name="Save Expiration").click()
    message(ui, "Tag 1.0 no longer expires.")
    assert "Never" in tag_row(ui, "1.0").inner_text()


def _in_days(ui, days: int) -> str:
    """A datetime-local value ``days`` from now in the server's zone (UTC)."""
    return ui.page.evaluate(f"new Date(Date.now() + {days} * 86400000).toISOString().slice(0, 16)")


def test_tags_and_history_read_without_javascript(browser, ui_registry, screenshot_dir, clients, busybox_layout):
    push(clients, busybox_layout, f"{ui_registry.host}/alice/nojs:1.0")
    context = browser.new_context(java_script_enabled=False)
    try:
        plain = Browser(context.new_page(), ui_registry, screenshot_dir)
        plain.sign_in("alice")
        plain.goto("/repository/alice/nojs?tab=tags")
        # The gear menu is a <details>: it opens without script.
        plain.page.get_by_label("Actions for tag 1.0", exact=True).click()
        plain.page.get_by_role("link", name="Fetch Tag").click()
        plain.page.get_by_label("Image format").select_option("podman-digest")
        plain.page.get_by_role("button", name="Show command").click()
        command = plain.page.get_by_label("Command", exact=True).input_value()
        assert re.fullmatch(rf"podman pull {re.escape(ui_registry.host)}/alice/nojs@sha256:[0-9a-f]{{64}}", command)
        plain.goto("/repository/alice/nojs?tab=history")
        assert "1.0" in plain.text("#tag-history") and "Current" in plain.text("#tag-history")
    finally:
        context.close()


def test_the_tag_pages_fit_a_phone_screen(browser, ui_registry, screenshot_dir, clients, busybox_layout):
    push(clients, busybox_layout, f"{ui_registry.host}/alice/phone:a-rather-long-tag-name-1.0")
    context = browser.new_context(viewport={"width": 375, "height": 740})
    try:
        phone = Browser(context.new_page(), ui_registry, screenshot_dir)
        phone.sign_in("alice")
        for path in (
            "/repository/alice/phone?tab=tags",
            "/repository/alice/phone?tab=tags&tag=a-rather-long-tag-name-1.0&action=fetch",
            "/repository/alice/phone?tab=history",
        ):
            phone.goto(path)
            overflow = phone.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (path, overflow)
        phone.goto("/repository/alice/phone?tab=tags")
        phone.shot("phone-tags")
    finally:
        context.close()
