"""The storage pages in a real browser on lab host 1: a volume made from the form shows its capacity
against its allocation, and a file uploaded from the pool page (in parts, with a progress bar)
becomes a volume that downloads back byte-identical."""

import hashlib
import os

import pytest
from playwright.sync_api import expect

from apps.storage import services
from apps.storage.sync import sync_pools
from tests.conftest import ARTIFACTS
from tests.storage.test_lab import pool_dir  # noqa: F401 - the fixture that removes the test pools
from tests.support.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.lab]

MIB = 1 << 20


def test_a_volume_and_an_upload_from_the_pool_page(browser, panel, lab_host, operator, pool_dir, tmp_path):  # noqa: F811
    sync_pools(lab_host)
    pool = services.create_pool(lab_host, actor=operator, name=pool_dir.name, path=str(pool_dir))
    page = browser.page
    log_in(page, panel, operator.username)
    page.goto(f"{panel.url}/storage/")
    expect(page.locator(f'tr[data-pool="{pool.name}"]')).to_contain_text(str(pool_dir))
    page.click(f'tr[data-pool="{pool.name}"] a')
    expect(page.locator("h1")).to_contain_text(pool.name)

    form = page.locator("form[data-volume-create]")
    form.locator("input[name=name]").fill("t-web.qcow2")
    form.locator("input[name=capacity_0]").fill("1")
    form.locator("select[name=capacity_1]").select_option("GiB")
    form.locator("button[type=submit]").click()
    expect(page.locator("#messages")).to_contain_text("Volume t-web.qcow2 created")
    row = page.locator('tr[data-volume="t-web.qcow2"]')
    expect(row.locator('[data-field="capacity"]')).to_have_text("1.0\xa0GB")
    expect(row.locator('[data-field="allocation"]')).to_contain_text("sparse")

    data = os.urandom(20 * MIB) + bytes(20 * MIB) + os.urandom(5 * MIB + 77)
    source = tmp_path / "my image (1).img"
    source.write_bytes(data)
    upload = page.locator("form[data-upload]")
    upload.locator("input[type=file]").set_input_files(str(source))
    expect(upload.locator("input[name=name]")).to_have_value("my_image_1_.img")
    upload.locator("input[name=name]").fill("t-web.img")
    page.evaluate(
        """() => {
          const status = document.querySelector('[data-upload-status]');
          const seen = [];
          new MutationObserver(() => {
            seen.push(status.textContent);
            sessionStorage.setItem('statuses', JSON.stringify(seen));  // kept across the reload
          })
            .observe(status, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.evaluate("window.__notReloaded = true")
    upload.locator("button[type=submit]").click()
    page.wait_for_function("() => window.__notReloaded === undefined", timeout=60000)  # reloaded when done
    statuses = page.evaluate("JSON.parse(sessionStorage.getItem('statuses') || '[]')")
    assert any(text.startswith("Sending ") and "%" in text for text in statuses), statuses
    assert statuses[-1] == "Uploaded. Reloading…"
    row = page.locator('tr[data-volume="t-web.img"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("raw")
    page.screenshot(path=str(ARTIFACTS / "storage-pool.png"), full_page=True)

    href = row.locator("a", has_text="Download").get_attribute("href")
    response = page.request.get(f"{panel.url}{href}")
    assert response.status == 200
    assert hashlib.sha256(response.body()).hexdigest() == hashlib.sha256(data).hexdigest()
    volume = pool.volumes.get(name="t-web.img")
    assert volume.allocation_bytes < len(data) - 15 * MIB  # the zeros travelled as holes
    browser.assert_clean()


def test_an_upload_resumes_after_a_broken_part_and_a_cancel_leaves_nothing(
    browser,
    panel,
    lab_host,
    operator,
    pool_dir,  # noqa: F811
    tmp_path,
):
    sync_pools(lab_host)
    pool = services.create_pool(lab_host, actor=operator, name=pool_dir.name, path=str(pool_dir))
    page = browser.page
    log_in(page, panel, operator.username)
    page.goto(f"{panel.url}/storage/pools/{pool.pk}/")
    upload = page.locator("form[data-upload]")
    cancel = upload.locator("[data-upload-cancel]")
    expect(cancel).to_be_hidden()

    # The second part's first attempt breaks (as a dropped connection would): the page asks the
    # panel how far it got and goes on from there.
    broken = []

    def break_once(route):
        if "offset=16777216" in route.request.url and not broken:
            broken.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/uploads/*/?offset=*", break_once)
    data = os.urandom(40 * MIB)
    (tmp_path / "resumed.img").write_bytes(data)
    upload.locator("input[type=file]").set_input_files(str(tmp_path / "resumed.img"))
    upload.locator("button[type=submit]").click()
    expect(page.locator('tr[data-volume="resumed.img"]')).to_be_visible(timeout=60000)
    assert broken
    assert (pool_dir / "resumed.img").read_bytes() == data
    page.unroute("**/uploads/*/?offset=*")

    # A part that never gets through: Cancel stops it and the half-filled volume goes.
    held = []
    page.route("**/uploads/*/?offset=*", lambda route: held.append(route))  # never answered
    (tmp_path / "cancelled.img").write_bytes(os.urandom(40 * MIB))
    upload = page.locator("form[data-upload]")
    upload.locator("input[type=file]").set_input_files(str(tmp_path / "cancelled.img"))
    upload.locator("button[type=submit]").click()
    expect(upload.locator("[data-upload-cancel]")).to_be_visible()
    expect(upload.locator("progress")).to_be_visible()
    page.wait_for_timeout(300)
    assert (pool_dir / "cancelled.img").exists()  # the upload started: its volume is there, empty
    page.screenshot(path=str(ARTIFACTS / "storage-upload-in-progress.png"), full_page=True)
    upload.locator("[data-upload-cancel]").click()
    expect(upload.locator("[data-upload-status]")).to_contain_text("cancelled")
    page.wait_for_load_state()
    page.wait_for_timeout(1000)
    assert not (pool_dir / "cancelled.img").exists()
    assert not pool.uploads.exists()
    browser.assert_clean()
