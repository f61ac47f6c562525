"""Browser fixtures (a pytest plugin): Playwright driving Debian's Chromium against the real panel.

Every page's console is watched: a CSP violation or an uncaught exception fails the test that
calls `assert_clean()`.
"""

import os
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.accounts.two_factor_support import code_for
from tests.conftest import ARTIFACTS, PASSWORD

CHROMIUM = os.environ.get("KVMPANEL_CHROMIUM", "/usr/bin/chromium")
# No background networking: this machine reaches nothing outside, and Chromium would keep trying.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@dataclass
class Browser:
    page: Page
    console: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return [line for line in self.console if "Content Security Policy" in line]

    def assert_clean(self) -> None:
        """No CSP violation and no uncaught exception on the page."""
        bad = self.csp_violations() + [line for line in self.console if line.startswith("pageerror:")]
        assert not bad, "\n".join(bad)


@pytest.fixture
def browser(panel):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
        watched = Browser(page)
        page.on("console", lambda message: watched.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: watched.console.append(f"pageerror: {error}"))
        yield watched
        chromium.close()


def log_in(page: Page, panel, username: str) -> None:
    page.goto(f"{panel.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{panel.url}/vms/")


def log_in_with_code(page: Page, panel, username: str, password: str, secret: str, *, steps_ahead: int = 0) -> None:
    """Log in a user who has an authenticator: the password, then the code computed from `secret` (the
    base32 secret shown at enrollment). A code is accepted once: a second login within the same 30 s
    needs `steps_ahead=1`."""
    page.goto(f"{panel.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{panel.url}/login/verify/")
    page.fill("#code-step input[name=code]", code_for(secret, steps_ahead=steps_ahead))
    page.locator("#code-step button[type=submit]").click()
    expect(page).to_have_url(f"{panel.url}/vms/")
