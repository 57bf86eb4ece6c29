"""The MIME writer: exact headers, no injection whatever the subscriber typed, bodies that decode back."""

from __future__ import annotations

import binascii
import re
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.mail.message import (
    _SURROGATE,
    _UNSAFE_RUN,
    _URL,
    BodyShape,
    _clean,
    _is_url,
    _part,
    build_message,
    check_address,
    new_message_id,
)

DATE = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))
MESSAGE_ID = "0123456789abcdef0123456789abcdef@funnel.example.com"
BASE_HEADERS = ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type"]
HOSTILE = [
    "Ann\r\nBcc: x@example.org",
    "Ann\nBcc: x@example.org",
    "Ann\rBcc: x@example.org",
    "Ann\u2028Bcc: x",
    "Ann\u2029Bcc: x\u0085Cc: y@example.org",
    "Ann\x00Lee",
    "=?utf-8?q?A=0ABcc:_x@example.org?=",
    "=?utf-8?b?QQpCY2M6IHhAZXhhbXBsZS5vcmc=?=",
    "Ann <x@example.org>, Bob",
    '"Ann" <x@example.org>',
    "x@example.org",
    "A" * 500,
    "Árvíztűrő " * 50,
    "Ann\r\n\r\n<html>body</html>",
    "\r\n.\r\nMAIL FROM:<x@example.org>",
    "\t Ann \x1b[31m Lee \x7f\x9b ",
    "😀" * 60 + "\r\nBcc: x@example.org",
]


FRAGMENTS = ["\r\n", "\n", "\r", "\u2028", "\u2029", "\x85", "\x00", "\t", "\x0b", "\x1c", "=?", "?=",
             "=?utf-8?q?", "=?utf-8?b?", "Bcc: x@example.org", "<", ">", '"', ",", "@", ":", ";", "\\",
             "(", ")", ".", " ", "  ", "\xa0", "é", "Ő", "😀", "中", "\u200d", "\ufeff"]
# Arbitrary text, and text built from the pieces an attacker (or a bug) would use.
untrusted = st.text(max_size=300) | st.lists(
    st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=60).map("".join)


def sanitized(text: str) -> str:
    """What the rules say a receiver must read: controls and line breaks as single spaces."""
    spaced = "".join(" " if ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" else c
                     for c in text)
    return " ".join(word for word in spaced.split(" ") if word).strip()


def build(**overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "sender": "Coach Sam <sam@example.com>", "to_name": "Ann Lee", "to_address": "ann@example.com",
        "subject": "Welcome", "html": "<p>Hello</p>", "text": "Hello", "message_id": MESSAGE_ID,
        "date": DATE}
    arguments.update(overrides)
    return build_message(**arguments)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def parse_compat32(data: bytes) -> Message:
    return BytesParser(policy=policy.compat32).parsebytes(data)


def rfc2047_display_name(message: Message, address: str) -> str:
    """The To display name decoded by RFC 2047 §6.2 rules (stdlib decode_header, compat32).

    policy.default is not used for long names: before CPython gh-128110 (3.11.7 here) it keeps
    a space between two adjacent encoded-words of a display name, which RFC 2047 says to drop.
    """
    raw = re.sub(r"\r?\n(?=[ \t])", "", str(message["To"]))
    phrase = raw.removesuffix(f"<{address}>").removesuffix(address).strip()
    return str(make_header(decode_header(phrase)))


def body_parts(message: EmailMessage) -> list[str]:
    return [part.get_content().replace("\r\n", "\n") for part in message.iter_parts()]


def test_the_headers_in_order_and_as_written() -> None:
    data = build()
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert head.split("\r\n") == [
        "Date: Mon, 02 Mar 2026 09:00:00 +0100",
        "From: Coach Sam <sam@example.com>",
        "To: Ann Lee <ann@example.com>",
        "Subject: Welcome",
        f"Message-ID: <{MESSAGE_ID}>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/alternative; boundary="=_' + head.split('boundary="=_')[1].rstrip('"') + '"',
    ]


def test_every_line_ends_in_crlf_and_is_short() -> None:
    data = build(to_name="Árvíztűrő tükörfúrógép " * 20, subject="Привет, " * 40,
                 html="<p>" + "x" * 5000 + "</p>\n" * 3, text="line\n" * 50)
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 76


