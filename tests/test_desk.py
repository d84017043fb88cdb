"""The compliance desk without a browser: sign-in, sessions, CSRF, scope and what each
page says, over HTTP against a live server on 127.0.0.1."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from domain.signing import LedgerKey
from tests.conftest import DeskLedger


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "every form carries a CSRF token"
    return found.group(1)


@contextmanager
def signed_in(ledger: DeskLedger, key: str, **options: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ledger.url, timeout=30, **options) as browser:
        page = browser.get("/desk/sign-in")
        response = browser.post(
            "/desk/sign-in",
            data={"csrf": csrf_of(page.text), "key": key, "next": "/desk/cases"},
        )
        assert response.status_code == 303, response.text
        yield browser


@pytest.fixture
def officer(desk_ledger: DeskLedger) -> Iterator[httpx.Client]:
    with signed_in(desk_ledger, desk_ledger.compliance) as browser:
        yield browser


# -- signing in ------------------------------------------------------------------------


def test_pages_need_a_session_and_send_you_back_after_signing_in(desk_ledger: DeskLedger) -> None:
    with httpx.Client(base_url=desk_ledger.url) as browser:
        response = browser.get("/desk/cases/d02-sale?all=1")
        assert response.status_code == 303
        assert (
            response.headers["location"]
            == "/desk/sign-in?next=%2Fdesk%2Fcases%2Fd02-sale%3Fall%3D1"
        )

        page = browser.get(response.headers["location"])
        assert 'name="next" value="/desk/cases/d02-sale?all=1"' in page.text
        signed = browser.post(
            "/desk/sign-in",
            data={
                "csrf": csrf_of(page.text),
                "key": desk_ledger.compliance,
                "next": "/desk/cases/d02-sale?all=1",
            },
        )
        assert signed.headers["location"] == "/desk/cases/d02-sale?all=1"


def test_the_session_cookie_is_signed_httponly_strict_and_holds_no_key(
    desk_ledger: DeskLedger,
) -> None:
    with httpx.Client(base_url=desk_ledger.url) as browser:
        page = browser.get("/desk/sign-in")
        response = browser.post(
            "/desk/sign-in",
            data={"csrf": csrf_of(page.text), "key": desk_ledger.compliance},
        )
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("casetrail_desk=")
    assert "httponly" in cookie.lower()
    assert "samesite=strict" in cookie.lower()
    assert "path=/desk" in cookie.lower()
    # ctk_<key id>_<secret>; the secret itself may hold "_" (URL-safe base64).
    secret = desk_ledger.compliance.split("_", 2)[2]
    assert secret not in cookie and desk_ledger.compliance not in cookie


def test_a_form_without_its_csrf_token_is_refused(desk_ledger: DeskLedger) -> None:
    with httpx.Client(base_url=desk_ledger.url) as browser:
        browser.get("/desk/sign-in")
        for token in ("", "forged-token"):
            response = browser.post(
                "/desk/sign-in", data={"csrf": token, "key": desk_ledger.compliance}
            )
            assert response.status_code == 400
            assert "The form expired" in response.text
            assert browser.get("/desk/cases").status_code == 303


def test_a_wrong_key_is_refused_without_saying_which_part_was_wrong(
    desk_ledger: DeskLedger,
) -> None:
    with httpx.Client(base_url=desk_ledger.url) as browser:
        page = browser.get("/desk/sign-in")
        response = browser.post(
            "/desk/sign-in",
            data={"csrf": csrf_of(page.text), "key": desk_ledger.compliance[:-3] + "AAA"},
        )
    assert response.status_code == 401
    assert "not valid" in response.text


def test_sign_in_never_redirects_off_the_desk(desk_ledger: DeskLedger) -> None:
    for target in ("//example.invalid/x", "https://example.invalid/", "/v1/cases", "/desk/../x"):
        with httpx.Client(base_url=desk_ledger.url) as browser:
            page = browser.get("/desk/sign-in", params={"next": target})
            response = browser.post(
                "/desk/sign-in",
                data={"csrf": csrf_of(page.text), "key": desk_ledger.compliance, "next": target},
            )
            location = response.headers["location"]
            assert location.startswith("/desk/") and ".." not in location, location


def test_signing_out_ends_the_session_on_the_server(desk_ledger: DeskLedger) -> None:
    with signed_in(desk_ledger, desk_ledger.compliance) as browser:
        stolen = dict(browser.cookies)
        page = browser.get("/desk/cases")
        assert page.status_code == 200
        browser.post("/desk/sign-out", data={"csrf": csrf_of(page.text)})
        assert browser.get("/desk/cases").status_code == 303

    with httpx.Client(base_url=desk_ledger.url, cookies=stolen) as replay:
        assert replay.get("/desk/cases").status_code == 303


def test_a_revoked_key_ends_its_desk_sessions(desk_ledger: DeskLedger) -> None:
    token, principal = desk_ledger.runtime.api_keys.create("auditor", name="short-lived")
    with signed_in(desk_ledger, token) as browser:
        assert browser.get("/desk/cases").status_code == 200
        desk_ledger.runtime.api_keys.revoke(principal.key_id)
        assert browser.get("/desk/cases").status_code == 303


# -- what a key may see ----------------------------------------------------------------


def test_an_agency_key_sees_on_the_desk_exactly_what_it_reads_over_the_api(
    desk_ledger: DeskLedger,
) -> None:
    with signed_in(desk_ledger, desk_ledger.lease_agent) as browser:
        listing = browser.get("/desk/cases").text
        assert "c02-lease" in listing
        assert "d02-sale" not in listing and "c01-sale" not in listing
        assert (
            browser.get("/desk/cases", params={"agency": "agency-a"}).text.count(
                'href="/desk/cases/'
            )
            == 0
        )

        for path in (
            "/desk/cases/d02-sale",
            "/desk/cases/d02-sale/bundle.json",
            "/desk/cases/d02-sale/verdicts.csv",
        ):
            foreign = browser.get(path)
            missing = browser.get(path.replace("d02-sale", "no-such-case"))
            assert foreign.status_code == missing.status_code == 404
            assert foreign.text.replace("d02-sale", "X") == missing.text.replace(
                "no-such-case", "X"
            )

        def tables(path: str, **params: str) -> list[str]:
            return re.findall(r"<table.*?</table>", browser.get(path, params=params).text, re.S)

        own = tables("/desk/reports")
        assert own == tables("/desk/reports", agency="agency-a")
        assert own and not any("agent-a1" in table for table in own)


# -- the pages ---------------------------------------------------------------------------


def test_the_list_filters_to_cases_with_breaches_and_counts_them(
    officer: httpx.Client,
) -> None:
    everything = officer.get("/desk/cases").text
    assert all(case in everything for case in ("d02-sale", "c01-sale", "c02-lease"))

    breached = officer.get("/desk/cases", params={"breaches": "1"}).text
    assert "d02-sale" in breached and "c02-lease" in breached
    assert "c01-sale" not in breached
    assert "Cases matching: <strong>2</strong>" in breached

    critical = officer.get("/desk/cases", params={"severity": "critical"}).text
    assert "d02-sale" in critical and "c02-lease" not in critical

    by_agent = officer.get("/desk/cases", params={"agent": "agent-a1"}).text
    assert "d02-sale" in by_agent and "c01-sale" not in by_agent

    later = officer.get("/desk/cases", params={"from": "2999-01-01"}).text
    assert "Cases matching: <strong>0</strong>" in later


@pytest.mark.parametrize("sort", ["case_id", "updated", "opened", "breaches"])
def test_the_list_pages_forward_and_back_through_every_case_once(
    officer: httpx.Client, monkeypatch: pytest.MonkeyPatch, sort: str
) -> None:
    from api.desk import views

    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    pages, link = [], f"/desk/cases?sort={sort}"
    while link:
        page = officer.get(link.replace("&amp;", "&")).text
        pages.append(re.findall(r'<th scope="row"><a href="/desk/cases/([^"]+)"', page))
        found = re.search(r'<a href="([^"]+)" rel="next">', page)
        link = found.group(1) if found else ""
    seen = [case for page in pages for case in page]
    assert sorted(seen) == ["c01-sale", "c02-lease", "d02-sale"]  # each once, none missed
    if sort == "case_id":
        assert pages == [["c01-sale"], ["c02-lease"], ["d02-sale"]]

    back = []
    while True:
        previous = re.search(r'<a href="([^"]+)" rel="prev">', page)
        if not previous:
            break
        page = officer.get(previous.group(1).replace("&amp;", "&")).text
        back.append(re.findall(r'<th scope="row"><a href="/desk/cases/([^"]+)"', page))
    assert back == pages[-2::-1]


def test_a_forged_page_cursor_reads_as_the_first_page(officer: httpx.Client) -> None:
    first = officer.get("/desk/cases", params={"sort": "case_id"}).text
    for cursor in ("!!!", "W10", "WzEsMiwzXQ", "x" * 500, "WyJhIiwgbnVsbF0"):
        forged = officer.get("/desk/cases", params={"sort": "case_id", "after": cursor})
        assert forged.status_code == 200
        assert forged.text.count('<th scope="row">') == first.count('<th scope="row">')


def test_the_case_page_shows_the_breach_its_evidence_and_the_badge(
    officer: httpx.Client,
) -> None:
    page = officer.get("/desk/cases/d02-sale").text

    row = re.search(
        r'<tr class="verdict breached" data-obligation="CN-INT-01">(.*?)</tr>', page, re.S
    )
    assert row, "the expected breach of scenario D-02 is shown"
    assert 'href="#event-5"' in row.group(1)  # the mandate signed without the checks
    assert 'id="event-5"' in page
    assert "Chain sound" in page and "inclusion proof" in page
    proof = re.search(r'href="(/v1/log/inclusion\?[^"]+)"', page)
    assert proof and "tree_size=" in proof.group(1)

    # Occurred and recorded side by side, with offsets; the 2009 events are late entries.
    assert re.search(r"2009-11-22 02:40:00 \+00:00", page)
    assert "late entry" in page
    assert "agent-a1" in page and "mgr-a1" in page


def test_the_as_of_picker_shows_the_case_as_the_ledger_stood(officer: httpx.Client) -> None:
    now = officer.get("/desk/cases/d02-sale").text
    moments = re.findall(r'<option value="([^"]+)"\s*>after event #(\d+)', now)
    before_mandate = dict((seq, moment) for moment, seq in moments)["4"]

    earlier = officer.get("/desk/cases/d02-sale", params={"as_of": before_mandate}).text
    row = re.search(r'<tr class="verdict (\w+)" data-obligation="CN-INT-01">', earlier)
    assert row and row.group(1) == "pending"
    assert 'id="event-4"' in earlier and 'id="event-5"' not in earlier
    assert "as the ledger stood after event <strong>#4</strong>" in earlier

    csv_text = officer.get(
        "/desk/cases/d02-sale/verdicts.csv", params={"as_of": before_mandate}
    ).text
    assert '"CN-INT-01","","pending"' in csv_text


def test_a_garbled_as_of_shows_the_whole_case(officer: httpx.Client) -> None:
    page = officer.get("/desk/cases/d02-sale", params={"as_of": "yesterday'<script>"})
    assert page.status_code == 200
    assert "<script>" not in page.text.split("</head>", 1)[1].replace(
        '<script src="/desk/static/desk.js" defer></script>', ""
    )


def test_times_follow_the_viewers_zone_with_the_offset(officer: httpx.Client) -> None:
    page = officer.get("/desk/cases/d02-sale", params={"tz": "Asia/Shanghai"}).text
    assert "2009-11-22 10:40:00 +08:00" in page
    officer.get("/desk/settings", params={"tz": "Not/AZone", "back": "/desk/cases"})
    assert "+00:00" in officer.get("/desk/cases/d02-sale").text


def test_the_language_follows_the_browser_then_the_switch(desk_ledger: DeskLedger) -> None:
    with signed_in(
        desk_ledger, desk_ledger.compliance, headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    ) as browser:
        page = browser.get("/desk/cases/d02-sale").text
        assert '<html lang="zh-CN">' in page
        assert "签订委托" in page and "违规" in page  # event type and status, translated

        switched = browser.get("/desk/settings", params={"lang": "en", "back": "/desk/cases"})
        assert switched.headers["location"] == "/desk/cases"
        assert '<html lang="en">' in browser.get("/desk/cases").text


def test_downloads_are_the_bundle_and_the_verdicts(officer: httpx.Client) -> None:
    bundle = officer.get("/desk/cases/d02-sale/bundle.json")
    assert bundle.headers["content-disposition"].startswith("attachment")
    document = orjson.loads(bundle.content)
    assert [entry["record"]["seq"] for entry in document["events"]] == list(range(1, 16))

    verdicts = officer.get("/desk/cases/d02-sale/verdicts.csv")
    assert verdicts.headers["content-type"].startswith("text/csv")
    assert verdicts.text.splitlines()[0].startswith('"obligation","rule","status"')


def test_the_reports_page_has_tables_and_charts(officer: httpx.Client) -> None:
    page = officer.get("/desk/reports").text
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" role="img"') >= 1
    assert "CN-INT-01" in page
    assert "Complaint handling against the targets" in page
    assert '<th scope="row"><code>agent-a1</code></th>' in page
    narrowed = officer.get("/desk/reports", params={"agency": "agency-l"}).text
    assert '<th scope="row"><code>agent-a1</code></th>' not in narrowed

    csv_text = officer.get("/desk/reports/breaches.csv").text
    assert "CN-INT-01" in csv_text


def test_verifying_a_bundle_never_touches_the_ledger(
    desk_ledger: DeskLedger, officer: httpx.Client, tmp_path: Path
) -> None:
    bundle = officer.get("/desk/cases/d02-sale/bundle.json").content
    head = desk_ledger.runtime.head_position()
    page = officer.get("/desk/verify")

    sound = officer.post(
        "/desk/verify",
        data={"csrf": csrf_of(page.text)},
        files={"bundle": ("d02.bundle.json", bundle, "application/json")},
    )
    # Without a key to trust, the page says the bundle is consistent, and no more.
    assert sound.status_code == 200 and "who made it was not checked" in sound.text
    assert "The bundle is sound." not in sound.text

    tampered = bundle.replace(b"agent-a1", b"agent-a9", 1)
    broken = officer.post(
        "/desk/verify",
        data={"csrf": csrf_of(page.text)},
        files={"bundle": ("d02.bundle.json", tampered, "application/json")},
    )
    assert "The bundle does not verify." in broken.text

    # The page offers this ledger's key; another key must not vouch for the bundle.
    offered = re.search(r'<textarea id="public_key"[^>]*>([^<]+)</textarea>', page.text)
    assert offered and "BEGIN PUBLIC KEY" in offered.group(1)
    stranger = LedgerKey.create(str(tmp_path / "stranger.pem")).public_key_pem()
    for key, verdict in ((offered.group(1), "The bundle is sound."), (stranger, "does not verify")):
        checked = officer.post(
            "/desk/verify",
            data={"csrf": csrf_of(page.text), "public_key": key},
            files={"bundle": ("d02.bundle.json", bundle, "application/json")},
        )
        assert verdict in checked.text
        assert "ORIGIN NOT CHECKED" not in checked.text

    garbage = officer.post(
        "/desk/verify",
        data={"csrf": csrf_of(page.text)},
        files={"bundle": ("x.json", b"\xff\x00not json", "application/json")},
    )
    assert garbage.status_code == 200 and "does not verify" in garbage.text
    assert desk_ledger.runtime.head_position() == head


def test_unknown_pages_and_cases_answer_in_the_desk(officer: httpx.Client) -> None:
    for path in ("/desk/nowhere", "/desk/cases/%2e%2e", "/desk/cases/no-such-case"):
        response = officer.get(path)
        assert response.status_code == 404
        assert "<html" in response.text and "Back to the cases" in response.text


def test_every_page_forbids_framing_and_outside_scripts(officer: httpx.Client) -> None:
    for path in ("/desk/cases", "/desk/cases/d02-sale", "/desk/reports", "/desk/verify"):
        response = officer.get(path)
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["cache-control"] == "no-store"
        assert "http://" not in response.text.split("<body", 1)[0]


# -- what an adversarial trial of the desk found ------------------------------------------


def test_a_form_body_must_declare_a_length_the_form_can_use(desk_ledger: DeskLedger) -> None:
    with socket.create_connection(("127.0.0.1", desk_ledger.server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /desk/sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=bb\r\n"
            b"Content-Length: 3000000000\r\n\r\n--bb\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")
    with socket.create_connection(("127.0.0.1", desk_ledger.server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /desk/sign-out HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n10\r\ncsrf=x&key=y&z=1\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 411")


@pytest.mark.parametrize(
    "query",
    [
        {"tz": "America"},
        {"tz": "Asia"},
        {"tz": "x" * 300},
        {"tz": "../../etc/passwd"},
        {"as_of": "0001-01-01T00:00:00+14:00"},
        {"as_of": "9999-12-31T23:59:59-14:00"},
        {"from": "0001-01-01", "to": "9999-12-31"},
        {"agency": "agency-a\x00", "agent": "\x00", "phase": "x\x00"},
        {"after": "WyJ6enoiLCJtIl0", "sort": "breaches"},  # ["zzz","m"]: text for a number
        {"after": "WzUsIm0iXQ", "sort": "updated"},  # [5,"m"]: a number for text
    ],
)
def test_no_query_value_makes_a_desk_page_fail(
    desk_ledger: DeskLedger, officer: httpx.Client, query: dict[str, str]
) -> None:
    for path in ("/desk/cases", "/desk/cases/d02-sale", "/desk/cases/d02-sale/verdicts.csv"):
        assert officer.get(path, params=query).status_code == 200, (path, query)
    with httpx.Client(base_url=desk_ledger.url, cookies={"desk_tz": "Europe"}) as anonymous:
        assert anonymous.get("/desk/sign-in", params=query).status_code == 200


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "2024-13", "1899-12"])
def test_reports_take_only_real_months(officer: httpx.Client, month: str) -> None:
    for path in ("/desk/reports", "/desk/reports/breaches.csv"):
        assert officer.get(path, params={"from": month, "to": month}).status_code == 200


def test_a_cursor_of_the_wrong_type_reads_as_the_first_page() -> None:
    from api.desk.views import parse_cursor

    assert parse_cursor("WyJ6enoiLCJtIl0", "breaches") is None
    assert parse_cursor("WzUsIm0iXQ", "updated") is None
    assert parse_cursor("WzUsIm0iXQ", "breaches") == (5, "m")


def test_signing_out_without_the_token_changes_nothing_and_signing_in_again_ends_the_old(
    desk_ledger: DeskLedger,
) -> None:
    with signed_in(desk_ledger, desk_ledger.compliance) as browser:
        first = dict(browser.cookies)
        browser.post("/desk/sign-out", data={"csrf": "wrong"})
        assert browser.get("/desk/cases").status_code == 200  # still signed in

        page = browser.get("/desk/sign-in")
        browser.post(
            "/desk/sign-in", data={"csrf": csrf_of(page.text), "key": desk_ledger.lease_agent}
        )
        assert "lease" in browser.get("/desk/cases").text
    with httpx.Client(base_url=desk_ledger.url, cookies=first) as replay:
        assert replay.get("/desk/cases").status_code == 303  # the first session has ended


def test_downloads_and_static_files_carry_the_security_headers(officer: httpx.Client) -> None:
    for path in (
        "/desk/cases/d02-sale/verdicts.csv",
        "/desk/cases/d02-sale/bundle.json",
        "/desk/reports/breaches.csv",
        "/desk/static/desk.css",
        "/desk/nowhere",
    ):
        headers = officer.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["cache-control"] == "no-store", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path


def test_the_timeline_names_the_key_that_recorded_each_event(officer: httpx.Client) -> None:
    page = officer.get("/desk/cases/d02-sale").text
    assert "Recorded with key" in page and "demo-loader" in page


def test_the_service_figures_follow_the_agent_filter(officer: httpx.Client) -> None:
    everyone = officer.get("/desk/reports").text
    nobody = officer.get("/desk/reports", params={"agent": "no-such-agent"}).text
    assert "Complaint handling against the targets" in everyone
    assert re.search(r"Handovers</dt><dd>0<", nobody)
    assert "Nothing in this period." in nobody.split("complaints-title", 1)[1]


def test_a_long_case_shows_its_timeline_a_page_at_a_time(
    desk_ledger: DeskLedger, officer: httpx.Client
) -> None:
    from tests.conftest import note, opened

    admin, _ = desk_ledger.runtime.api_keys.create("admin", name="long case")
    with httpx.Client(
        base_url=desk_ledger.url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
    ) as api:
        assert api.post("/v1/cases/long-1/events", json=opened()).status_code == 201
        for start in range(0, 540, 90):
            notes = [note(f"call {n}") for n in range(start, start + 90)]
            assert api.post("/v1/cases/long-1/events", json={"events": notes}).status_code == 201

    first = officer.get("/desk/cases/long-1").text
    assert first.count('<li id="event-') == 500
    assert "Events 1–500 of 541" in first and 'rel="next"' in first
    second = officer.get("/desk/cases/long-1", params={"tl": "2"}).text
    assert second.count('<li id="event-') == 41 and 'id="event-541"' in second


def test_a_broken_case_yields_no_verdicts_file_and_no_bundle(tmp_path: Path) -> None:
    from tests.test_tamper import flip_one_byte

    ledger = DeskLedger(tmp_path / "broken", ["D-02"])
    try:
        flip_one_byte(ledger.runtime, "d02-sale", 4)
        with signed_in(ledger, ledger.compliance) as browser:
            for path in ("/desk/cases/d02-sale/verdicts.csv", "/desk/cases/d02-sale/bundle.json"):
                answer = browser.get(path)
                assert answer.status_code == 500
                assert "does not verify at seq 4" in answer.text
                assert answer.headers["content-type"].startswith("text/html")
    finally:
        ledger.close()
