"""Browser tests of the web UI: Debian's Chromium driven by Playwright against a live server.

The server is the e2e suite's (``manage.py serve`` on a free port of 127.0.0.1, its own DATA_DIR
and database), with the static files collected and a superuser ``root`` added. Chromium is the
system's ``/usr/bin/chromium`` (no browser download); without it the tests fail, they do not skip.

Playwright's synchronous API keeps an asyncio loop running in the thread that uses it, and
Django refuses database access while one runs. So the browser lives for one test module and
stops before the next module's tests (which may use the database) begin; these tests reach the
server only over HTTP and a ``manage.py shell`` subprocess.

Screenshots of the main pages go to ``UI_SCREENSHOT_DIR`` (default: a new temporary directory).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

from tests.e2e import images
from tests.e2e.conftest import PASSWORD, LiveRegistry, clients, live_server  # noqa: F401 - clients is a fixture

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 20_000
VIEWPORT = {"width": 1280, "height": 800}


class UiRegistry(LiveRegistry):
    """The live registry with its static files collected and a superuser ``root``."""

    def start(self) -> None:
        self.manage("collectstatic", "--noinput", "-v", "0")
        super().start()
        self.shell(
            "from accounts import services\n"
            f"services.user_create(username='root', password={PASSWORD!r}, is_superuser=True)"
        )


@pytest.fixture(scope="session")
def ui_registry(tmp_path_factory):
    """Seeded like the e2e registry (alice, bob, organization acme with robot acme+ci, ...).

    Every test signs in afresh, so the sign-in limit is raised for this server only.
    """
    yield from live_server(tmp_path_factory, "ui", UiRegistry, SIGNIN_RATE="10000/minute")


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    path = Path(os.environ.get("UI_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="ui-screenshots-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory) -> Path:
    """A runnable busybox image in an OCI layout (umoci + busybox-static), tag ``latest``."""
    return images.busybox_layout(tmp_path_factory.mktemp("ui-busybox") / "layout")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is needed for the browser tests: install Debian's 'chromium' package ({CHROMIUM})")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Browser:
    """One browser tab on the live server, with helpers for what every test does."""

    def __init__(self, page, server: UiRegistry, screenshots: Path):
        self.page = page
        self.server = server
        self.screenshots = screenshots
        self.console_errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        # Deletes and regenerations ask for confirmation: answer yes, as a user would.
        page.on("dialog", lambda dialog: dialog.accept())

    def goto(self, path: str):
        response = self.page.goto(f"{self.server.url}{path}")
        assert response is not None
        return response

    def sign_in(self, username: str, password: str = PASSWORD) -> None:
        self.goto("/signin")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r".*/$"))

    def shot(self, name: str) -> Path:
        path = self.screenshots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def text(self, selector: str = "main") -> str:
        # After a form post the new page may still be arriving: read it once it is parsed.
        self.page.wait_for_load_state("domcontentloaded")
        return re.sub(r"\s+", " ", self.page.locator(selector).inner_text())


@pytest.fixture
def ui(browser, ui_registry, screenshot_dir):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    session = Browser(context.new_page(), ui_registry, screenshot_dir)
    try:
        yield session
        # The pages load nothing inline: a CSP violation would show up here as a console error.
        violations = [error for error in session.console_errors if "Content Security Policy" in error]
        assert not violations, violations
    finally:
        context.close()
