"""The compliance desk in a real browser: Debian's Chromium driven by Playwright.

Skipped only where Chromium is missing; `.ci/run` sets CASETRAIL_REQUIRE_BROWSER where it
can install Chromium, and then a missing browser fails the run instead. Every test saves
a screenshot in its temporary folder.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.conftest import DeskLedger
from tests.test_tamper import flip_one_byte

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None  # type: ignore[assignment]

MISSING = None
if sync_playwright is None:
    MISSING = "Playwright is not installed (pip install -e '.[test]')"
elif not Path(CHROMIUM).exists():
    MISSING = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"

if MISSING and os.environ.get("CASETRAIL_REQUIRE_BROWSER"):
    raise pytest.UsageError(f"CASETRAIL_REQUIRE_BROWSER is set but {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(
    browser: Browser, desk_ledger: DeskLedger, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    context = browser.new_context(
        base_url=desk_ledger.url, accept_downloads=True, locale="en-GB", timezone_id="UTC"
    )
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    try:
        yield opened
    finally:
        opened.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
        context.close()


def sign_in(page: Page, key: str) -> None:
    page.goto("/desk/")
    expect(page).to_have_url(re.compile(r"/desk/sign-in"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/desk/cases$"))


def verdict_row(page: Page, obligation: str):  # type: ignore[no-untyped-def]
    return page.locator(f'tr.verdict[data-obligation="{obligation}"]')


def test_signing_in_and_filtering_the_list_to_cases_with_breaches(
    page: Page, desk_ledger: DeskLedger
) -> None:
    page.goto("/desk/sign-in")
    page.get_by_label("API key").fill("ctk_000000000000_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")

    sign_in(page, desk_ledger.compliance)
    expect(page.get_by_role("link", name="c01-sale")).to_be_visible()

    page.get_by_label("Only cases with open breaches").check()  # the script applies it
    expect(page).to_have_url(re.compile(r"breaches=1"))
    expect(page.get_by_role("link", name="d02-sale")).to_be_visible()
    expect(page.get_by_role("link", name="c01-sale")).to_have_count(0)
    expect(page.locator(".counts")).to_contain_text("Cases matching: 2")


def test_a_dispute_case_shows_its_breach_with_evidence_and_a_green_badge(
    page: Page, desk_ledger: DeskLedger
) -> None:
    sign_in(page, desk_ledger.compliance)
    page.get_by_role("link", name="d02-sale").click()

    expect(page.locator("#badge")).to_contain_text("Chain sound")
    expect(page.locator("#badge")).to_contain_text("signed tree head of size")
    row = verdict_row(page, "CN-INT-01")
    expect(row.locator(".status")).to_have_text("breached")
    expect(row).to_contain_text("agent-a1")

    row.get_by_role("link", name=re.compile(r"#5 Mandate signed")).click()
    expect(page).to_have_url(re.compile(r"#event-5$"))
    expect(page.locator("#event-5")).to_be_in_viewport()
    expect(page.locator("#event-5")).to_contain_text("Occurred")
    expect(page.locator("#event-5")).to_contain_text("Recorded")

    proof = page.get_by_role("link", name="inclusion proof").get_attribute("href")
    assert proof and proof.startswith("/v1/log/inclusion?")
    answer = page.request.get(proof)
    assert answer.ok and "audit_path" in answer.text() or "proof" in answer.text()


def test_moving_the_as_of_picker_before_the_breach_shows_it_pending(
    page: Page, desk_ledger: DeskLedger
) -> None:
    sign_in(page, desk_ledger.compliance)
    page.goto("/desk/cases/d02-sale")
    expect(verdict_row(page, "CN-INT-01").locator(".status")).to_have_text("breached")

    picker = page.get_by_label("As the ledger stood")
    moment = picker.locator("option", has_text="after event #4 ").get_attribute("value")
    assert moment
    picker.select_option(moment)  # from the keyboard, as here, the choice waits for Show
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page).to_have_url(re.compile(r"as_of="))
    expect(verdict_row(page, "CN-INT-01").locator(".status")).to_have_text("pending")
    expect(page.locator("#event-5")).to_have_count(0)

    picker = page.get_by_label("As the ledger stood")
    picker.select_option(index=0)
    page.get_by_role("button", name="Show", exact=True).click()
    expect(verdict_row(page, "CN-INT-01").locator(".status")).to_have_text("breached")


def test_switching_to_chinese_translates_the_case(page: Page, desk_ledger: DeskLedger) -> None:
    sign_in(page, desk_ledger.compliance)
    page.goto("/desk/cases/d02-sale")
    page.get_by_role("link", name="中文").click()

    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="义务判定")).to_be_visible()
    expect(verdict_row(page, "CN-INT-01").locator(".status")).to_have_text("违规")
    expect(page.locator("#event-5")).to_contain_text("签订委托")
    expect(page.locator("#badge")).to_contain_text("哈希链完整")

    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")


def test_downloading_the_bundle_and_verifying_it_on_the_verify_page(
    page: Page, desk_ledger: DeskLedger, tmp_path: Path
) -> None:
    sign_in(page, desk_ledger.compliance)
    page.goto("/desk/cases/d02-sale")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Dispute bundle")).click()
    saved = tmp_path / "d02-sale.bundle.json"
    download.value.save_as(saved)
    assert orjson.loads(saved.read_bytes())["events"]

    page.get_by_role("link", name="Verify a bundle").click()
    page.get_by_label("Bundle file").set_input_files(str(saved))
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#verify-result")).to_contain_text("The bundle is sound.")

    tampered = tmp_path / "tampered.bundle.json"
    tampered.write_bytes(saved.read_bytes().replace(b"agent-a1", b"agent-a9", 1))
    page.get_by_label("Bundle file").set_input_files(str(tampered))
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#verify-result")).to_contain_text("The bundle does not verify.")


def test_the_reports_page_draws_its_charts(page: Page, desk_ledger: DeskLedger) -> None:
    sign_in(page, desk_ledger.compliance)
    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Breaches by obligation and severity")).to_be_visible()
    chart = page.get_by_role("img", name="Breaches by obligation and severity")
    expect(chart).to_be_visible()
    expect(page.locator("svg.chart rect").first).to_be_visible()

    page.get_by_label("Agency").select_option("agency-l")
    page.get_by_role("button", name="Show report").click()
    expect(page).to_have_url(re.compile(r"agency=agency-l"))
    expect(
        page.get_by_role("heading", name="Complaint handling against the targets")
    ).to_be_visible()


def test_the_desk_works_from_the_keyboard_alone(page: Page, desk_ledger: DeskLedger) -> None:
    page.goto("/desk/sign-in")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    page.get_by_label("API key").focus()
    page.keyboard.type(desk_ledger.compliance)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/desk/cases$"))

    page.get_by_role("link", name="d02-sale").focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid", "focus is visible"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/desk/cases/d02-sale$"))

    page.get_by_role("button", name="Sign out").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/desk/sign-in"))


@pytest.mark.parametrize("width", [1280, 800, 390])
def test_pages_fit_the_window_and_late_entries_stay_readable(
    page: Page, desk_ledger: DeskLedger, width: int
) -> None:
    """A trial found the late-entry badge's style on every late event (orange, no line
    wrapping) and a long agent label pushing the page 126 px wider than the window."""
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, desk_ledger.compliance)
    for path in ("/desk/cases", "/desk/reports", "/desk/verify", "/desk/cases/d02-sale"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a {width} px window"

    late_events = page.locator("ol.timeline > li.late-entry")
    expect(late_events.first).to_be_visible()
    for index in range(late_events.count()):
        entry = late_events.nth(index)
        assert entry.evaluate("e => getComputedStyle(e).whiteSpace") == "normal"
        assert entry.evaluate("e => e.scrollWidth <= e.clientWidth")


def test_an_unknown_case_shows_the_desks_error_page(page: Page, desk_ledger: DeskLedger) -> None:
    sign_in(page, desk_ledger.compliance)
    response = page.goto("/desk/cases/no-such-case")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("no case")
    page.get_by_role("link", name="Back to the cases").click()
    expect(page).to_have_url(re.compile(r"/desk/cases$"))


def test_a_tampered_ledger_shows_a_red_badge_naming_the_first_bad_event(
    browser: Browser, tmp_path: Path
) -> None:
    ledger = DeskLedger(tmp_path / "tampered", ["D-02"])
    try:
        flip_one_byte(ledger.runtime, "d02-sale", 4)  # a party.registered event's payload
        context = browser.new_context(base_url=ledger.url, locale="en-GB", timezone_id="UTC")
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            sign_in(page, ledger.compliance)
            page.goto("/desk/cases/d02-sale")
            badge = page.locator("#badge")
            expect(badge).to_have_class(re.compile(r"broken"))
            expect(badge).to_contain_text("Does not verify")
            expect(badge).to_contain_text("#4")
            expect(page.locator("#event-3")).to_have_count(1)
            expect(page.locator("#event-4")).to_have_count(0)
            page.screenshot(path=str(tmp_path / "tampered-case.png"))

            page.goto("/desk/cases")
            expect(page.locator("tr", has_text="d02-sale")).to_contain_text("Does not verify · #4")
        finally:
            page.screenshot(path=str(tmp_path / "tampered-list.png"), full_page=True)
            context.close()
    finally:
        ledger.close()
        shutil.rmtree(tmp_path / "tampered", ignore_errors=True)
