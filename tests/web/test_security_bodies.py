"""Bodies over real HTTP: the API key before the body, caps before the bytes, and one JSON key once.

Issue 13, findings 10 and 13: four unauthenticated 100 MB posts to /api/ took a daemon
from 110 MB to 1 GB, because the key was checked after the body was read and parsed; and
`{"type": "purchase", "type": "complaint"}` was recorded as a complaint.
"""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import sqlalchemy as sa

from engine.store.tables import EVENT, SUBSCRIBER
from engine.web import api, webhooks
from tests.web.conftest import API_KEY, Site

HUNDRED_MB = 100 * 1024 * 1024
PIECE = b"x" * (1024 * 1024)


def _connect(site: Site) -> socket.socket:
    address = urlsplit(str(site.http.base_url))
    return socket.create_connection((address.hostname, address.port), timeout=10)


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body of the one response on `sock` (the server closes after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed without answering: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def _post_head(path: str, length: int | None, key: str | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _send_until_cut(sock: socket.socket, total: int) -> int:
    """Send up to `total` bytes of body; how many went before the server closed the connection."""
    sent = 0
    try:
        while sent < total:
            sock.sendall(PIECE)
            sent += len(PIECE)
    except OSError:  # BrokenPipe or ConnectionReset: the server is done with us
        pass
    return sent


def _rss_bytes() -> int:
    """This process's resident memory (the served app runs in a thread of it)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_an_unauthenticated_100_mb_post_to_the_api_is_401_before_its_body_is_read(site: Site) -> None:
    before = _rss_bytes()
    with _connect(site) as sock:
        sock.sendall(_post_head("/api/events", HUNDRED_MB))
        # The first mebibyte only: the answer must not wait for the rest. On a busy machine the
        # server may answer and hang up before even that has gone (a broken pipe); its answer is
        # still there to read.
        sent = _send_until_cut(sock, len(PIECE))
        status, headers, body = _answer(sock)
        sent += _send_until_cut(sock, HUNDRED_MB)
    assert status == 401
    assert json.loads(body) == {"detail": "send Authorization: Bearer <api key>"}
    assert headers["www-authenticate"] == "Bearer" and headers["connection"] == "close"
    assert sent < HUNDRED_MB // 4  # the server hung up instead of reading on
    assert _rss_bytes() - before < 20 * 1024 * 1024
    with site.harness.db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(EVENT)).scalar_one() == 0


def test_a_wrong_key_with_a_chunked_body_is_401_before_the_body(site: Site) -> None:
    with _connect(site) as sock:
        sock.sendall(_post_head("/api/subscribers", None, key="wrong"))
        status, _, body = _answer(sock)  # answered with no byte of the body sent
    assert status == 401 and json.loads(body)["detail"] == "send Authorization: Bearer <api key>"


def test_an_authenticated_oversized_post_is_413_at_once(site: Site) -> None:
    with _connect(site) as sock:
        started = time.monotonic()
        sock.sendall(_post_head("/api/events", HUNDRED_MB, key=API_KEY))  # no byte of the body yet
        status, headers, body = _answer(sock)
    assert status == 413 and time.monotonic() - started < 5
    assert json.loads(body) == {"detail": "the body is over 256 KiB; send a smaller one"}
    assert headers["connection"] == "close"


def test_an_authenticated_chunked_post_is_cut_at_the_cap_with_413(site: Site) -> None:
    with _connect(site) as sock:
        sock.sendall(_post_head("/api/events", None, key=API_KEY))
        sent = 0
        answered = None
        sock.settimeout(0.05)
        while answered is None and sent < HUNDRED_MB:
            sock.sendall(b"10000\r\n" + b" " * 0x10000 + b"\r\n")  # 64 KiB of JSON white space a chunk
            sent += 0x10000
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    answered = sent
            except TimeoutError:
                continue
        sock.settimeout(10)
        status, _, body = _answer(sock)
    assert status == 413 and json.loads(body)["detail"] == "the body is over 256 KiB; send a smaller one"
    assert answered is not None and answered <= api.MAX_BODY + 8 * 0x10000  # the cap, and what was in flight


def test_every_route_has_a_ceiling_the_dashboard_login_and_webhooks_too(site: Site) -> None:
    for path in ("/dashboard/login", "/u/anything", "/webhooks/postmark"):
        with _connect(site) as sock:
            sock.sendall(_post_head(path, webhooks.MAX_BODY + 1))
            status, _, body = _answer(sock)
        assert (path, status) == (path, 413), body
    response = site.http.post("/dashboard/login", content=b"x" * (webhooks.MAX_BODY + 1),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


def test_api_calls_under_the_cap_still_work(site: Site) -> None:
    site.harness.add("ann@example.com")
    answer = site.http.post("/api/events", json={"email": "ann@example.com", "type": "purchase"},
                            headers=site.api)
    assert answer.status_code == 201, answer.text
    assert site.http.get("/api/stats", headers=site.api).status_code == 200
    assert site.http.get("/api/stats").status_code == 401


def test_a_repeated_json_key_in_an_api_event_is_422_and_nothing_is_recorded(site: Site) -> None:
    site.harness.add("ann@example.com")
    body = b'{"email": "ann@example.com", "type": "purchase", "type": "complaint"}'
    answer = site.http.post("/api/events", content=body,
                            headers={**site.api, "Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json() == {"detail": [{"loc": ["body", "type"], "type": "value_error",
                                         "msg": "'type' was sent more than once; send it once"}]}
    with site.harness.db_engine.connect() as conn:
        assert conn.execute(sa.select(SUBSCRIBER.c.status)).scalar_one() == "active"
        assert conn.execute(sa.select(sa.func.count()).select_from(EVENT)
                            .where(EVENT.c.type.in_(["purchase", "complaint"]))).scalar_one() == 0


def test_a_repeated_key_is_refused_on_every_json_route_nested_ones_too(site: Site) -> None:
    cases = [
        ("/api/subscribers", b'{"email": "ann@example.com", "fields": {"plan": "a", "plan": "b"}}', "plan"),
        ("/subscribe", b'{"email": "ann@example.com", "email": "eve@example.com"}', "email"),
        ("/webhooks/postmark", b'{"RecordType": "SpamComplaint", "RecordType": "Bounce"}', "RecordType"),
    ]
    for path, body, key in cases:
        hook = path.startswith("/webhooks")
        answer = site.http.post(path, content=body, auth=("hooks", API_KEY) if hook else None,
                                headers={**({} if hook else site.api), "Content-Type": "application/json"})
        assert (path, answer.status_code) == (path, 422), answer.text
        assert answer.json()["detail"][0]["msg"] == f"'{key}' was sent more than once; send it once"
    with site.harness.db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(SUBSCRIBER)).scalar_one() == 0