def test_optional_headers_reply_to_list_unsubscribe_and_extras() -> None:
    message = parse(build(reply_to="Help Desk <help@example.com>",
                          list_unsubscribe="https://funnel.example.com/u/abc?x=1&y=%20",
                          headers={"X-Funnel": "first-marathon", "Precedence": "bulk"}))
    assert list(message.keys()) == [*BASE_HEADERS[:-1], "Reply-To", "List-Unsubscribe",
                                    "List-Unsubscribe-Post", "X-Funnel", "Precedence", "Content-Type"]
    assert message["Reply-To"].addresses[0].addr_spec == "help@example.com"
    assert message["List-Unsubscribe"] == "<https://funnel.example.com/u/abc?x=1&y=%20>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["X-Funnel"] == "first-marathon"


def test_one_click_unsubscribe_is_for_https_only() -> None:
    message = parse(build(list_unsubscribe="http://127.0.0.1:8000/u/abc"))
    assert message["List-Unsubscribe"] == "<http://127.0.0.1:8000/u/abc>"
    assert message["List-Unsubscribe-Post"] is None  # RFC 8058 §3.1: HTTPS only


def test_message_id_and_date_round_trip() -> None:
    message = parse(build())
    assert message["Message-ID"] == f"<{MESSAGE_ID}>"
    assert message["Date"].datetime == DATE
    assert parse(build(date=datetime(2026, 7, 1, 12, 30, tzinfo=UTC)))["Date"].datetime == datetime(
        2026, 7, 1, 12, 30, tzinfo=UTC)


def test_new_message_ids_are_random_and_bare() -> None:
    first, second = new_message_id("funnel.example.com"), new_message_id("funnel.example.com")
    assert first != second
    assert re.fullmatch(r"[0-9a-f]{32}@funnel\.example\.com", first)
    with pytest.raises(ValueError, match="Message-ID"):
        new_message_id("bad domain>\r\nBcc: x")


@pytest.mark.parametrize("sender, name, address", [
    ("Coach Sam <sam@example.com>", "Coach Sam", "sam@example.com"),
    ('"Łukasz" <l@example.pl>', "Łukasz", "l@example.pl"),
    ('"Sam, the Coach" <sam@example.com>', "Sam, the Coach", "sam@example.com"),
    ("sam@example.com", "", "sam@example.com"),
])
def test_the_sender_is_parsed_and_its_name_encoded_when_needed(sender: str, name: str, address: str) -> None:
    message = parse(build(sender=sender))
    (mailbox,) = message["From"].addresses
    assert (mailbox.display_name, mailbox.addr_spec) == (name, address)


@pytest.mark.parametrize("sender", [
    "Sam <sam@example.com>\r\nBcc: x@example.org",
    "Sam\n <sam@example.com>",
    "sam@example.com, other@example.org",
    "Sam <sam@example.com> <other@example.org>",
    "Sam",
    "Sam <s am@example.com>",
    "Sam <sam@exämple.com>",
])
def test_a_bad_sender_is_refused(sender: str) -> None:
    with pytest.raises(ValueError, match="sender"):
        build(sender=sender)


