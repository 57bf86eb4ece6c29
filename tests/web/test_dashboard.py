"""The dashboard over real HTTP, on SQLite and PostgreSQL: login, sessions, CSRF, the pages, escaping,
resuming a paused step, and the outbox's sandboxed frame."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from engine.store import sessions
from engine.store.tables import GUARDRAIL_EVENT
from engine.web.dashboard.auth import LOGIN_ATTEMPTS, SESSION_COOKIE, safe_next
from engine.web.dashboard.session import SESSION_LIFETIME, new_sid, session_token
from tests.scheduler.harness import SECRET
from tests.web.conftest import API_KEY
from tests.web.dashboard_site import (
    HOSTILE_MESSAGE,
    PASSWORD,
    PAUSE_DETAIL,
    SCRIPT_NAME,
    Dash,
    ann_enrollment,
    csrf_of,
    dashboard,
    log_in,
    pause_row,
    tell_story,
)

PAGES = ["/dashboard", "/dashboard/funnels/minimal", "/dashboard/funnels/minimal/emails/e1",
         "/dashboard/subscribers", "/dashboard/subscribers/1",
         "/dashboard/outbox", f"/dashboard/outbox/{HOSTILE_MESSAGE}.eml", "/dashboard/guardrails",
         "/dashboard/releases", "/dashboard/broadcasts"]


@pytest.fixture
def dash(db_url: str, tmp_path: Path) -> Dash:
    """A served daemon whose database tells the story, not yet logged in."""
    with dashboard(db_url, tmp_path) as site:
        tell_story(site.harness)
        yield site


def logged_in(dash: Dash) -> Dash:
    response = log_in(dash.http)
    assert response.status_code == 303, response.text
    return dash


def minted(dash: Dash, issued: datetime, password: str = PASSWORD) -> str:
    """A session cookie issued at `issued`, with its row on the server as a login would leave it."""
    sid = new_sid()
    with dash.harness.db_engine.begin() as conn:
        sessions.open_session(conn, sid, issued, issued + SESSION_LIFETIME)
    return session_token(SECRET, password, issued, sid)


def with_cookie(dash: Dash, value: str, path: str = "/dashboard") -> httpx.Response:
    """GET `path` carrying only this session cookie."""
    dash.http.cookies.clear()
    return dash.http.get(path, headers={"Cookie": f"{SESSION_COOKIE}={value}"})


def guardrail_actions(dash: Dash) -> list[tuple[str, str | None]]:
    with dash.harness.db_engine.connect() as conn:
        rows = conn.execute(sa.select(GUARDRAIL_EVENT).order_by(GUARDRAIL_EVENT.c.id)).mappings()
        return [(r["action"], r["by"]) for r in rows]


# --- login and sessions --------------------------------------------------------------------


def test_without_a_password_the_dashboard_is_off_and_says_how_to_turn_it_on(
    db_url: str, tmp_path: Path
) -> None:
    with dashboard(db_url, tmp_path, api_key=None, admin_password=None) as site:
        for path in ("/dashboard", "/dashboard/login", "/dashboard/subscribers"):
            response = site.http.get(path)
            assert response.status_code == 503, path
            assert "The dashboard is off" in response.text
            assert "FUNNEL_ADMIN_PASSWORD" in response.text
        refused = site.http.post("/dashboard/login", data={"password": "", "csrf": ""})
        assert refused.status_code == 503
        assert SESSION_COOKIE not in refused.headers.get("set-cookie", "")


def test_the_right_password_gives_a_strict_session_cookie_and_opens_every_page(dash: Dash) -> None:
    for path in PAGES:  # before logging in: the login page, for every one of them
        assert dash.http.get(path).status_code == 303, path
    response = log_in(dash.http)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/dashboard" in cookie and f"Max-Age={int(SESSION_LIFETIME.total_seconds())}" in cookie
    assert "secure" not in attributes  # base_url is http here
    for path in PAGES:
        page = dash.http.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert "script-src" not in csp  # no script is allowed at all
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-content-type-options"] == "nosniff"


def test_the_session_cookie_is_secure_when_the_site_is_https(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path, base_url="https://funnel.example") as site:
        form = site.http.get("/dashboard/login")
        login_cookie = form.headers["set-cookie"]
        assert "Secure" in login_cookie
        # httpx keeps a Secure cookie away from http://; send the login nonce by hand.
        nonce = login_cookie.split(";")[0].split("=", 1)[1]
        response = site.http.post("/dashboard/login", data={"csrf": csrf_of(form.text), "password": PASSWORD},
                                  headers={"Cookie": f"funnel_dashboard_login={nonce}"})
        assert response.status_code == 303
        session = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
        assert "Secure" in session


def test_the_api_key_opens_the_dashboard_when_no_admin_password_is_set(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path, admin_password=None) as site:
        assert log_in(site.http, password=PASSWORD).status_code == 401
        assert log_in(site.http, password=API_KEY).status_code == 303
        assert site.http.get("/dashboard").status_code == 200


def test_a_wrong_password_is_401_and_gives_no_session(dash: Dash) -> None:
    for wrong in ("", "correct horse", PASSWORD + " ", PASSWORD.upper(), "ünïcödé"):
        response = log_in(dash.http, password=wrong)
        assert response.status_code == 401, wrong
        assert "Wrong password." in response.text
        assert SESSION_COOKIE not in dash.http.cookies
    assert dash.http.get("/dashboard").status_code == 303


def test_login_attempts_are_limited_per_address(dash: Dash) -> None:
    known = dash.http.get("/dashboard/login", headers={"X-Forwarded-For": "203.0.113.9"})
    assert log_in(dash.http).status_code == 303  # from 127.0.0.1: takes one attempt of its ten
    device = dash.http.cookies["funnel_dashboard_device"]  # this browser has logged in before
    dash.http.cookies.clear()
    for _ in range(LOGIN_ATTEMPTS - 1):
        assert log_in(dash.http, password="guess").status_code == 401
    limited = log_in(dash.http)  # even the right password waits now
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert SESSION_COOKIE not in dash.http.cookies
    # Another client address is not held back by this one's limit (X-Forwarded-For from the trusted
    # loopback proxy); a browser that logged in before is not held back by the account's either
    # (test_dashboard_security.py has the account limit).
    nonce = known.cookies["funnel_dashboard_login"]
    cookies = f"funnel_dashboard_login={nonce}; funnel_dashboard_device={device}"
    other = dash.http.post("/dashboard/login", data={"csrf": csrf_of(known.text), "password": PASSWORD},
                           headers={"X-Forwarded-For": "203.0.113.9", "Cookie": cookies})
    assert other.status_code == 303


def test_a_login_post_without_its_csrf_token_is_403(dash: Dash) -> None:
    dash.http.get("/dashboard/login")
    for fields in ({"password": PASSWORD}, {"password": PASSWORD, "csrf": "forged"}):
        response = dash.http.post("/dashboard/login", data=fields)
        assert response.status_code == 403
        assert SESSION_COOKIE not in dash.http.cookies
    dash.http.cookies.clear()  # the form's token without the cookie it belongs to
    form_token = csrf_of(httpx.get(str(dash.http.base_url) + "/dashboard/login").text)
    response = dash.http.post("/dashboard/login", data={"password": PASSWORD, "csrf": form_token})
    assert response.status_code == 403


def test_a_tampered_session_cookie_means_logging_in_again(dash: Dash) -> None:
    good = minted(dash, datetime.now(UTC))
    assert with_cookie(dash, good).status_code == 200  # the test can tell a good cookie from a bad one
    payload, signature = good.split(".")
    flipped = "A" if signature[0] != "A" else "B"
    for bad in (payload + "." + flipped + signature[1:], payload[:-1] + "x." + signature, payload, "",
                session_token("another-secret", PASSWORD, datetime.now(UTC)), good + "x"):
        response = with_cookie(dash, bad)
        assert response.status_code == 303, bad
        assert response.headers["location"].startswith("/dashboard/login")


def test_an_expired_session_means_logging_in_again(dash: Dash) -> None:
    now = datetime.now(UTC)
    assert with_cookie(dash, minted(dash, now - SESSION_LIFETIME + timedelta(minutes=5))).status_code == 200
    old = session_token(SECRET, PASSWORD, now - SESSION_LIFETIME - timedelta(minutes=1))
    response = with_cookie(dash, old, "/dashboard/subscribers")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=/dashboard/subscribers"


def test_changing_the_password_ends_every_session(dash: Dash) -> None:
    assert with_cookie(dash, minted(dash, datetime.now(UTC), "the old password")).status_code == 303


def test_after_login_the_browser_goes_back_to_the_page_it_asked_for(dash: Dash) -> None:
    asked = dash.http.get("/dashboard/funnels/minimal?since=2026-03-01")
    assert asked.status_code == 303
    wanted = "/dashboard/funnels/minimal?since=2026-03-01"
    assert asked.headers["location"] == "/dashboard/login?next=" + quote(wanted, safe="/")
    response = log_in(dash.http, next_path="/dashboard/funnels/minimal?since=2026-03-01")
    assert response.headers["location"] == "/dashboard/funnels/minimal?since=2026-03-01"


@pytest.mark.parametrize("hostile", [
    "https://evil.example/dashboard", "//evil.example/dashboard", "/\\evil.example", "\\\\evil.example",
    "/dashboardx", "/dashboard/../api/subscribers", "/dashboard//evil.example", "javascript:alert(1)",
    "/dashboard\r\nSet-Cookie: x=1", "http:/dashboard", " /dashboard", "/api/stats", "", "/dashboard\t/x",
])
def test_next_never_leads_off_the_dashboard(hostile: str) -> None:
    assert safe_next(hostile) == "/dashboard"


def test_next_through_the_login_form_cannot_redirect_elsewhere(dash: Dash) -> None:
    page = dash.http.get("/dashboard/login?next=https://evil.example/")
    assert 'name="next" value="/dashboard"' in page.text
    response = log_in(dash.http, next_path="//evil.example/steal")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    logged = dash.http.get("/dashboard/login?next=//evil.example/")
    assert (logged.status_code, logged.headers["location"]) == (303, "/dashboard")


def test_logout_needs_the_csrf_token_and_then_ends_the_session(dash: Dash) -> None:
    logged_in(dash)
    assert dash.http.post("/dashboard/logout", data={"csrf": "wrong"}).status_code == 403
    assert dash.http.get("/dashboard").status_code == 200  # still logged in
    token = csrf_of(dash.http.get("/dashboard").text)
    response = dash.http.post("/dashboard/logout", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login"
    assert dash.http.get("/dashboard").status_code == 303


# --- the pages -----------------------------------------------------------------------------


def test_the_funnels_page_draws_each_funnel_and_filters_by_signup_date(dash: Dash) -> None:
    logged_in(dash)
    page = dash.http.get("/dashboard")
    assert page.status_code == 200
    assert page.text.count('<svg xmlns="http://www.w3.org/2000/svg" class="funnel-chart"') == 1
    assert 'data-stage="signed_up" data-count="3"' in page.text  # Ann and the two hostile names
    assert 'data-stage="confirmed" data-count="1"' in page.text  # only Ann confirmed
    assert "Segment one" in page.text and "Segment two" in page.text  # segments side by side
    later = dash.http.get("/dashboard?since=2026-03-03")  # everyone signed up on Monday the 2nd
    assert 'data-stage="signed_up" data-count="0"' in later.text
    wrong = dash.http.get("/dashboard?since=yesterday")
    assert wrong.status_code == 400
    assert "is not a date" in wrong.text


def test_the_funnel_page_shows_the_steps_and_highlights_the_paused_one(dash: Dash) -> None:
    logged_in(dash)
    page = dash.http.get("/dashboard/funnels/minimal")
    assert page.status_code == 200
    assert '<tr id="step-e1" class="paused" data-step="e1">' in page.text
    assert page.text.count('class="paused"') == 1  # only e1
    row = page.text.split('id="step-e1"')[1].split("</tr>")[0]
    assert PAUSE_DETAIL in row
    assert 'action="/dashboard/funnels/minimal/steps/e1/resume"' in row
    assert "weak signal" in page.text
    magnet = page.text.split('id="step-magnet"')[1].split("</tr>")[0]
    assert "Running" in magnet and "Resume" not in magnet
    assert '<td class="num">1</td>' in magnet  # the magnet went to Ann alone


def test_an_email_page_shows_its_numbers_and_a_sandboxed_preview_of_the_sample_subscriber(
    dash: Dash,
) -> None:
    logged_in(dash)
    funnel = dash.http.get("/dashboard/funnels/minimal")
    assert 'href="/dashboard/funnels/minimal/emails/e1"' in funnel.text  # the steps table links to it
    page = dash.http.get("/dashboard/funnels/minimal/emails/magnet")
    assert page.status_code == 200
    assert "Your guide, Alex" in page.text  # the subject, rendered for the sample subscriber
    sent = page.text.split('<tr data-number="Sent">')[1].split("</tr>")[0]
    assert '<td class="num">1</td>' in sent  # the magnet went to Ann alone, as the funnel page says
    assert 'src="/dashboard/funnels/minimal/emails/magnet/html?"' in page.text
    frame = dash.http.get("/dashboard/funnels/minimal/emails/magnet/html")
    assert frame.status_code == 200
    assert frame.headers["content-security-policy"].startswith("sandbox;")
    assert "Alex" in frame.text and "<html" in frame.text.lower()
    e1 = dash.http.get("/dashboard/funnels/minimal/emails/e1/html")
    assert "Hi Alex, this is e1." in e1.text


def test_an_email_page_refuses_an_unknown_email_variant_or_language_tag(dash: Dash) -> None:
    logged_in(dash)
    for path, status, says in (
        ("/dashboard/funnels/minimal/emails/nope", 404, "has no email &#39;nope&#39;"),
        ("/dashboard/funnels/nope/emails/e1", 404, "No funnel &#39;nope&#39;"),
        ("/dashboard/funnels/minimal/emails/e1?variant=b", 400, "has no variant &#39;b&#39;"),
        ("/dashboard/funnels/minimal/emails/e1/html?variant=b", 400, "has no variant &#39;b&#39;"),
        ("/dashboard/funnels/minimal/emails/e1?locale=%3Cscript%3E", 400, "is not a language tag"),
    ):
        response = dash.http.get(path)
        assert response.status_code == status, path
        assert says in response.text, path
        assert "<script>" not in response.text
        assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_an_unknown_funnel_subscriber_or_message_is_a_404_page(dash: Dash) -> None:
    logged_in(dash)
    for path in ("/dashboard/funnels/nope", "/dashboard/subscribers/999999", "/dashboard/subscribers/abc",
                 "/dashboard/subscribers/" + "9" * 5000, "/dashboard/outbox/nope.eml"):
        response = dash.http.get(path)
        assert response.status_code == 404, path
        assert "Not found" in response.text
        assert response.headers["content-security-policy"].startswith("default-src 'none'")


def test_resume_needs_the_csrf_token_and_changes_nothing_without_it(dash: Dash) -> None:
    logged_in(dash)
    other = minted(dash, datetime.now(UTC))  # another session's token is wrong too
    other_token = csrf_of(with_cookie(dash, other).text)
    logged_in(dash)
    path = "/dashboard/funnels/minimal/steps/e1/resume"
    for fields in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": other_token}):
        response = dash.http.post(path, data=fields)
        assert response.status_code == 403, fields
        assert "Nothing was changed" in response.text
    token = csrf_of(dash.http.get("/dashboard").text)
    as_json = dash.http.post(path, json={"csrf": token})  # the token must come from the form
    assert as_json.status_code == 403
    assert pause_row(dash.harness)["resumed_at"] is None
    assert guardrail_actions(dash) == [("paused", None)]


def test_resume_without_a_session_goes_to_the_login_page_and_changes_nothing(dash: Dash) -> None:
    response = dash.http.post("/dashboard/funnels/minimal/steps/e1/resume", data={"csrf": "x"})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=/dashboard"  # never back to a POST URL
    assert pause_row(dash.harness)["resumed_at"] is None
    logged_in(dash)
    again = dash.http.get("/dashboard/login?next=/dashboard/guardrails")  # logged in already: go on
    assert (again.status_code, again.headers["location"]) == (303, "/dashboard/guardrails")


def test_the_resume_button_unpauses_the_step_and_wakes_who_waits_at_it(dash: Dash) -> None:
    logged_in(dash)
    h = dash.harness
    waiting = ann_enrollment(h)
    assert (waiting["stage"], waiting["step"]) == ("nurture", "e1")
    token = csrf_of(dash.http.get("/dashboard/funnels/minimal").text)
    response = dash.http.post("/dashboard/funnels/minimal/steps/e1/resume", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/funnels/minimal?resumed=e1"
    row = pause_row(h)
    assert (row["resumed_at"], row["resumed_by"]) == (h.clock.now(), "dashboard")
    assert ann_enrollment(h)["next_run_at"] == h.clock.now()
    assert guardrail_actions(dash) == [("paused", None), ("resumed", "dashboard")]
    page = dash.http.get(response.headers["location"])
    assert "is running again" in page.text
    assert "Resume" not in page.text.split('id="step-e1"')[1].split("</tr>")[0]
    again = dash.http.post("/dashboard/funnels/minimal/steps/e1/resume", data={"csrf": token})
    assert again.status_code == 303  # not paused any more: nothing happens twice
    assert guardrail_actions(dash) == [("paused", None), ("resumed", "dashboard")]
    h.tick()  # Friday 09:00, inside the send window
    assert h.sent_steps("ann@example.com")[-1] == "e1"


def test_hostile_names_show_as_text_on_the_search_and_timeline_pages(dash: Dash) -> None:
    logged_in(dash)
    pages = [dash.http.get("/dashboard/subscribers"), dash.http.get("/dashboard/subscribers?q=example"),
             dash.http.get("/dashboard/subscribers?q=" + quote(SCRIPT_NAME))]
    with dash.harness.db_engine.connect() as conn:
        ids = [i for (i,) in conn.execute(sa.text("SELECT id FROM subscriber WHERE email LIKE 'm%' "
                                                  "OR email LIKE 'i%' ORDER BY id"))]
    pages += [dash.http.get(f"/dashboard/subscribers/{i}") for i in ids]
    for page in pages:
        assert page.status_code == 200
        assert "<script>alert(1)" not in page.text and "<script" not in page.text
        assert "<img src=x" not in page.text
    listing = pages[0].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[2].text  # the search box echoes it as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[3].text
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in pages[4].text


def test_search_matches_part_of_an_address_or_name_and_pages_through_the_rest(dash: Dash) -> None:
    logged_in(dash)
    h = dash.harness
    for i in range(55):
        h.add(f"bulk{i:02}@example.org", name=f"Bulk Person {i}")

    def shown(path: str) -> list[str]:
        text = dash.http.get(path).text
        return [part.split("<")[0] for part in text.split('class="person">')[1:]]

    assert shown("/dashboard/subscribers?q=ann") == ["ann@example.com"]
    assert shown("/dashboard/subscribers?q=LEE") == ["ann@example.com"]  # the name, in any case
    assert shown("/dashboard/subscribers?q=%25") == []  # % is a character, not a wildcard
    first = shown("/dashboard/subscribers?q=bulk")
    assert len(first) == 50 and first[0] == "bulk54@example.org"
    page = dash.http.get("/dashboard/subscribers?q=bulk").text
    older = page.split('Newest</a>')[-1].split('href="')[-1].split('"')[0].replace("&amp;", "&")
    assert older.startswith("/dashboard/subscribers?q=bulk&before=")
    assert shown(older) == [f"bulk{i:02}@example.org" for i in range(4, -1, -1)]


def test_the_timeline_tells_what_was_sent_answered_and_why_the_next_email_waits(dash: Dash) -> None:
    logged_in(dash)
    page = dash.http.get("/dashboard/subscribers?q=ann").text
    person = page.split('href="/dashboard/subscribers/')[1].split('"')[0]
    timeline = dash.http.get(f"/dashboard/subscribers/{person}").text
    assert "sent &#39;confirm&#39; “Please confirm”" in timeline
    assert "sent &#39;magnet&#39;" in timeline
    assert "answered “Your level?”: New" in timeline
    assert "Stage <strong>nurture</strong>" in timeline
    assert "&#39;e1&#39; is paused" in timeline and "funnel resume minimal e1" in timeline


def test_the_guardrails_page_lists_the_pause_and_its_resume(dash: Dash) -> None:
    logged_in(dash)
    page = dash.http.get("/dashboard/guardrails").text
    assert PAUSE_DETAIL in page and "No step is paused" not in page
    token = csrf_of(page)
    dash.http.post("/dashboard/funnels/minimal/steps/e1/resume", data={"csrf": token})
    after = dash.http.get("/dashboard/guardrails?funnel=minimal").text
    assert "No step is paused" in after
    assert '<tr class="resumed">' in after and "dashboard" in after.split('<tr class="resumed">')[1]


# --- the outbox ----------------------------------------------------------------------------


def test_the_outbox_lists_messages_newest_first(dash: Dash) -> None:
    logged_in(dash)
    os.utime(dash.outbox / f"{HOSTILE_MESSAGE}.eml", (2_000_000_000, 2_000_000_000))  # the newest
    page = dash.http.get("/dashboard/outbox").text
    files = len(list(dash.outbox.glob("*.eml")))
    assert files == len(dash.harness.transport.sent) + 1
    assert f"{files} messages" in page
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert len(rows) == files
    assert "Hostile &lt;b&gt;subject&lt;/b&gt;" in rows[0]
    assert sum("Please confirm" in r for r in rows) == 3


def test_an_outbox_message_is_shown_in_a_sandboxed_frame(dash: Dash) -> None:
    logged_in(dash)
    page = dash.http.get(f"/dashboard/outbox/{HOSTILE_MESSAGE}.eml")
    assert page.status_code == 200
    framed = quote(f"{HOSTILE_MESSAGE}.eml")  # hostile-1%40funnel.example.eml
    assert f'<iframe class="mail" sandbox="" src="/dashboard/outbox/{framed}/html"' in page.text
    assert "Subject: Hostile &lt;b&gt;subject&lt;/b&gt;" in page.text
    assert "<script" not in page.text
    html = dash.http.get(f"/dashboard/outbox/{HOSTILE_MESSAGE}.eml/html")
    assert html.status_code == 200
    assert "Hello from the email" in html.text
    csp = html.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "img-src data:;" in csp and "script-src" not in csp
    assert html.headers["x-frame-options"] == "SAMEORIGIN"
    dash.http.cookies.clear()
    assert dash.http.get(f"/dashboard/outbox/{HOSTILE_MESSAGE}.eml/html").status_code == 303


def test_the_preview_disarms_tracked_links_so_an_operator_click_is_not_counted(dash: Dash) -> None:
    logged_in(dash)
    base = dash.harness.daemon.web.base_url.rstrip("/")
    link = f"{base}/c/".encode()
    tracked = [p for p in dash.outbox.glob("*.eml") if link in p.read_bytes().replace(b"=\n", b"")]
    assert tracked, "the story sends at least one email with a tracked link"
    html = dash.http.get(f"/dashboard/outbox/{quote(tracked[0].name)}/html")
    assert html.status_code == 200
    assert f"{base}/c/" not in html.text and 'href="#" title="a tracked link' in html.text


def test_outbox_names_cannot_reach_outside_the_folder(dash: Dash, tmp_path: Path) -> None:
    logged_in(dash)
    secret = tmp_path / "secret.eml"
    secret.write_text("Subject: the secret\n\n<p>secret</p>")
    (dash.outbox / "link.eml").symlink_to(secret)
    (dash.outbox / ".hidden.eml").write_text("Subject: hidden\n\nx")
    for name in ("../secret.eml", "..%2Fsecret.eml", "%2E%2E%2Fsecret.eml", "..%2F..%2F", "...eml",
                 "link.eml", ".hidden.eml", "x.txt", "%2Fetc%2Fpasswd", "..%5Csecret.eml", "a%00.eml",
                 "link.eml/html"):
        response = dash.http.get(f"/dashboard/outbox/{name}")
        assert response.status_code == 404, name
        assert "secret" not in response.text.replace("/dashboard/outbox", "")
    page = dash.http.get("/dashboard/outbox").text
    assert "link.eml" not in page and "hidden.eml" not in page


def test_with_smtp_the_outbox_page_says_no_copy_is_kept(db_url: str, tmp_path: Path) -> None:
    with dashboard(db_url, tmp_path, smtp=True) as site:
        log_in(site.http)
        page = site.http.get("/dashboard/outbox")
        assert page.status_code == 200
        assert "The transport is SMTP" in page.text
        assert site.http.get("/dashboard/outbox/x.eml").status_code == 404


def test_the_releases_page_shows_each_release_what_it_changed_and_whom_it_touched(dash: Dash) -> None:
    logged_in(dash)
    h = dash.harness
    first = h.daemon.live.current.release.id
    page = dash.http.get("/dashboard/releases").text
    assert first in page and "(serving)" in page and "The first release this database recorded." in page
    project = h.daemon.project
    template = project / "templates" / "t" / "magnet.html"
    template.write_text(template.read_text() + "\n<p>More <b>news</b></p>\n")
    h.tick()  # the daemon picks the edit up
    second = h.daemon.live.current.release.id
    assert second != first
    page = dash.http.get("/dashboard/releases").text
    assert page.index(second) < page.index(first)  # newest first
    assert "<dt>Emails with a changed text</dt><dd>minimal/magnet</dd>" in page
    assert "<dt>Templates changed</dt><dd>t/magnet.html</dd>" in page
    assert f"After <span class=\"id\">{first}</span>." in page
    assert "Whom it touched when it went live" in page and "<strong>minimal</strong>: 3 subscribers" in page
    ann = dash.http.get("/dashboard/subscribers/1").text
    assert f"from release {first}" in ann
