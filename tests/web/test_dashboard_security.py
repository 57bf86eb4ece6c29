"""Issue 13's attacks on the dashboard, over real HTTP on SQLite and PostgreSQL: a cookie replayed
after logout (14a), password guessing from many IPv6 /64s (14b), a forged Host header in
redirects (14c), and hostile stored messages and rows that made pages answer 500 (12)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from engine.store.tables import DASHBOARD_SESSION, SUBSCRIBER
from engine.web.dashboard.auth import (
    DEVICE_COOKIE,
    LOGIN_ATTEMPTS,
    LOGIN_COOKIE,
    LOGIN_PERIOD,
    SESSION_COOKIE,
)
from engine.web.dashboard.session import SESSION_LIFETIME
from tests.scheduler.harness import Harness
from tests.support.outage import database_down
from tests.support.project import minimal_project
from tests.web.conftest import START
from tests.web.dashboard_site import PASSWORD, Dash, csrf_of, dashboard, log_in
from tests.web.served import serve

FORGED_HOST = "evil.example"


def session_rows(dash: Dash) -> list[dict[str, object]]:
    with dash.harness.db_engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(DASHBOARD_SESSION)).mappings()]


def cookie_only(http: httpx.Client, path: str, session_cookie: str) -> httpx.Response:
    """GET `path` with nothing but this session cookie."""
    http.cookies.clear()
    return http.get(path, headers={"Cookie": f"{SESSION_COOKIE}={session_cookie}"})


def attempt(http: httpx.Client, ip: str, password: str, device: str | None = None) -> httpx.Response:
    """One login from a fresh browser at `ip` (X-Forwarded-For from the trusted loopback proxy)."""
    http.cookies.clear()
    form = http.get("/dashboard/login", headers={"X-Forwarded-For": ip})
    cookies = f"{LOGIN_COOKIE}={form.cookies[LOGIN_COOKIE]}"
    if device is not None:
        cookies += f"; {DEVICE_COOKIE}={device}"
    http.cookies.clear()
    return http.post("/dashboard/login", data={"csrf": csrf_of(form.text), "password": password},
                     headers={"X-Forwarded-For": ip, "Cookie": cookies})


# --- 14a: a logout ends the session on the server ----------------------------------------------


def test_a_cookie_replayed_after_logout_opens_nothing(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        assert log_in(dash.http).status_code == 303
        kept = dash.http.cookies[SESSION_COOKIE]  # what an attacker copied while the session was open
        assert cookie_only(dash.http, "/dashboard", kept).status_code == 200
        [row] = session_rows(dash)
        assert row["revoked_at"] is None and len(str(row["id"])) == 64
        assert str(row["id"]) not in kept  # the server keeps a hash, the cookie the id
        token = csrf_of(dash.http.get("/dashboard", headers={"Cookie": f"{SESSION_COOKIE}={kept}"}).text)
        out = dash.http.post("/dashboard/logout", data={"csrf": token},
                             headers={"Cookie": f"{SESSION_COOKIE}={kept}"})
        assert (out.status_code, out.headers["location"]) == (303, "/dashboard/login")
        for path in ("/dashboard", "/dashboard/outbox", "/dashboard/subscribers"):
            replayed = cookie_only(dash.http, path, kept)
            assert replayed.status_code == 303, path
            assert replayed.headers["location"].startswith("/dashboard/login?next=")
        [row] = session_rows(dash)
        assert row["revoked_at"] is not None
        # A second logout with the old cookie changes nothing: it is no session any more.
        again = dash.http.post("/dashboard/logout", data={"csrf": token},
                               headers={"Cookie": f"{SESSION_COOKIE}={kept}"})
        assert again.status_code == 303 and again.headers["location"].startswith("/dashboard/login")


def test_a_logout_through_one_daemon_ends_the_session_on_another(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as first:
        second = Harness(db_url, minimal_project(tmp_path / "second"), START, admin_password=PASSWORD,
                         base_url="http://127.0.0.1:8000")
        second.daemon.web = replace(second.daemon.web, secret=first.harness.daemon.web.secret)
        try:
            with serve(second) as other:
                assert log_in(first.http).status_code == 303
                kept = first.http.cookies[SESSION_COOKIE]
                assert cookie_only(other, "/dashboard", kept).status_code == 200  # one login, both daemons
                token = csrf_of(cookie_only(other, "/dashboard", kept).text)
                other.cookies.clear()
                out = other.post("/dashboard/logout", data={"csrf": token},
                                 headers={"Cookie": f"{SESSION_COOKIE}={kept}"})
                assert out.status_code == 303
                assert cookie_only(first.http, "/dashboard", kept).status_code == 303
        finally:
            second.close()


def test_expired_session_rows_are_deleted_at_the_next_login(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        long_ago = datetime.now(UTC) - SESSION_LIFETIME - timedelta(hours=1)
        rows = [(sid, long_ago) for sid in ("old-1", "old-2")] + [("live", datetime.now(UTC))]
        with dash.harness.db_engine.begin() as conn:
            conn.execute(sa.insert(DASHBOARD_SESSION), [
                {"id": hashlib.sha256(sid.encode()).hexdigest(), "created_at": at,
                 "expires_at": at + SESSION_LIFETIME, "revoked_at": None} for sid, at in rows])
        assert len(session_rows(dash)) == 3
        assert log_in(dash.http).status_code == 303
        ids = {row["id"] for row in session_rows(dash)}
        assert hashlib.sha256(b"live").hexdigest() in ids and len(ids) == 2  # the live one and the new one
        assert not {hashlib.sha256(sid).hexdigest() for sid in (b"old-1", b"old-2")} & ids


def test_with_the_database_down_the_dashboard_answers_503_not_500(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path, busy_timeout_ms=200) as dash:
        assert log_in(dash.http).status_code == 303
        dash.harness.db_engine.dispose()  # SQLite: a file open elsewhere cannot be taken exclusively
        with database_down(db_url):
            page = dash.http.get("/dashboard/outbox")  # the session's row cannot be read
            assert page.status_code == 503, page.text[:300]
            assert page.headers["retry-after"] == "30"
            assert "try again" in page.text
            dash.http.cookies.clear()
            login = log_in(dash.http)  # the form opens; the session cannot be recorded
            assert login.status_code == 503
            assert SESSION_COOKIE not in login.headers.get("set-cookie", "")
        assert log_in(dash.http).status_code == 303  # back up: logging in works again
        assert dash.http.get("/dashboard/outbox").status_code == 200


# --- 14b: login attempts per account, not only per address --------------------------------------


def test_guessing_from_many_ipv6_64s_is_limited_for_the_account(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        assert attempt(dash.http, "2001:db8:ffff::1", PASSWORD).status_code == 303  # the owner, earlier
        device = dash.http.cookies.get(DEVICE_COOKIE) or ""
        assert device  # the browser is known from now on
        # The attack of the report: one guess from each of 30 /64s. Ten fail; then everyone new waits.
        answers = [attempt(dash.http, f"2001:db8:{n:x}::1", f"guess {n}").status_code for n in range(30)]
        assert answers == [401] * LOGIN_ATTEMPTS + [429] * (30 - LOGIN_ATTEMPTS)
        limited = attempt(dash.http, "2001:db8:abcd::1", PASSWORD)  # the right password from a new browser
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= LOGIN_PERIOD / LOGIN_ATTEMPTS
        assert "log in from a browser that has" in limited.text
        assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")
        assert not [r for r in session_rows(dash) if r["revoked_at"] is None][1:]  # only the owner's
        # The owner's browser is not locked out by the attack, from any address.
        owner = attempt(dash.http, "2001:db8:beef::7", PASSWORD, device=device)
        assert owner.status_code == 303


def test_addresses_of_one_ipv6_64_share_one_allowance(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        assert attempt(dash.http, "192.0.2.1", PASSWORD).status_code == 303
        device = dash.http.cookies[DEVICE_COOKIE]  # a known browser: the account limit stays out of it
        for n in range(LOGIN_ATTEMPTS):
            assert attempt(dash.http, f"2001:db8:1:2::{n + 1:x}", "guess", device).status_code == 401
        same = attempt(dash.http, "2001:db8:1:2:ffff:ffff:ffff:ffff", PASSWORD, device)
        assert same.status_code == 429
        assert "from this address" in same.text
        assert attempt(dash.http, "2001:db8:1:3::1", PASSWORD, device).status_code == 429  # the browser's own
        assert "from this browser" in attempt(dash.http, "2001:db8:1:4::1", PASSWORD, device).text


def test_a_forged_device_cookie_counts_as_a_new_browser(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        assert attempt(dash.http, "192.0.2.1", PASSWORD).status_code == 303
        good = dash.http.cookies[DEVICE_COOKIE]
        for n in range(LOGIN_ATTEMPTS):
            assert attempt(dash.http, f"198.51.100.{n}", "guess").status_code == 401
        payload, signature = good.split(".")
        for forged in (payload + ".AAAA" + signature[4:], "x.y", good + "x"):
            refused = attempt(dash.http, "203.0.113.5", PASSWORD, forged)
            assert refused.status_code == 429, forged
        assert attempt(dash.http, "203.0.113.5", PASSWORD, good).status_code == 303


# --- 14c: redirects never carry the request's Host ---------------------------------------------


@pytest.mark.parametrize(("path", "location"), [
    ("/dashboard/", "/dashboard"),
    ("/healthz/", "/healthz"),
    ("/dashboard/outbox/?page=2", "/dashboard/outbox?page=2"),
    ("/dashboard/login/?next=/dashboard/outbox", "/dashboard/login?next=/dashboard/outbox"),
])
def test_a_slash_redirect_with_a_forged_host_stays_on_the_site(
    db_url: str, tmp_path: Path, path: str, location: str
) -> None:
    with dashboard(db_url, tmp_path) as dash:
        for headers in ({"Host": FORGED_HOST}, {"Host": FORGED_HOST, "X-Forwarded-Proto": "https"}, {}):
            response = dash.http.get(path, headers=headers)
            assert response.status_code == 307, (path, headers)
            assert response.headers["location"] == location


def test_no_slash_redirect_leads_to_another_site_or_splits_the_header(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        for path in ("//evil.example/", "//evil.example", "/nope/", "/%0d%0aSet-Cookie:x=1/"):
            response = dash.http.get(path, headers={"Host": FORGED_HOST})
            assert response.status_code == 404, path
            assert "location" not in response.headers
        odd = dash.http.get("/dashboard/outbox/a%0d%0aSet-Cookie:%20x=1.eml/", headers={"Host": FORGED_HOST})
        assert odd.status_code == 307
        assert odd.headers["location"] == "/dashboard/outbox/a%0D%0ASet-Cookie:%20x=1.eml"
        assert "set-cookie" not in odd.headers


def test_the_dashboards_own_redirects_never_name_the_forged_host(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        forged = {"Host": FORGED_HOST}
        seen = [dash.http.get("/dashboard/subscribers?q=a", headers=forged)]
        form = dash.http.get("/dashboard/login", headers=forged)
        seen.append(dash.http.post("/dashboard/login", headers=forged,
                                   data={"csrf": csrf_of(form.text), "password": PASSWORD,
                                         "next": "/dashboard/outbox"}))
        seen.append(dash.http.get("/dashboard/login?next=/dashboard/guardrails", headers=forged))
        token = csrf_of(dash.http.get("/dashboard", headers=forged).text)
        seen.append(dash.http.post("/dashboard/funnels/minimal/steps/e1/resume", data={"csrf": token},
                                   headers=forged))
        seen.append(dash.http.post("/dashboard/logout", data={"csrf": token}, headers=forged))
        assert [r.status_code for r in seen] == [303] * 5
        assert [r.headers["location"] for r in seen] == [
            "/dashboard/login?next=/dashboard/subscribers%3Fq%3Da", "/dashboard/outbox",
            "/dashboard/guardrails", "/dashboard/funnels/minimal?resumed=e1", "/dashboard/login"]


# --- 12: no stored message or row makes a page answer 500 ---------------------------------------

HOSTILE_EML: dict[str, bytes] = {
    # The report's message: the SMTP server decoded =?utf-8?q?a=0D=0A?= into a CR LF recipient.
    "crlf-recipient": b"From: Team <team@example.com>\r\nTo: =?utf-8?q?a=0D=0A?=@example.com\r\n"
                      b"Subject: Please confirm\r\nMessage-ID: <crlf@funnel.example>\r\n"
                      b"Content-Type: text/plain; charset=utf-8\r\n\r\nConfirm here.\r\n",
    "crlf-name": b"To: \"=?utf-8?q?Ann=0D=0ABcc:_x@evil.example?=\" <ann@example.com>\r\n"
                 b"Subject: =?utf-8?q?Hi=0D=0AX-Injected:_1?=\r\n\r\nbody\r\n",
    "empty-message-id": b"Message-ID: <\r\n>\r\nTo: a@example.com\r\nDate: not a date\r\n\r\nbody\r\n",
    "unknown-charset": b"To: =?x-unknown?q?abc?= <a@example.com>\r\nSubject: =?x-unknown?b?!!!?=\r\n"
                       b"Content-Type: text/plain; charset=x-unknown\r\n\r\nbody\r\n",
    "codec-not-text": b"Subject: rot\r\nContent-Type: text/html; charset=rot13\r\n\r\n<p>uryyb</p>\r\n",
    "utf-16-word": b"Subject: =?utf-16?b?2AA=?=\r\nTo: =?utf-16?b?//4A2A==?=@example.com\r\n\r\nx\r\n",
    "raw-8bit-and-nul": b"To: a\x00b@example.com\r\nSubject: \xff\xfe caf\xc3\xa9\r\n\r\n\x00\xff body\r\n",
    "broken-base64": b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-7\r\n"
                     b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
    "huge-header": b"Subject: " + b"A" * 300_000 + b"\r\nTo: " + b"b" * 100_000
                   + b"@example.com\r\n\r\nx\r\n",
    "many-headers": b"".join(b"X-H%d: v\r\n" % n for n in range(5000)) + b"\r\nx\r\n",
    "deep-multipart": b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
                      + b"--a\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n" * 3000,
    "no-headers": b"just some text, no header at all\r\n",
    "empty": b"",
    "binary": bytes(range(256)) * 64,
    "unterminated": b"To: <<<@@>>>,,,\"unterminated\r\n"
                    b"Content-Type: multipart/alternative; boundary=\r\n\r\n--\r\n",
}


def test_no_hostile_eml_makes_an_outbox_page_answer_500(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        dash.outbox.mkdir(parents=True, exist_ok=True)
        for name, data in HOSTILE_EML.items():
            (dash.outbox / f"{name}.eml").write_bytes(data)
        assert log_in(dash.http).status_code == 303
        listing = dash.http.get("/dashboard/outbox")
        assert listing.status_code == 200, listing.text[:500]
        assert f"{len(HOSTILE_EML)} messages" in listing.text
        # The CR LF shows as the two characters a person can read, in the list and in the message.
        assert "a\\r\\n @example.com" in listing.text
        for name in HOSTILE_EML:
            page = dash.http.get(f"/dashboard/outbox/{name}.eml")
            assert page.status_code == 200, (name, page.text[:500])
            assert "<script" not in page.text
            frame = dash.http.get(f"/dashboard/outbox/{name}.eml/html")
            assert frame.status_code in (200, 404), (name, frame.status_code)
        shown = dash.http.get("/dashboard/outbox/crlf-recipient.eml").text
        assert "To: a\\r\\n @example.com" in shown and "Confirm here." in shown
        injected = dash.http.get("/dashboard/outbox/crlf-name.eml").text
        assert "Subject: Hi\\r\\nX-Injected: 1" in injected
        huge = dash.http.get("/dashboard/outbox/huge-header.eml").text
        assert "(298,000 more characters)" in huge and len(huge) < 50_000
        many = dash.http.get("/dashboard/outbox/many-headers.eml").text
        assert "… and 4,800 more headers" in many
        rot13 = dash.http.get("/dashboard/outbox/codec-not-text.eml/html")
        assert "<p>uryyb</p>" in rot13.text  # 'rot13' names a codec, but not a charset: read as UTF-8


def test_a_subscriber_row_with_cr_lf_in_its_address_shows_as_text(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path) as dash:
        stored = "a\r\n@example.com"  # as an address decoded from an encoded word would be stored
        with dash.harness.db_engine.begin() as conn:
            conn.execute(sa.insert(SUBSCRIBER).values(
                email=stored, email_key=stored, name="Evil\r\nName", fields={},
                created_at=datetime.now(UTC), updated_at=datetime.now(UTC)))
            subscriber_id = conn.execute(sa.select(SUBSCRIBER.c.id).where(SUBSCRIBER.c.email_key == stored)
                                         ).scalar_one()
        assert log_in(dash.http).status_code == 303
        for path in ("/dashboard/subscribers", "/dashboard/subscribers?q=example",
                     f"/dashboard/subscribers/{subscriber_id}", "/dashboard"):
            page = dash.http.get(path)
            assert page.status_code == 200, (path, page.text[:300])
