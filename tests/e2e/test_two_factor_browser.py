"""Two-factor authentication in a real browser against the real panel (daphne): a user enrolls an
authenticator (the test plays the app: it reads the secret off the page and computes the code with
django_otp.oath.TOTP), then logs in with a code, and with a recovery code."""

import re

import pytest
from playwright.sync_api import expect

from apps.accounts.otp.models import RecoveryCode, TotpDevice
from tests.accounts.two_factor_support import code_for
from tests.conftest import ARTIFACTS, PASSWORD, make_user
from tests.support.browser import log_in, log_in_with_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_out(page) -> None:
    page.locator("header form[action='/logout/'] button").click()
    expect(page).to_have_url(re.compile(r"/login/"))


def test_a_user_enrolls_an_authenticator_and_then_logs_in_with_a_code(browser, panel):
    page = browser.page
    user = make_user("tfa-browser")
    log_in(page, panel, user.username)

    page.goto(f"{panel.url}/account/2fa/")
    page.locator("#start-two-factor button").click()
    expect(page.locator("#qr-code svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "two-factor-enrollment.png"), full_page=True)
    page.fill("#confirm-two-factor input[name=code]", code_for(secret, steps_ahead=-1))
    page.locator("#confirm-two-factor button[type=submit]").click()
    expect(page.locator("#recovery-codes")).to_be_visible()
    codes = re.findall(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", page.locator("#recovery-codes").inner_text())
    assert len(codes) == 10
    expect(page.locator("#two-factor-on")).to_contain_text("Recovery codes left: 10.")
    assert TotpDevice.objects.get(user=user).confirmed
    assert RecoveryCode.objects.filter(device__user=user).count() == 10

    # A new login: the password alone is not enough, the code lets the user in.
    log_out(page)
    log_in_with_code(page, panel, user.username, PASSWORD, secret)
    expect(page.locator("header .user")).to_have_text(user.username)
    expect(page.locator("#live-indicator.on")).to_be_visible(timeout=5000)  # the session's WebSocket is accepted

    # Without a phone: a recovery code, once.
    log_out(page)
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{panel.url}/login/verify/")
    page.goto(f"{panel.url}/vms/")  # nothing is reachable between the two steps
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.fill("#code-step input[name=code]", codes[0])
    page.locator("#code-step button[type=submit]").click()
    expect(page).to_have_url(f"{panel.url}/vms/")
    expect(page.locator("#messages")).to_contain_text("9 left")

    log_out(page)
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.fill("#code-step input[name=code]", codes[0])
    page.locator("#code-step button[type=submit]").click()
    expect(page.locator("#code-error")).to_contain_text("not right, or was already used")
    browser.assert_clean()