@pytest.mark.parametrize("address, why", [
    ("ann@example.com\r\nBcc: x@example.org", "line break"),
    ("ann@example.com\n", "line break"),
    ("ann\x00@example.com", "control character"),
    ("ann lee@example.com", "space"),
    ("<ann@example.com>", "part before '@'"),
    ("ann@example.com>", "part after '@'"),
    ("ann@@example.com", "exactly one '@'"),
    ("ann@b@example.com", "exactly one '@'"),
    ("annexample.com", "exactly one '@'"),
    ("@example.com", "part before '@'"),
    ("ann@", "part after '@'"),
    ("ann@exa mple.com", "space"),
    ("ann,bob@example.com", "part before '@'"),
    ("\"ann\"@example.com", "part before '@'"),
    ("x" * 65 + "@example.com", "part before '@'"),
    ("ann@-example.com", "part after '@'"),
    ("Ánn@example.com", "SMTPUTF8"),
    ("ann@exämple.com", "SMTPUTF8"),
    ("ann@example.com\u2028", "SMTPUTF8"),
])
def test_a_bad_recipient_address_is_refused(address: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        build(to_address=address)


def test_usual_addresses_are_accepted() -> None:
    for address in ["ann@example.com", "ann.lee+funnel@mail.example.co.uk", "o'brien@example.ie",
                    "x_y-z@sub-domain.example", "ANN@EXAMPLE.COM", "a@localhost"]:
        assert check_address(address) == address


@pytest.mark.parametrize("overrides, match", [
    ({"date": datetime(2026, 3, 2, 9, 0)}, "time zone"),
    ({"message_id": "<abc@example.com>"}, "Message-ID"),
    ({"message_id": "abc@example.com\r\nBcc: x"}, "Message-ID"),
    ({"message_id": "no-at-sign"}, "Message-ID"),
    ({"list_unsubscribe": "ftp://example.com/u"}, "https://"),
    ({"list_unsubscribe": "mailto:u@example.com"}, "https://"),
    ({"list_unsubscribe": "https://example.com/u>\r\nBcc: x"}, "https://"),
    ({"list_unsubscribe": "https://example.com/ü"}, "https://"),
    ({"reply_to": "Help <help@example.com>\r\nBcc: x"}, "reply_to"),
    ({"headers": {"Bcc": "x@example.org"}}, "written by build_message"),
    ({"headers": {"subject": "two subjects"}}, "written by build_message"),
    ({"headers": {"X-Bad Name": "v"}}, "header name"),
    ({"headers": {"X-Bad:Name": "v"}}, "header name"),
    ({"headers": {"X-Ok": "v\r\nBcc: x@example.org"}}, "printable ASCII"),
    ({"headers": {"X-Ok": "é"}}, "printable ASCII"),
])
def test_bad_fixed_values_are_refused(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(**overrides)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_name_or_subject_stays_inside_its_header(name: str) -> None:
    data = build(to_name=name, subject=name)
    for message in (parse(data), parse_compat32(data)):
        assert list(message.keys()) == BASE_HEADERS
        assert message.get_content_type() == "multipart/alternative"
        assert len(message.get_payload()) == 2
    message = parse(data)
    (mailbox,) = message["To"].addresses
    assert mailbox.addr_spec == "ann@example.com"
    assert str(message["Subject"]) == sanitized(name)
    assert rfc2047_display_name(parse_compat32(data), "ann@example.com") == sanitized(name)
    assert not message["To"].defects and not message["Subject"].defects and not message.defects


@pytest.mark.parametrize("name", [
    "Árvíztűrő tükörfúrógép", "Наталья Иванова", "王小明", "François Lefèvre-Ça",
    "Zoë 🎉🏃‍♀️", "Ann Lee", "O'Brien & Sons!", "Dr. Ann Lee, PhD", "Ann (runner)", "Ann \"Speedy\" Lee",
])
def test_short_names_decode_exactly_with_the_modern_parser(name: str) -> None:
    (mailbox,) = parse(build(to_name=name))["To"].addresses
    assert mailbox.display_name == name


def test_an_empty_name_leaves_a_bare_address() -> None:
    data = build(to_name=" \r\n ", subject="")
    assert b"\r\nTo: ann@example.com\r\n" in data
    assert b"\r\nSubject:\r\n" in data
    assert parse(data)["To"].addresses[0].display_name == ""


def test_encoded_words_stay_within_75_characters_and_split_whole_characters() -> None:
    text = "Árvíztűrő 🎉 王小明 " * 30
    data = build(to_name=text, subject=text)
    words = re.findall(rb"=\?utf-8\?B\?[A-Za-z0-9+/=]*\?=", data)
    assert words and max(len(word) for word in words) <= 75
    for word in words:  # each one decodes on its own: no UTF-8 sequence was cut
        decode_header(word.decode())[0][0].decode("utf-8")


def test_bodies_decode_back_exactly() -> None:
    text = ("Hi Ann,\n\n.\n.leading dot\nFrom the coach\ntrailing spaces   \ntab\tin\n"
            + "long " * 100 + "\n= equals =3D\nÁrvíztűrő 🎉\n")
    html = "<html><body><p style=\"color: red\">" + "x" * 5000 + "</p>\n<p>Ünnep</p></body></html>"
    message = parse(build(text=text, html=html))
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert body_parts(message) == [text, html]
    for part in message.iter_parts():
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"


@given(name=untrusted, subject=untrusted, html=untrusted, text=untrusted)
@example(name="a\rb", subject="c\nd", html="<p>\r</p>\n.x\r\n", text="\n\n\r")
def test_every_line_ends_in_crlf_whatever_the_values(name: str, subject: str, html: str, text: str) -> None:
    # What Outgoing.crlf promises the SMTP transport for every composed message.
    data = build(to_name=name, subject=subject, html=html, text=text)
    assert data.count(b"\n") == data.count(b"\r") == data.count(b"\r\n")


def test_bare_cr_and_lf_in_a_body_become_crlf() -> None:
    message = parse(build(text="a\rb\nc\r\nd", html="<p>\r</p>"))
    assert body_parts(message) == ["a\nb\nc\nd", "<p>\n</p>"]


def test_the_same_inputs_give_the_same_bytes() -> None:
    assert build() == build()
    assert build() != build(message_id="another@funnel.example.com")


@given(name=untrusted, subject=untrusted)
@example(name="\r\nBcc: x@example.org", subject="=?utf-8?q?A=0ABcc:_x@example.org?=")
@example(name="a" * 61 + " b", subject="b" * 61)
@example(name=" ", subject="\x00")
@example(name="0 \xa0", subject="\xa0 x \u3000")
def test_any_name_and_subject_give_exactly_the_expected_headers(name: str, subject: str) -> None:
    data = build(to_name=name, subject=subject)
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    compat = parse_compat32(data)
    assert list(compat.keys()) == BASE_HEADERS
    assert rfc2047_display_name(compat, "ann@example.com") == sanitized(name)
    message = parse(data)
    assert list(message.keys()) == BASE_HEADERS
    (mailbox,) = message["To"].addresses
    assert mailbox.addr_spec == "ann@example.com"
    # gh-128110 (see rfc2047_display_name): the modern parser may add spaces between words.
    assert "".join(mailbox.display_name.split()) == "".join(sanitized(name).split())
    assert str(message["Subject"]) == sanitized(subject)
    assert not message["To"].defects and not message["Subject"].defects


# Lines that meet every rule of b2a_qp: long ones (soft breaks), '=' and non-ASCII (escaped),
# a space or tab before the line's end, a lone '.', a 'From ' start (also after a soft break),
# CR and CRLF line ends, a lone surrogate (written '?').
_QP_PIECES = ["a", " ", "\t", ".", "=", "é", "\u2014", "\n", "\r", "\r\n", "From ", "x" * 70, "x" * 72,
              "\ud800", "🎉"]
_QP_TEXT = st.lists(st.sampled_from(_QP_PIECES)).map("".join)


def plain_part(content_type: str, body: str) -> bytes:
    """What _part writes, the plain way: b2a_qp of the whole body, then "From " escaped and CRLF."""
    encoded = binascii.b2a_qp(re.sub(r"\r\n?", "\n", body).encode("utf-8", "replace"), istext=True)
    if encoded.startswith(b"From "):
        encoded = b"=46" + encoded[1:]
    encoded = encoded.replace(b"\nFrom ", b"\n=46rom ").replace(b"\n", b"\r\n")
    return (f"Content-Type: {content_type}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode("ascii") + encoded


@given(_QP_TEXT, _QP_TEXT)
@example("x" * 75 + " \nnext", "")
@example(".\n.", ". \n")
@example("From a", "From b ")
@example("x" * 73 + "From x", "x" * 72 + "\r\nFrom \r")
@example("a =\r\n.\r", "\ud800é ")
def test_a_part_written_line_by_line_is_the_whole_body_encoded(first: str, second: str) -> None:
    body = first + "\n" + second
    for _ in range(2):  # encoded, then looked up
        assert _part("text/plain", body) == plain_part("text/plain", body)


@given(st.lists(_QP_TEXT, min_size=1, max_size=6), st.lists(_QP_TEXT, min_size=1, max_size=4), st.randoms())
@example(["a\nb", "c\nd"], ["x"], None)
@example(["From a\n", " \nFrom "], ["From "], None)
@example(["x" * 73, "\n"], ["x" * 5 + " "], None)
@example(["", "", ""], ["a\nb", "\n"], None)
@example(["a\r", "b"], ["c"], None)
@example(["a\n", "b"], ["c\r\nd"], None)
def test_a_part_encoded_from_its_shape_is_the_body_encoded(pieces: list[str], values: list[str],
                                                           rng: object) -> None:
    """The fixed lines written once, the lines with values joined and encoded: the body's own bytes."""
    import random

    pick = rng if isinstance(rng, random.Random) else random.Random(0)
    slots = [pick.randrange(len(values)) for _ in pieces[1:]]
    body = pieces[0] + "".join(values[slot] + piece for slot, piece in zip(slots, pieces[1:], strict=True))
    shape = BodyShape(pieces, slots)
    for _ in range(2):  # the chunks encoded, then looked up
        assert _part("text/html", body, (shape, values)) == plain_part("text/html", body)


@given(st.lists(_QP_TEXT, min_size=1, max_size=6), st.lists(_QP_TEXT, min_size=1, max_size=4),
       st.randoms(), _QP_TEXT, st.integers(min_value=0))
@example(["<p>", "</p>\n</body>"], ["a\nb"], None, "<img>\n", 10)
def test_a_text_inserted_into_a_shape_is_encoded_as_the_body_with_it(
    pieces: list[str], values: list[str], rng: object, text: str, at: int
) -> None:
    """A shape with a text put in (the open pixel) encodes the new body; None when `at` is inside a value."""
    import random

    pick = rng if isinstance(rng, random.Random) else random.Random(0)
    slots = [pick.randrange(len(values)) for _ in pieces[1:]]
    body = pieces[0] + "".join(values[slot] + piece for slot, piece in zip(slots, pieces[1:], strict=True))
    at %= len(body) + 1
    shaped = BodyShape(pieces, slots).inserted(values, at, text)
    new_body = body[:at] + text + body[at:]
    if shaped is None:  # only when `at` falls strictly inside a value
        starts = [len(pieces[0])]
        for slot, piece in zip(slots, pieces[1:], strict=True):
            starts.append(starts[-1] + len(values[slot]) + len(piece))
        ends = [start - len(piece) for start, piece in zip(starts[1:], pieces[1:], strict=True)]
        assert any(start < at < end for start, end in zip(starts, ends, strict=False))
        return
    assert _part("text/html", new_body, shaped) == plain_part("text/html", new_body)
    assert shaped[0].inserted(shaped[1], at, text) is None  # one text put in only


_URL_PIECES = ["https://", "http://", "http:/", "HTTPS://", "s", "a", "/", "?q=1&r", "<", ">",
               " ", "\t", "\x00", "\x7f", "\x85", "é", "~", "!", ";", "=", "x" * 300]
_URL_TEXT = st.lists(st.sampled_from(_URL_PIECES), max_size=12).map("".join)


@given(_URL_TEXT)
@example("https://")
@example("http://" + "x" * 900)
@example("https://" + "x" * 901)
@example("https://a<b")
@example("http://a>b")
@example("https://a b")
@example("http://a\x7fb")
@example("https://é")
@example("https://a\tb")
def test_the_url_check_is_the_regex(value: str) -> None:
    assert _is_url(value) == bool(_URL.fullmatch(value))


@given(st.lists(st.sampled_from(["a", " ", "  ", "\t", "\n", "\r", "\x00", "\x1f", "\x7f", "\x85", "\xa0",
                                 "\u2028", "\u3000", "é", "\ud800", "=?", "Z"])).map("".join))
@example("a  b")
@example(" Ann  Lee ")
@example("Ann\x7fLee")
@example("Ann\x1fLee")
@example("\x1c Ann")
def test_cleaning_printable_ascii_text_is_the_substitution(value: str) -> None:
    plain = _UNSAFE_RUN.sub(" ", value).strip()
    plain = _SURROGATE.sub("\ufffd", plain) if not plain.isascii() else plain
    assert _clean(value) == plain
