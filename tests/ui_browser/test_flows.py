"""What a person does in the web UI, in Chromium against a live server: sign in, create
repositories from the + menu, push with skopeo and see the tag, change settings, set up an
organization with a team and a robot and push as the robot, account settings, the sign-up switch.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def skopeo_push(clients, layout, ref: str, creds: str) -> None:
    clients.skopeo("copy", "--dest-tls-verify=false", "--dest-creds", creds, f"oci:{layout}:latest", f"docker://{ref}")


def open_create_menu_with_the_keyboard(ui, item: str) -> None:
    # The + menu is a <details>: it opens with Enter on its summary, like any button.
    ui.page.get_by_label("Create new").focus()
    ui.page.keyboard.press("Enter")
    ui.page.locator("#create-menu").get_by_role("link", name=item).click()


def tab(ui, label: str):
    return ui.page.get_by_role("navigation", name="Repository").get_by_role("link", name=label)


def create_repository(ui, name: str, *, kind: str = "Container Image Repository", public: bool = False,
                      description: str = "", namespace: str | None = None) -> None:  # fmt: skip
    open_create_menu_with_the_keyboard(ui, "New Repository")
    ui.page.get_by_label(kind).check()
    if namespace:
        ui.page.get_by_label("Namespace").select_option(namespace)
    ui.page.get_by_label("Repository name").fill(name)
    ui.page.get_by_label("Public" if public else "Private", exact=False).check()
    if description:
        ui.page.get_by_label("Description").fill(description)
    ui.page.get_by_role("button", name="Create Repository").click()


def test_sign_in_create_an_image_repository_push_and_see_the_tag(ui, clients, busybox_layout):
    ui.goto("/signin")
    ui.shot("signin")
    ui.sign_in("alice")
    assert "alice" in ui.text("header")

    create_repository(ui, "web", public=True, description="# Web\n\nServes the **site**.\n\n<script>alert(1)</script>")
    ui.page.wait_for_url(re.compile(r".*/repository/alice/web$"))
    body = ui.text()
    assert "Created the repository alice/web." in body
    assert "This repository is empty" in body
    assert ui.page.locator(".description strong").inner_text() == "site"
    assert ui.page.locator(".description script").count() == 0

    skopeo_push(clients, busybox_layout, f"{ui.server.host}/alice/web:1.0", f"alice:{PASSWORD}")
    ui.page.reload()
    assert ui.page.locator("#recent-tags").get_by_role("cell", name="1.0", exact=True).is_visible()
    assert ui.text("#summary-tags") == "1"
    assert re.match(r"[\d.]+\s+(KB|MB)", ui.text("#summary-size")), ui.text("#summary-size")
    pull = ui.page.get_by_label("podman command").input_value()
    assert pull == f"podman pull {ui.server.host}/alice/web:1.0"
    ui.shot("repository-information")

    ui.goto("/")
    row = ui.page.get_by_role("row").filter(has_text="alice/web")
    assert "Public" in row.inner_text() and re.search(r"[\d.]+\s+(KB|MB)", row.inner_text())
    # Star it from the list (htmx swaps the button in place).
    row.get_by_role("button", name="Star alice/web").click()
    row.get_by_role("button", name="Unstar alice/web").wait_for()
    ui.shot("repository-list")
    ui.page.get_by_label("Starred only").check()
    ui.page.wait_for_url(re.compile(r".*starred=1.*"))
    ui.page.get_by_role("link", name="alice/public-images").wait_for(state="detached")
    assert ui.page.get_by_role("link", name="alice/web").is_visible()


def test_create_an_application_repository(ui):
    ui.sign_in("alice")
    create_repository(ui, "helm-charts", kind="Application Repository")
    ui.page.wait_for_url(re.compile(r".*/repository/alice/helm-charts$"))
    assert "Application" in ui.text(".repo-title")
    oras = ui.page.get_by_label("oras command").input_value()
    assert oras.startswith(f"oras pull {ui.server.host}/alice/helm-charts:")
    # A second one with the same name is refused, and the form keeps what was typed.
    create_repository(ui, "helm-charts", kind="Application Repository", description="kept")
    assert "The repository alice/helm-charts already exists." in ui.text()
    assert ui.page.get_by_label("Repository name").input_value() == "helm-charts"
    assert ui.page.get_by_label("Description").input_value() == "kept"
    ui.shot("new-repository-error")


def test_repository_settings_description_visibility_permissions_delete(ui):
    ui.sign_in("alice")
    create_repository(ui, "settings-demo")
    ui.page.wait_for_url(re.compile(r".*/repository/alice/settings-demo$"))
    tab(ui, "Settings").click()
    ui.page.get_by_label("Description").wait_for()

    ui.page.get_by_label("Description").fill("Now with a *description*")
    ui.page.get_by_role("button", name="Save description").click()
    assert "Saved the description." in ui.text()

    ui.page.get_by_label("Public").check()
    ui.page.get_by_role("button", name="Save visibility").click()
    assert "alice/settings-demo is now public." in ui.text()

    ui.page.get_by_label("Grant to").select_option("user")
    ui.page.get_by_label("Name", exact=True).fill("bob")
    ui.page.get_by_label("Role", exact=True).select_option("write")
    ui.page.get_by_role("button", name="Add permission").click()
    assert "Gave bob the write role." in ui.text()
    assert "User bob" in ui.text("#permissions")
    # An unknown user: a clear error, the name kept.
    ui.page.get_by_label("Name", exact=True).fill("nobody-here")
    ui.page.get_by_role("button", name="Add permission").click()
    assert "Invalid username: nobody-here" in ui.text()
    assert ui.page.get_by_label("Name", exact=True).input_value() == "nobody-here"
    ui.shot("repository-settings")
    ui.page.get_by_role("button", name="Remove bob").click()
    assert "Removed the permission of bob." in ui.text()

    tab(ui, "Information").click()
    ui.page.locator(".description em").wait_for()
    assert ui.page.locator(".description em").inner_text() == "description"

    tab(ui, "Settings").click()
    ui.page.get_by_label("Type the repository's full name to confirm").fill("alice/settings-demo")
    ui.page.get_by_role("button", name="Delete repository").click()
    ui.page.wait_for_url(re.compile(r".*/$"))
    assert "Deleted the repository alice/settings-demo." in ui.text()
    assert ui.goto("/repository/alice/settings-demo").status == 404


def test_organization_team_and_robot_push(ui, clients, busybox_layout):
    ui.sign_in("bob")
    open_create_menu_with_the_keyboard(ui, "New Organization")
    ui.page.get_by_label("Organization name").fill("initech")
    ui.page.get_by_role("button", name="Create Organization").click()
    ui.page.wait_for_url(re.compile(r".*/organization/initech$"))
    assert "Created the organization initech." in ui.text()

    ui.page.get_by_label("Team name").fill("deployers")
    ui.page.get_by_label("Role").select_option("creator")
    ui.page.get_by_role("button", name="Create team").click()
    ui.page.wait_for_url(re.compile(r".*/organization/initech/teams/deployers$"))

    ui.page.get_by_role("link", name="Robot accounts").click()
    ui.page.get_by_label("Robot name").fill("ci")
    ui.page.get_by_label("Description").fill("Pushes from CI")
    ui.page.get_by_role("button", name="Create robot account").click()
    ui.page.wait_for_url(re.compile(r".*/organization/initech/robots/ci$"))
    assert ui.page.locator("#robot-token-value").count() == 0
    ui.page.get_by_role("link", name="Show token").click()
    token = ui.page.locator("#robot-token-value").inner_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9]{64}", token)
    ui.shot("robot-token")

    ui.goto("/organization/initech/teams/deployers")
    ui.page.get_by_label("User or robot").fill("initech+ci")
    ui.page.get_by_role("button", name="Add member").click()
    assert "Added initech+ci to the team deployers." in ui.text()

    # The creator role of its team lets the robot create a repository by pushing.
    skopeo_push(clients, busybox_layout, f"{ui.server.host}/initech/app:1", f"initech+ci:{token}")
    ui.goto("/repository/initech/app")
    assert ui.page.locator("#recent-tags").get_by_role("cell", name="1", exact=True).is_visible()
    ui.goto("/organization/initech")
    assert ui.page.get_by_role("link", name="initech/app").is_visible()
    ui.shot("organization")

    # Regenerating the token retires the old one.
    ui.goto("/organization/initech/robots/ci")
    ui.page.get_by_role("button", name="Regenerate token").click()
    new_token = ui.page.locator("#robot-token-value").inner_text().strip()
    assert new_token != token
    refused = clients.skopeo(
        "inspect", "--tls-verify=false", "--creds", f"initech+ci:{token}", f"docker://{ui.server.host}/initech/app:1",
        check=False,
    )  # fmt: skip
    assert refused.returncode != 0


def test_account_settings_token_login_and_time_machine(ui, clients):
    ui.sign_in("alice")
    ui.goto("/user/settings")
    ui.page.get_by_label("Title").fill("laptop")
    ui.page.get_by_role("button", name="Create token").click()
    token = ui.page.locator("#new-token").inner_text().strip()
    command = ui.page.get_by_label("docker login command").input_value()
    assert command == f"docker login -u='alice' -p='{token}' {ui.server.host}"
    ui.shot("user-settings")
    login = clients.skopeo("login", "--tls-verify=false", "-u", "alice", "-p", token, ui.server.host)
    assert "Login Succeeded" in login.stdout
    clients.skopeo("logout", ui.server.host)
    ui.page.reload()
    assert token not in ui.page.content()

    ui.page.get_by_label("Time machine").select_option(label="1 week")
    ui.page.get_by_role("button", name="Save").last.click()
    assert "Time machine set to 1 week." in ui.text()
    assert ui.page.get_by_label("Time machine").input_value() == "604800"


def test_superuser_switches_sign_up_off_and_on(ui, browser):
    ui.sign_in("root")
    ui.page.locator("#user-menu summary").click()
    ui.page.get_by_role("link", name="Superuser panel").click()
    assert "Registry superuser panel" in ui.text("body")
    ui.shot("admin")
    ui.goto("/admin/ui/siteconfiguration/")
    ui.page.get_by_label("User creation enabled").uncheck()
    ui.page.get_by_role("button", name="Save", exact=True).click()

    visitor = browser.new_context()
    try:
        page = visitor.new_page()
        page.goto(f"{ui.server.url}/signup")
        assert "Sign-up is closed" in page.inner_text("main")
        assert page.get_by_role("link", name="Create account").count() == 0

        ui.goto("/admin/ui/siteconfiguration/")
        ui.page.get_by_label("User creation enabled").check()
        ui.page.get_by_role("button", name="Save", exact=True).click()

        page.goto(f"{ui.server.url}/signup")
        page.get_by_label("Username").fill("newbie")
        page.get_by_label("Email").fill("newbie@example.com")
        page.get_by_label("Password", exact=True).fill("a-long-pass-1")
        page.get_by_label("Password (again)").fill("a-long-pass-1")
        page.get_by_role("button", name="Create account").click()
        page.wait_for_url(re.compile(r".*/$"))
        assert "Welcome, newbie!" in page.inner_text("main")
        assert "newbie" in page.inner_text("header")
    finally:
        visitor.close()


def test_pages_fit_a_phone_screen(browser, ui_registry, screenshot_dir):
    from tests.ui_browser.conftest import Browser

    context = browser.new_context(viewport={"width": 375, "height": 740})
    try:
        phone = Browser(context.new_page(), ui_registry, screenshot_dir)
        phone.sign_in("alice")
        for path in (
            "/",
            "/repository/alice/public-images",
            "/repository/alice/public-images?tab=settings",
            "/user/settings",
        ):
            phone.goto(path)
            overflow = phone.page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (path, overflow)
        phone.goto("/repository/alice/public-images")
        phone.shot("phone-repository")
    finally:
        context.close()
