"""Hostile posts to /subscribe on the real served app: refused, never a 5xx, never a write.

The posts come from tests/web/hostile.py (a hand-written list and a seeded generator) and
from hypothesis (the project's profiles: `ci` is derandomized). The per-IP limit is set
high so that it cannot hide what the parser does; one test sets it low on purpose.
HOSTILE_SEED=<n> draws another 10,000.
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_from_bytes

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from engine.store.tables import CONSENT, DELIVERY, ENROLLMENT, EVENT, SUBSCRIBER, TAG
from engine.web.signup_form import MAX_BODY, check_email, text_problem
from tests.scheduler.harness import Harness
from tests.support.databases import sqlite_database
from tests.support.project import minimal_project
from tests.web.hostile import (
    BAD_EMAILS,
    FORM,
    GOOD,
    JSON,
    MULTIPART,
    NASTY,
    REFUSALS,
    SURROGATE_NAMES,
    TEXT_KEYS,
    WRONG,
    Post,
    hostile,
    multipart,
)
from tests.web.served import serve

MONDAY = datetime(2026, 3, 2, 9, tzinfo=UTC)
TABLES = (SUBSCRIBER, ENROLLMENT, CONSENT, EVENT, DELIVERY, TAG)
NOTHING = {table.name: 0 for table in TABLES}
POSTS = {"sqlite": 10_000, "postgresql": 1_000}
SEED = int(os.environ.get("HOSTILE_SEED", "20260302"))
NO_LIMIT = 1_000_000  # signups per IP and hour: the limit must not answer before the parser
IP_KEYS = 1_000  # a small limit table, so that a flood of new addresses has to evict
RSS_GROWTH = 100 * 2**20


def _rows(db_engine: Engine) -> dict[str, int]:
    with db_engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in TABLES}


def _rss() -> int:
    """Resident memory of this process in bytes: the served app runs in it, in a thread."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:  # not Linux: the peak is the best there is
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _send(client: httpx.Client, post: Post, ip: str | None = None) -> httpx.Response | str:
    """The answer to `post`, or what went wrong on the wire instead."""
    headers = post.request_headers()
    if ip:
        headers["x-forwarded-for"] = ip
    try:
        return client.post("/subscribe", content=post.content(), headers=headers)
    except httpx.TransportError as error:
        return f"no answer: {error!r}"[:200]


def _status(answer: httpx.Response | str) -> int | str:
    return answer.status_code if isinstance(answer, httpx.Response) else answer


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Harness, httpx.Client]]:
    """One daemon on SQLite with its app served, shared by the cases that must all write nothing."""
    folder = tmp_path_factory.mktemp("hostile")
    with sqlite_database(folder) as url:
        harness = Harness(url, minimal_project(folder / "project"), MONDAY, signup_limit_per_ip=NO_LIMIT)
        try:
            with serve(harness) as client:
                yield harness, client
        finally:
            harness.close()


def test_the_bad_addresses_are_not_addresses() -> None:
    """The generator's premise: each of BAD_EMAILS is refused by the engine's own check."""
    for value in BAD_EMAILS:
        assert text_problem(value, 254) or check_email(value.strip(), False)[1], value


@pytest.mark.parametrize("post", NASTY, ids=[post.what for post in NASTY])
def test_a_nasty_post_is_refused(served: tuple[Harness, httpx.Client], post: Post) -> None:
    harness, client = served
    answer = _send(client, post)
    assert _status(answer) in post.expect
    assert isinstance(answer, httpx.Response)
    if post.content_type == JSON:  # a script gets a problem per field, in JSON
        problems = answer.json()["detail"]
        assert problems and all(p["loc"][0] == "body" and p["msg"] for p in problems)
    assert _rows(harness.db_engine) == NOTHING


@pytest.mark.parametrize("post", SURROGATE_NAMES, ids=[post.what for post in SURROGATE_NAMES])
def test_a_surrogate_in_a_field_name_is_refused(served: tuple[Harness, httpx.Client], post: Post) -> None:
    harness, client = served
    # A 500 would leave uvicorn's connection unusable for the next request: close it.
    post = Post(post.what, post.body, post.content_type, post.expect, headers={"connection": "close"})
    assert _status(_send(client, post)) in post.expect
    assert _rows(harness.db_engine) == NOTHING


def test_a_json_post_has_the_field_cap_of_a_form(tmp_path: Path) -> None:
    """61 keys: a form is refused, so is the same post as JSON; and 5,000 keys get a short answer."""
    ignored = {f"_{i}": "" for i in range(58)}  # keys a CMS adds; each is fine alone
    with sqlite_database(tmp_path) as url:
        harness = Harness(url, minimal_project(tmp_path / "project"), MONDAY, signup_limit_per_ip=NO_LIMIT)
        try:
            with serve(harness) as client:
                form = client.post("/subscribe", data={**GOOD, **ignored})
                as_json = client.post("/subscribe", json={**GOOD, **ignored})
                flood = client.post("/subscribe", json={f"k{i}": "" for i in range(5000)})
            rows = _rows(harness.db_engine)
        finally:
            harness.close()
    assert form.status_code == 422
    assert as_json.status_code == 422
    assert rows == NOTHING
    assert flood.status_code == 422 and len(flood.content) <= MAX_BODY


