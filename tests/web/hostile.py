"""Malformed and hostile posts to /subscribe, each with the statuses it may get.

`NASTY` is a hand-written list, one case per trick; `hostile(rnd)` draws one post from a
seeded `random.Random`, mixing the same tricks with random sizes and values. None of them
is a valid signup: each carries at least one defect the engine must refuse, so a 303,
200 or 201 (or any write) is a bug. `SURROGATE_NAMES` once crashed the engine (500); they
have their own test in test_hostile.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, quote_from_bytes

from engine.web.signup_form import MAX_BODY, TEXT_FIELDS

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
BOUNDARY = "hostile-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"

# Every refusal /subscribe documents; 303, 200 and 201 only ever answer a valid post.
REFUSALS = frozenset({400, 403, 404, 413, 415, 422, 429})
TOO_BIG = frozenset({413})
WRONG = frozenset({422})

GOOD = {"email": "ann@example.com", "funnel": "minimal", "name": "Ann"}
TEXT_KEYS = ["email", "name", "funnel", "magnet", "locale", "timezone", "source", "utm_source",
             "utm_medium", "utm_campaign", "utm_term", "utm_content", "redirect", "form", "website"]

# Not addresses, each for its own reason (a test checks check_email agrees).
BAD_EMAILS = [
    "", " ", "ann", "ann@", "@example.com", "ann@@example.com", "ann@example", "ann@.com",
    "ann@example..com", ".ann@example.com", "ann.@example.com", "ann..b@example.com",
    "ann@-example.com", "ann@example.com.", "ann example@example.com", "ann@exa mple.com",
    "<ann@example.com>", "Ann <ann@example.com>", "ann@example.com, bob@example.com",
    "ann@example.com;bob@example.com", "ann@[127.0.0.1]", "ann@localhost", "ännä@example.com",
    "a" * 65 + "@example.com", "ann@" + "a" * 64 + ".com", "a" * 250 + "@example.com",
    "ann@example.com\r\nBcc: victim@example.net", "ann@example.com\nBcc: victim@example.net",
    "ann@example.com\x00", "ann\x00@example.com", "ann@exam\tple.com", "ann@example.com%0d%0aBcc:x@y.net",
    "ann@example.com\u2028", "ann@example.com\u0085",
    '"ann"@example.com\r\n', "mailto:ann@example.com", "ann@ex\u200bample.com",
]
# Always carry a control character: a header injection needs a line break to work.
INJECTIONS = [
    "Ann\r\nBcc: victim@example.net", "Ann\nBcc: victim@example.net", "Ann\rBcc: victim@example.net",
    "Ann\r\n\r\n<html>spam</html>", "Ann\x00", "Ann\u2028Bcc: x@example.net", "Ann\u2029",
    "Ann\u0085Bcc: x@example.net", "Ann\x1b[31m", "Ann\x7f", "=?utf-8?b?QW5u?=\r\nSubject: hi",
    "Ann\x0bBcc:", "Ann\x0c",
]
# Not text: refused wherever they stand.
NOT_TEXT: list[object] = [True, False, None, [], ["ann@example.com"], {}, {"email": "ann@example.com"},
                          [[[]]], [None], {"": ""}]
# Numbers are read as their text (`{"name": 5}` is the name "5"), so they are wrong only where
# that text is: the address, a locale, a time zone, a magnet, a redirect.
NUMBERS: list[object] = [0, -1, 1.5, -0.0, 10**30, 10**4000, -1e308, 1e-320]
NUMBER_KEYS = ["email", "locale", "timezone", "magnet", "redirect"]
WRONG_CONTENT_TYPES = [
    None, "", "text/plain", "text/html", "application/xml", "application/octet-stream",
    "multipart/mixed; boundary=x", "application/jsonx", "application/json-seq", "json",
    "application/x-www-form-urlencoded-x", "*/*", "application/*", "text/json",
    "application/ld+json", "application/problem+json", "image/png", "form-data",
]


@dataclass(frozen=True)
class Post:
    """One request to /subscribe and the statuses it may get."""

    what: str  # the trick, for failure messages
    body: bytes
    content_type: str | None
    expect: frozenset[int]
    chunked: bool = False  # sent with Transfer-Encoding: chunked, no Content-Length
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes | Iterator[bytes]:
        """The body as httpx should send it."""
        if not self.chunked:
            return self.body
        return (self.body[i:i + 16_384] for i in range(0, len(self.body), 16_384))

    def request_headers(self) -> dict[str, str]:
        """Content-Type (when there is one) and the extra headers."""
        base = {} if self.content_type is None else {"content-type": self.content_type}
        return {**base, **self.headers}


def _json(what: str, data: object, expect: frozenset[int] = WRONG) -> Post:
    body = json.dumps(data).encode()
    return Post(what, body, JSON, TOO_BIG if len(body) > MAX_BODY else expect)


def _form(what: str, pairs: list[tuple[str, str]], expect: frozenset[int] = WRONG) -> Post:
    body = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs).encode()
    return Post(what, body, FORM, TOO_BIG if len(body) > MAX_BODY else expect)


def _raw_form(what: str, body: bytes, expect: frozenset[int] = WRONG) -> Post:
    return Post(what, body, FORM, TOO_BIG if len(body) > MAX_BODY else expect)


def multipart(parts: list[tuple[bytes, bytes]], close: bool = True, boundary: str = BOUNDARY) -> bytes:
    """A multipart/form-data body: `parts` are (Content-Disposition parameters, value)."""
    mark = boundary.encode()
    out = b"".join(b"--" + mark + b"\r\nContent-Disposition: form-data; " + disposition + b"\r\n\r\n"
                   + value + b"\r\n" for disposition, value in parts)
    return out + (b"--" + mark + b"--\r\n" if close else b"")


def _field(name: str, value: str) -> tuple[bytes, bytes]:
    return b'name="' + name.encode() + b'"', value.encode()


def _multipart(what: str, body: bytes, content_type: str = MULTIPART,
               expect: frozenset[int] = WRONG) -> Post:
    return Post(what, body, content_type, TOO_BIG if len(body) > MAX_BODY else expect)


# --- the hand-written list ----------------------------------------------------------------------


def _nasty() -> list[Post]:
    good_json = json.dumps(GOOD).encode()
    good_parts = [_field(k, v) for k, v in GOOD.items()]
    # The multipart parser reads truncated bodies, unknown charsets (as latin-1) and invalid
    # UTF-8 without complaint: those cases carry a bad address so that they stay refused.
    bad_parts = [_field("email", "ann@"), *good_parts[1:]]
    cases = [
        # wrong types in JSON
        *[_json(f"json email #{i}={value!r:.30}", {**GOOD, "email": value})
          for i, value in enumerate(NOT_TEXT + NUMBERS)],
        *[_json(f"json {key}=0", {**GOOD, key: 0}) for key in NUMBER_KEYS[1:]],
        *[_json(f"json {key}=null", {**GOOD, key: None}) for key in TEXT_KEYS[1:]],
        _json("json name is a list", {**GOOD, "name": ["Ann", "Bob"]}),
        _json("json funnel is an object", {**GOOD, "funnel": {"id": "minimal"}}),
        _json("json fields is a list", {**GOOD, "fields": ["a"]}),
        _json("json fields is a string", {**GOOD, "fields": "a=b"}),
        _json("json fields value is an object", {**GOOD, "fields": {"plan": {"a": "b"}}}),
        _json("json answers is null", {**GOOD, "answers": None}),
        _json("json answers value is a list", {**GOOD, "answers": {"level": ["new"]}}),
        Post("json email is 5000 digits", b'{"email":' + b"9" * 5000 + b"}", JSON, WRONG),
        Post("json email is NaN", b'{"email":NaN,"funnel":"minimal"}', JSON, WRONG),
        Post("json email is -Infinity", b'{"email":-Infinity}', JSON, WRONG),
        Post("json float overflow", b'{"email":1e99999}', JSON, WRONG),
        *[_json(f"json top level {value!r:.20}", value) for value in ([], [GOOD], "ann@example.com", 1, None,
                                                                      True)],
        # broken JSON
        Post("json truncated", good_json[:-1], JSON, WRONG),
        Post("json trailing garbage", good_json + b"x", JSON, WRONG),
        Post("json two objects", good_json + good_json, JSON, WRONG),
        Post("json single quotes", b"{'email': 'ann@example.com'}", JSON, WRONG),
        Post("json empty body", b"", JSON, WRONG),
        Post("json comment", b'{"email": "ann@example.com" /* hi */}', JSON, WRONG),
        Post("json deeply nested arrays", b"[" * 30_000 + b"]" * 30_000, JSON, WRONG),
        Post("json deeply nested objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, JSON, WRONG),
        Post("json deep value", b'{"email":' + b"[" * 20_000 + b"]" * 20_000 + b"}", JSON, WRONG),
        # duplicate keys: JSON keeps the last, forms refuse any
        Post("json duplicate email, last bad", b'{"email":"ann@example.com","email":"ann"}', JSON, WRONG),
        _form("form duplicate email", [("email", "ann@example.com"), ("email", "bob@example.com")]),
        _form("form duplicate funnel", [*GOOD.items(), ("funnel", "minimal")]),
        _multipart("multipart duplicate email", multipart([*good_parts, _field("email", "bob@example.com")])),
        # missing or invalid email
        _json("json no email", {"funnel": "minimal", "name": "Ann"}),
        _json("json empty object", {}),
        _form("form no email", [("funnel", "minimal")]),
        _form("form empty", []),
        *[_json(f"json bad email #{i} {value!r:.40}", {**GOOD, "email": value})
          for i, value in enumerate(BAD_EMAILS)],
        *[_form(f"form bad email #{i} {value!r:.40}", [*{**GOOD, "email": value}.items()])
          for i, value in enumerate(BAD_EMAILS)],
        # header injection in name and other text
        *[_form(f"form name {value!r:.40}", [*{**GOOD, "name": value}.items()]) for value in INJECTIONS],
        *[_json(f"json source {value!r:.40}", {**GOOD, "source": value}) for value in INJECTIONS],
        _raw_form("form name with encoded CRLF", b"email=ann%40example.com&name=Ann%0d%0aBcc:+x%40ex.net"),
        _raw_form("form raw CRLF in name", b"email=ann%40example.com&name=Ann\r\nBcc:+x@example.net"),
        # unknown funnels and fields
        _json("json unknown funnel", {**GOOD, "funnel": "nope"}, frozenset({404})),
        _json("json funnel of another case", {**GOOD, "funnel": "MINIMAL"}, frozenset({404})),
        _form("form unknown funnel", [*{**GOOD, "funnel": "../minimal"}.items()], frozenset({404})),
        _json("json funnel with CRLF", {**GOOD, "funnel": "minimal\r\n"}),
        _json("json unknown field", {**GOOD, "Email": "ann@example.com"}),
        _form("form unknown field", [*GOOD.items(), ("e-mail", "ann@example.com")]),
        _json("json bad custom field name", {**GOOD, "fields": {"a b": "c"}}),
        _json("json 31 custom fields", {**GOOD, "fields": {f"f{i}": "x" for i in range(31)}}),
        _json("json unknown question", {**GOOD, "answers": {"nope": "new"}}),
        _json("json unknown answer", {**GOOD, "answers": {"level": "expert"}}),
        _json("json unknown magnet", {**GOOD, "magnet": "nope"}),
        _json("json bad locale", {**GOOD, "locale": "english please"}),
        _json("json bad timezone", {**GOOD, "timezone": "Mars/Olympus"}),
        _json("json redirect elsewhere", {**GOOD, "redirect": "https://evil.example/"}),
        _json("json redirect javascript", {**GOOD, "redirect": "javascript:alert(1)"}),
        _form("form redirect protocol-relative", [*GOOD.items(), ("redirect", "//evil.example/")]),
        # NUL bytes, broken encodings, lone surrogates in values
        _raw_form("form NUL in email", b"email=ann%00%40example.com&funnel=minimal"),
        _raw_form("form raw NUL", b"email=ann\x00@example.com"),
        _raw_form("form NUL in key", b"em%00ail=ann%40example.com"),
        _raw_form("form invalid UTF-8 escaped", b"email=ann%40example.com&name=%ff%fe"),
        _raw_form("form invalid UTF-8 raw", b"email=ann%40example.com&name=\xff\xfe"),
        _raw_form("form overlong dot", b"email=ann%40example%c0%aecom"),
        _raw_form("form overlong slash", b"email=ann%40example.com&name=%c0%af"),
        _raw_form("form encoded surrogate", b"email=ann%40example.com&name=%ed%a0%80"),
        _raw_form("form truncated UTF-8", b"email=ann%40example.com&name=%e2%82"),
        _raw_form("form latin-1", "email=ann%40example.com&name=Zoë".encode("latin-1")),
        _raw_form("form bad escape", b"email=ann%4example.com&name=%zz"),
        Post("json invalid UTF-8", b'{"email":"ann@example.com","name":"\xff"}', JSON, WRONG),
        Post("json overlong UTF-8", b'{"email":"ann\xc0\xaeexample.com"}', JSON, WRONG),
        Post("json lone surrogate in name", b'{"email":"ann@example.com","name":"\\ud800"}', JSON, WRONG),
        Post("json lone low surrogate in email", b'{"email":"\\udc00ann@example.com"}', JSON, WRONG),
        Post("json surrogate in field value", b'{"email":"ann@example.com","fields":{"a":"\\udfff"}}',
             JSON, WRONG),
        Post("json NUL in email", b'{"email":"ann\\u0000@example.com"}', JSON, WRONG),
        Post("json NUL key", b'{"email":"ann@example.com","\\u0000":""}', JSON, WRONG),
        Post("json latin-1 charset", b'{"email":"ann@example.com","name":"Zo\xeb"}',
             "application/json; charset=latin-1", WRONG),
        # sizes
        _json("json name one over", {**GOOD, "name": "A" * 101}),
        _json("json 60 KiB name", {**GOOD, "name": "A" * 60_000}),
        _json("json 60 KiB field", {**GOOD, "fields": {"x": "A" * 60_000}}),
        _json("json email 255", {**GOOD, "email": "a" * 243 + "@example.com"}),
        _json("json 64 KiB + 1", {**GOOD, "name": "A" * (MAX_BODY + 1)}),
        Post("valid JSON padded past 64 KiB", good_json[:-1] + b" " * MAX_BODY + b"}", JSON, TOO_BIG),
        Post("valid JSON padded past 64 KiB, chunked", good_json[:-1] + b" " * MAX_BODY + b"}", JSON,
             TOO_BIG, chunked=True),
        Post("1 MiB form", b"email=ann%40example.com&name=" + b"A" * 2**20, FORM, TOO_BIG),
        Post("1 MiB form, chunked", b"email=ann%40example.com&name=" + b"A" * 2**20, FORM, TOO_BIG,
             chunked=True),
        Post("4 MiB multipart, chunked", multipart([*good_parts, _field("name", "A" * 2**22)]), MULTIPART,
             TOO_BIG, chunked=True),
        # thousands of fields
        _form("form 61 fields", [*GOOD.items(), *[(f"_{i}", "") for i in range(58)]]),
        _form("form 5,000 fields", [(f"k{i}", "") for i in range(5000)]),
        _json("json 5,000 keys", {f"k{i}": "" for i in range(5000)}),
        _json("json 5,000 answers", {**GOOD, "answers": {f"q{i}": "x" for i in range(5000)}}),
        _multipart("multipart 61 fields",
                   multipart([*good_parts, *[_field(f"_{i}", "") for i in range(58)]])),
        # content types
        *[Post(f"content type {kind!r}", good_json, kind, frozenset({415})) for kind in WRONG_CONTENT_TYPES],
        # multipart: files, truncation, no boundary, odd charsets
        _multipart("multipart with a file",
                   multipart([*good_parts, (b'name="cv"; filename="cv.pdf"', b"%PDF")])),
        _multipart("multipart email as a file", multipart([(b'name="email"; filename="a.txt"',
                                                            b"ann@")])),
        _multipart("multipart truncated", multipart(bad_parts)[:-30]),
        _multipart("multipart without closing boundary", multipart(bad_parts, close=False)),
        _multipart("multipart without boundary", multipart(good_parts), "multipart/form-data"),
        _multipart("multipart wrong boundary", multipart(good_parts, boundary="other")),
        _multipart("multipart empty body", b""),
        _multipart("multipart no disposition", b"--" + BOUNDARY.encode() + b"\r\n\r\nann@example.com\r\n--"
                   + BOUNDARY.encode() + b"--\r\n"),
        _multipart("multipart bogus charset", multipart(bad_parts), MULTIPART + "; charset=bogus-8"),
        _multipart("multipart utf-16 charset", multipart(bad_parts), MULTIPART + "; charset=utf-16"),
        _multipart("multipart invalid UTF-8 name", multipart([*bad_parts, (b'name="\xff\xfe"', b"x")])),
        _multipart("multipart invalid UTF-8 value", multipart([(b'name="email"', b"ann@\xff\xfe.com"),
                                                               (b'name="name"', b"\xff\xfe")])),
        _multipart("multipart CRLF in name", multipart([*good_parts[:2], _field("name", "Ann\r\nBcc: x")])),
        _multipart("multipart huge header", multipart([(b'name="email"; x="' + b"a" * 60_000 + b'"',
                                                        b"ann@")])),
    ]
    names = [case.what for case in cases]
    twice = sorted(n for n in names if names.count(n) > 1)
    assert not twice, f"hand-written cases share a name: {twice}"
    return cases


NASTY = _nasty()

# Lone surrogates in *names* (JSON keys; multipart names decoded as UTF-7) reached the error
# answer unchanged, and encoding that answer as UTF-8 raised: 500 (see test_hostile.py).
SURROGATE_NAMES = [
    Post("json surrogate key", b'{"email":"ann@example.com","\\ud800":"x"}', JSON, WRONG),
    Post("json surrogate key, value not text", b'{"\\ud800":1}', JSON, WRONG),
    Post("json surrogate custom field name", b'{"email":"ann@example.com","fields":{"\\ud800":"x"}}',
         JSON, WRONG),
    Post("json surrogate question", b'{"email":"ann@example.com","answers":{"\\udbff":"new"}}', JSON, WRONG),
    _multipart("multipart UTF-7 name decoding to a surrogate", multipart([(b'name="+2AA-"', b"x")]),
               MULTIPART + "; charset=utf-7"),
]


# --- the seeded generator -------------------------------------------------------------------------


def _text(rnd: random.Random, size: int) -> str:
    alphabet = rnd.choice(["abc", "Ann Zoë", "\u00e9\u4e2d\U0001f600", "<>&\"'%+=;", "0123456789"])
    return "".join(rnd.choice(alphabet) for _ in range(size))


def _size(rnd: random.Random) -> int:
    return rnd.choice([0, 1, 2, 100, 101, 255, 1000, 5000, 30_000, 65_000, 70_000, 200_000])


def _wrong_type(rnd: random.Random) -> Post:
    if rnd.random() < 0.3:
        key = rnd.choice(NUMBER_KEYS)
        return _json("json number where text is wrong", {**GOOD, key: rnd.choice(NUMBERS)})
    key = rnd.choice([*TEXT_KEYS, "fields", "answers"])
    value = rnd.choice(NOT_TEXT)
    if key in ("fields", "answers") and isinstance(value, dict):
        value = {"x": rnd.choice(NOT_TEXT)}
    return _json("json wrong type", {**GOOD, key: value})


def _bad_email(rnd: random.Random) -> Post:
    if rnd.random() < 0.8:
        email = rnd.choice(BAD_EMAILS)
    else:  # the alphabets hold no '@': none of these endings makes an address
        ending = rnd.choice(["", "@", "@@example.com", "@example", " @example.com"])
        email = _text(rnd, rnd.randrange(0, 40)) + ending
    data = {**GOOD, "email": email}
    return _json("json bad email", data) if rnd.random() < 0.5 else _form("form bad email", [*data.items()])


def _injection(rnd: random.Random) -> Post:
    key = rnd.choice(["name", "email", "source", "utm_source", "form"])
    value = rnd.choice(INJECTIONS) if key != "email" else "ann@example.com" + rnd.choice(INJECTIONS)[3:]
    data = {**GOOD, key: value}
    return _json("json injection", data) if rnd.random() < 0.5 else _form("form injection", [*data.items()])


def _unknown_funnel(rnd: random.Random) -> Post:
    data = {**GOOD, "funnel": "nope-" + _text(rnd, rnd.randrange(1, 20)).strip()}
    if rnd.random() < 0.5:
        return _json("json unknown funnel", data, frozenset({404}))
    return _form("form unknown funnel", [*data.items()], frozenset({404}))


def _missing_email(rnd: random.Random) -> Post:
    data = {k: v for k, v in GOOD.items() if k != "email" and rnd.random() < 0.7}
    return _json("json no email", data) if rnd.random() < 0.5 else _form("form no email", [*data.items()])


def _huge_field(rnd: random.Random) -> Post:
    key = rnd.choice(["name", "email", "source", "form", "utm_term", "fields[x]"])
    limit = {"email": 254, "fields[x]": 500}.get(key) or TEXT_FIELDS[key][0]
    value = "A" * (limit + rnd.choice([1, 100, 1000, 30_000, 70_000]))
    data = {**GOOD, key: value}
    if rnd.random() < 0.5:
        post = _form("form huge field", [*data.items()])
    else:
        post = _json("json huge field", {**GOOD, "fields": {"x": value}} if key == "fields[x]" else data)
    return post if rnd.random() < 0.8 else Post(post.what + ", chunked", post.body, post.content_type,
                                                post.expect, chunked=True)


def _huge_body(rnd: random.Random) -> Post:
    size = rnd.randrange(MAX_BODY + 1, 4 * MAX_BODY)
    body = rnd.choice([b"A" * size, b"email=ann%40example.com&name=" + b"A" * size,
                       json.dumps(GOOD).encode()[:-1] + b" " * size + b"}"])
    kind = rnd.choice([FORM, JSON, MULTIPART, "text/plain"])
    return Post("huge body", body, kind, TOO_BIG, chunked=rnd.random() < 0.5)


def _broken_encoding(rnd: random.Random) -> Post:
    bad = rnd.choice([b"\xff", b"\xfe\xff", b"\xc0\xae", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82",
                      b"\xf8\x88\x80\x80\x80", b"\xf4\x90\x80\x80", b"\x80"])
    key = rnd.choice(["email", "name", "source", "funnel"])
    if rnd.random() < 0.5:
        escaped = "".join(f"%{b:02x}" for b in bad) if rnd.random() < 0.5 else None
        value = escaped.encode() if escaped else bad
        pairs = [(k.encode(), quote(v, safe="").encode()) for k, v in GOOD.items() if k != key]
        body = b"&".join([k + b"=" + v for k, v in pairs] + [key.encode() + b"=ann" + value])
        return _raw_form("form broken UTF-8", body)
    data = json.dumps({**GOOD, key: "ann\x01"}).encode().replace(b"\\u0001", bad)
    return Post("json broken UTF-8", data, JSON, WRONG)


def _surrogate_value(rnd: random.Random) -> Post:
    key = rnd.choice(["email", "name", "source", "funnel", "locale"])
    escape = rnd.choice(["\\ud800", "\\udfff", "\\udbff\\u0041", "\\udc00\\ud800"]).encode()
    data = json.dumps({**GOOD, key: "ann\x01"}).encode().replace(b"\\u0001", escape)
    return Post("json lone surrogate in a value", data, JSON, WRONG)


def _nul(rnd: random.Random) -> Post:
    key = rnd.choice(["email", "name", "source", "funnel"])
    data = {**GOOD, key: GOOD.get(key, "x") + "\x00"}
    return _json("json NUL", data) if rnd.random() < 0.5 else _form("form NUL", [*data.items()])


def _content_type(rnd: random.Random) -> Post:
    body = rnd.choice([json.dumps(GOOD).encode(), b"email=ann%40example.com", multipart(
        [_field(k, v) for k, v in GOOD.items()])])
    return Post("wrong content type", body, rnd.choice(WRONG_CONTENT_TYPES), frozenset({415}))


def _multipart_trouble(rnd: random.Random) -> Post:
    parts = [_field(k, v) for k, v in {**GOOD, "email": rnd.choice(BAD_EMAILS[1:6])}.items()]
    choice = rnd.randrange(4)
    if choice == 0:  # truncated anywhere (a bad email keeps it refused even if it parsed)
        body = multipart(parts)
        return _multipart("multipart truncated", body[:rnd.randrange(0, len(body) - 2)])
    if choice == 1:
        parts.insert(rnd.randrange(len(parts) + 1), (b'name="file"; filename="x.bin"', rnd.randbytes(100)))
        return _multipart("multipart with a file", multipart(parts))
    if choice == 2:
        return _multipart("multipart many fields", multipart(
            [*parts, *[_field(f"_{i}", "") for i in range(rnd.randrange(57, 3000))]]))
    return _multipart("multipart odd charset", multipart(parts), MULTIPART + "; charset="
                      + rnd.choice(["bogus", "utf-16", "utf-32", "latin-1", "ascii", "cp1252"]))


def _duplicates(rnd: random.Random) -> Post:
    key = rnd.choice(list(GOOD))
    pairs = [*GOOD.items(), (key, GOOD.get(key, "x"))]
    rnd.shuffle(pairs)
    if rnd.random() < 0.3:
        return Post("json duplicate key, last invalid",
                    json.dumps(GOOD).encode()[:-1] + b', "email": "ann"}', JSON, WRONG)
    if rnd.random() < 0.5:
        return _multipart("multipart duplicate", multipart([_field(k, v) for k, v in pairs]))
    return _form("form duplicate", pairs)


def _many_fields(rnd: random.Random) -> Post:
    count = rnd.randrange(58, 8000)
    extra = {f"_{i}": "" for i in range(count)} if rnd.random() < 0.5 else {f"k{i}": "" for i in range(count)}
    if rnd.random() < 0.5:
        return _json("json many keys", {**GOOD, **extra})
    return _form("form many fields", [*GOOD.items(), *extra.items()])


def _deep(rnd: random.Random) -> Post:
    depth = rnd.choice([2, 10, 100, 1000, 5000, 20_000, 40_000])
    opener, closer = rnd.choice([(b"[", b"]"), (b'{"a":', b"}")])
    core = opener * depth + b"1" + closer * depth
    body = rnd.choice([core, b'{"email":' + core + b"}",
                       b'{"email":"ann@example.com","fields":' + core + b"}"])
    return Post("json deeply nested", body, JSON, TOO_BIG if len(body) > MAX_BODY else WRONG)


def _not_an_object(rnd: random.Random) -> Post:
    good = json.dumps(GOOD).encode()
    body = rnd.choice([b"[]", b'"ann@example.com"', b"1", b"null", b"true", b"[" + good + b"]",
                       good[:rnd.randrange(0, 40)], b"{" + rnd.randbytes(20) + b"}", good + b"}"])
    return Post("json not an object", body, JSON, WRONG)


def _bad_choice(rnd: random.Random) -> Post:
    key, value = rnd.choice([
        ("magnet", "nope"), ("locale", "x" * 36), ("locale", "en_US!"), ("timezone", "Europe/Nowhere"),
        ("redirect", "https://evil.example/"), ("redirect", "javascript:alert(1)"),
        ("redirect", "//evil.example"),
        ("fields[a b]", "x"), ("fields[]", "x"), ("answers[level]", "expert"), ("answers[nope]", "new"),
        ("Email", "ann@example.com"), ("unknown", "x"), ("fields", "x"), ("x" * 101, "x"),
    ])
    data = {**GOOD, key: value}
    return _json("json bad choice", data) if rnd.random() < 0.5 else _form("form bad choice", [*data.items()])


def _random_bytes(rnd: random.Random) -> Post:
    body = rnd.randbytes(rnd.choice([0, 1, 10, 1000, 60_000]))
    kind = rnd.choice([FORM, JSON, MULTIPART])
    # Random bytes as a form could hold 'email=a@b.co' by chance: never in practice, but add a bad field.
    body = body + (b"&email=ann" if kind == FORM else b"")
    return Post("random bytes", body, kind, TOO_BIG if len(body) > MAX_BODY else WRONG)


def _random_binary_form(rnd: random.Random) -> Post:
    pairs = [(rnd.randbytes(rnd.randrange(0, 8)), rnd.randbytes(rnd.randrange(0, 30))) for _ in range(5)]
    body = b"&".join(quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode() for k, v in pairs)
    return _raw_form("form of random bytes", body + b"&email=ann")


FAMILIES: list[Callable[[random.Random], Post]] = [
    _wrong_type, _bad_email, _injection, _unknown_funnel, _missing_email, _huge_field, _huge_body,
    _broken_encoding, _surrogate_value, _nul, _content_type, _multipart_trouble, _duplicates,
    _many_fields, _deep, _not_an_object, _bad_choice, _random_bytes, _random_binary_form,
]
# Big bodies cost the most time and prove the least after the first few hundred.
_WEIGHTS = [1 if family in (_huge_body, _huge_field, _deep, _many_fields) else 3 for family in FAMILIES]


def hostile(rnd: random.Random) -> Post:
    """One hostile post: a hand-written case now and then, else a random family's draw."""
    if rnd.random() < 0.1:
        return rnd.choice(NASTY)
    (family,) = rnd.choices(FAMILIES, _WEIGHTS)
    return family(rnd)