# --- hypothesis ---------------------------------------------------------------------------------

_keys = st.sampled_from([*TEXT_KEYS, "fields", "answers", "fields[x]", "answers[level]", "_x", "submit"])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=300))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=20)
# Whatever else a post holds, one of these makes it invalid (the last value of a key wins).
_defects = st.sampled_from([("email", "ann@"), ("email", "ann@example"), ("e-mail", "x"),
                            ("funnel", "nope"), ("fields", "x"), ("locale", "?")])


@st.composite
def _posts(draw: st.DrawFn) -> Post:
    kind = draw(st.sampled_from([JSON, FORM, MULTIPART]))
    key, value = draw(_defects)
    if kind == JSON:
        data = draw(st.dictionaries(_keys | st.text(max_size=30), _values, max_size=12))
        return Post("hypothesis JSON", json.dumps({**data, key: value}).encode(), JSON, REFUSALS)
    names = _keys.map(str.encode) | st.binary(max_size=20)
    pairs = draw(st.lists(st.tuples(names, st.binary(max_size=200)), max_size=12))
    pairs.append((key.encode(), value.encode()))
    if kind == FORM:
        body = b"&".join(quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode() for k, v in pairs)
        return Post("hypothesis form", body, FORM, REFUSALS)
    parts = [(b'name="' + k.replace(b'"', b"").replace(b"\r", b"").replace(b"\n", b"") + b'"', v)
             for k, v in pairs]
    return Post("hypothesis multipart", multipart(parts), MULTIPART, REFUSALS)


@given(post=_posts())
def test_whatever_a_post_holds_it_is_refused_and_nothing_is_written(
    served: tuple[Harness, httpx.Client], post: Post
) -> None:
    harness, client = served
    assert _status(_send(client, post)) in REFUSALS - {429}
    assert _rows(harness.db_engine) == NOTHING


# --- ten thousand -------------------------------------------------------------------------------


def test_ten_thousand_hostile_posts(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Each refused as expected, nothing written, memory and the limit table bounded."""
    count = POSTS[request.node.callspec.params["db_url"]]
    harness = Harness(db_url, minimal_project(tmp_path / "project"), MONDAY, signup_limit_per_ip=NO_LIMIT)
    web = harness.daemon.web
    web.ip_limit.max_keys = IP_KEYS
    rnd = random.Random(SEED)
    wrong: Counter[tuple[str, int | str, tuple[int, ...]]] = Counter()
    try:
        with serve(harness) as client:
            _send(client, NASTY[0])  # the first request's imports and caches are not growth
            before = _rss()
            started = time.perf_counter()
            for _ in range(count):
                post = hostile(rnd)  # drawn one at a time: ten thousand bodies at once would be the growth
                ip = f"10.{rnd.randrange(8)}.{rnd.randrange(256)}.{rnd.randrange(256)}"
                status = _status(_send(client, post, ip))
                if status not in post.expect:
                    wrong[(post.what, status, tuple(sorted(post.expect)))] += 1
            seconds = time.perf_counter() - started
            grown = _rss() - before
        rows = _rows(harness.db_engine)
    finally:
        harness.close()
    assert not wrong, f"seed {SEED}, (trick, got, expected): count\n" + "\n".join(
        f"{key}: {n}" for key, n in wrong.most_common(30))
    assert rows == NOTHING
    assert grown < RSS_GROWTH, f"resident memory grew {grown / 2**20:.0f} MiB over {count} posts"
    assert len(web.ip_limit) <= IP_KEYS
    assert len(web.address_limit) == 0  # no post got as far as the per-address limit
    assert seconds < count * 0.02, f"{count} posts took {seconds:.1f} s"


def test_the_ip_limit_answers_429_with_retry_after_and_writes_nothing(tmp_path: Path) -> None:
    ip, other_ip = {"x-forwarded-for": "10.9.9.9"}, {"x-forwarded-for": "10.9.9.10"}
    with sqlite_database(tmp_path) as url:
        harness = Harness(url, minimal_project(tmp_path / "project"), MONDAY, signup_limit_per_ip=5)
        try:
            with serve(harness) as client:
                early = [_status(_send(client, post, "10.9.9.9")) for post in NASTY[:5]]
                as_json = client.post("/subscribe", json=GOOD, headers=ip)
                as_form = client.post("/subscribe", data=GOOD, headers=ip)
                hostile_post = client.post("/subscribe", json={"email": "ann@"}, headers=ip)
                elsewhere = client.post("/subscribe", json={"email": "ann@"}, headers=other_ip)
            rows = _rows(harness.db_engine)
        finally:
            harness.close()
    assert all(status in WRONG for status in early)  # a refused post counts against the IP too
    for answer in (as_json, as_form, hostile_post):
        assert answer.status_code == 429
        assert 1 <= int(answer.headers["retry-after"]) <= 3600  # 5 an hour: one more in 720 s
    assert as_json.json()["detail"][0]["msg"].startswith("too many signups")
    assert as_form.headers["content-type"].startswith("text/html")
    assert elsewhere.status_code == 422  # another address has its own allowance
    assert rows == NOTHING
