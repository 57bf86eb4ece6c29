"""Write one email's bytes directly: headers that cannot be injected, a text and an HTML part.

Why not the `email` package's generator: its modern API takes about 3.3 ms for a message
with a 5 KB HTML part here, this module 0.13 ms; and Python 3.11.7 lacks the CVE-2024-6923
fix (the generator did not quote newlines in header values, so a value could start a header
of its own). So the few headers an email needs are written here, under rules that can be
checked line by line:

- untrusted text (subject, recipient name) loses its controls and line breaks first;
- a name or subject that is not plain ASCII words is written only as RFC 2047 "B"
  encoded-words, whose alphabet [A-Za-z0-9+/=] holds no space, quote, special or newline,
  so no parser can read anything but the text back out of them;
- addresses, Message-IDs, URLs and extra header names are checked, never repaired.

Internationalized addresses (SMTPUTF8, RFC 6531) are not supported and are refused.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import format_datetime, parseaddr

_LINE = 76  # RFC 2047 §2: a line holding an encoded-word is at most 76 characters
_RAW_LINE = 78  # RFC 5322 §2.1.1: lines SHOULD be at most 78 characters
_RAW_WORD = 60  # a longer word of a raw header could not fold under 78; encode it instead
_PREFIX = "=?utf-8?B?"
_SUFFIX = "?="

# C0 controls (NUL, TAB, CR, LF, ...), space, DEL, C1 controls (with U+0085 NEL) and the
# Unicode line and paragraph separators: each run becomes one space.
_UNSAFE_RUN = re.compile("[\x00-\x20\x7f-\x9f\u2028\u2029]+")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # cannot be encoded as UTF-8
_PHRASE_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')  # RFC 5322 §3.2.3 specials
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")  # atext and dots
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")  # RFC 5322 §3.6.8: printable ASCII except ':'
_URL = re.compile(r"https?://[!-;=?-~]{1,900}")  # printable ASCII without '<', '>' and space
_NEWLINE = re.compile(r"\r\n?")

_OWN_HEADERS = frozenset({
    "date", "from", "sender", "to", "cc", "bcc", "subject", "message-id", "mime-version",
    "reply-to", "list-unsubscribe", "list-unsubscribe-post", "content-type",
    "content-transfer-encoding", "return-path",
})


def new_message_id(domain: str) -> str:
    """A fresh Message-ID without angle brackets: 128 random bits, then '@' and `domain`."""
    if not _is_domain(domain):
        raise ValueError(f"{domain!r} cannot end a Message-ID: use a plain ASCII host name")
    return f"{secrets.token_hex(16)}@{domain}"


@functools.lru_cache(maxsize=1024)  # an email's two domains (sender's, recipient's) recur: ~1 µs each
def _is_domain(domain: str) -> bool:
    """Whether `domain` is a plain ASCII host name (_DOMAIN), remembered for the domains seen most."""
    return _DOMAIN.fullmatch(domain) is not None


def check_address(address: str, role: str = "recipient") -> str:
    """`address` when it is a plain ASCII `local@domain` safe on an SMTP line; ValueError otherwise."""
    if not address.isascii():
        # SMTPUTF8 (RFC 6531) is not supported; and converting a Unicode domain to
        # punycode is not safe either: IDNA 2003 and 2008 map some names (ß) differently.
        raise ValueError(f"{role} address {address!r} is not ASCII; internationalized "
                         "addresses (SMTPUTF8) are not supported")
    if _UNSAFE_RUN.search(address):
        raise ValueError(f"{role} address {address!r} holds a space, line break or control character")
    local, at, domain = address.rpartition("@")
    if not at or "@" in local:
        raise ValueError(f"{role} address {address!r} must hold exactly one '@'")
    if not _LOCAL_PART.fullmatch(local):
        raise ValueError(f"{role} address {address!r}: the part before '@' may hold only letters, "
                         "digits, dots and !#$%&'*+/=?^_`{|}~- (at most 64)")
    if not _is_domain(domain):
        raise ValueError(f"{role} address {address!r}: the part after '@' is not a host name")
    return address


def build_message(*, sender: str, to_name: str, to_address: str, subject: str, html: str, text: str,
                  message_id: str, date: datetime, reply_to: str | None = None,
                  list_unsubscribe: str | None = None, headers: Mapping[str, str] | None = None,
                  html_shape: Shaped | None = None, text_shape: Shaped | None = None) -> bytes:
    """The RFC 5322 bytes of one email (CRLF lines): safe headers, text/plain then text/html.

    `text_shape` and `html_shape`, when given, are (BodyShape, values) whose fill is exactly
    `text` and `html` (the caller's promise): the part is then encoded from its step's lines
    written once (BodyShape.encode), the same bytes as encoding the text itself.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("the Date of a message needs a time zone: pass an aware datetime")
    lines = [
        "Date: " + _date(date.replace(microsecond=0), date.utcoffset()),
        _configured_header("From", sender, "sender"),
        _mailbox_header("To", _clean(to_name), check_address(to_address)),
        _unstructured_header("Subject", _clean(subject)),
        f"Message-ID: <{_check_message_id(message_id)}>",
        "MIME-Version: 1.0",
    ]
    if reply_to is not None:
        lines.append(_configured_header("Reply-To", reply_to, "reply_to"))
    if list_unsubscribe is not None:
        if not _is_url(list_unsubscribe):
            raise ValueError(f"list_unsubscribe {list_unsubscribe!r} must be an https:// (or http://) URL "
                             "of printable ASCII (percent-encode the rest), at most 900 characters")
        lines.append(f"List-Unsubscribe: <{list_unsubscribe}>")
        if list_unsubscribe.startswith("https://"):
            # RFC 8058 one-click, which Gmail and Yahoo have required of bulk senders (5,000+
            # messages a day) since 2024; §3.1 allows it for an HTTPS URI only, so a plain
            # http:// one (a development base_url) keeps the RFC 2369 header alone.
            lines.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    for name, value in (headers or {}).items():
        lines.append(_extra_header(name, value))
    # The boundary starts with "=_", which quoted-printable output can never contain ('='
    # is always followed by two hex digits or a line break), so it needs no search of the
    # bodies; derived from the Message-ID so that the same inputs give the same bytes.
    boundary = "=_" + hashlib.sha256(message_id.encode()).hexdigest()[:24]
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    delimiter = b"--" + boundary.encode("ascii")
    return b"".join((
        head,
        delimiter, b"\r\n", _part("text/plain", text, text_shape),
        b"\r\n", delimiter, b"\r\n", _part("text/html", html, html_shape),
        b"\r\n", delimiter, b"--\r\n",
    ))


def _is_url(value: str) -> bool:
    """`_URL.fullmatch(value)`, checked with string methods: ~0.3 µs instead of ~1 µs on a signed link.

    After "https://" or "http://", 1 to 900 characters, each printable ASCII but space,
    '<' and '>' (the regex's [!-;=?-~]): isprintable() on ASCII text allows 0x20 to 0x7E.
    """
    if value.startswith("https://"):
        rest = value[8:]
    elif value.startswith("http://"):
        rest = value[7:]
    else:
        return False
    return (0 < len(rest) <= 900 and rest.isascii() and rest.isprintable()
            and " " not in rest and "<" not in rest and ">" not in rest)


def _clean(value: str) -> str:
    """Untrusted header text on one line: controls and line breaks become single spaces, ends trimmed."""
    if value.isascii() and value.isprintable() and "  " not in value:
        # No control, no run of spaces: the substitution below would change nothing (~0.4 µs).
        return value.strip()
    value = _UNSAFE_RUN.sub(" ", value).strip()  # strip(): no-break spaces at the ends too
    return _SURROGATE.sub("\ufffd", value) if not value.isascii() else value


@functools.lru_cache(maxsize=256)  # a funnel's sender is parsed once, not per message (15 µs)
def _parse_mailbox(mailbox: str, role: str) -> tuple[str, str]:
    """(display name, address) of a configured `Name <address>` or bare address; ValueError if odd."""
    if _CONTROL.search(mailbox):
        raise ValueError(f"{role} {mailbox!r} holds a line break or control character")
    name, address = parseaddr(mailbox)
    check_address(address, role)
    stripped = mailbox.strip()
    # parseaddr silently keeps the first of two addresses ("a@x, b@y"); insist on one.
    if stripped != address and not stripped.endswith(f"<{address}>"):
        raise ValueError(f"{role} {mailbox!r} must be 'Name <address>' or a bare address")
    return _clean(name), address


@functools.lru_cache(maxsize=256)  # a funnel's From and Reply-To: written once, not per message
def _configured_header(name: str, mailbox: str, role: str) -> str:
    """The header line of a configured mailbox (the sender, the reply-to); ValueError if it is odd."""
    return _mailbox_header(name, *_parse_mailbox(mailbox, role))


@functools.lru_cache(maxsize=64)  # the emails of one second share their Date (~3 µs each)
def _date(date: datetime, offset: timedelta | None) -> str:
    # `offset` is in the key because equal datetimes in two zones are one key, yet
    # each writes its own zone ("+0000", "+0100").
    return format_datetime(date)


def _check_message_id(message_id: str) -> str:
    """`message_id` (no angle brackets) when it is `left@domain` in plain ASCII; ValueError otherwise."""
    left, at, domain = message_id.rpartition("@")
    if not (at and _LOCAL_PART.fullmatch(left) and _is_domain(domain)):
        raise ValueError(f"Message-ID {message_id!r} must be 'left@domain' in ASCII without <>; "
                         "use new_message_id()")
    return message_id


def _mailbox_header(name: str, display: str, address: str) -> str:
    """`Name: display <address>`, the display name raw when it is plain ASCII atoms, else encoded."""
    if not display:
        return f"{name}: {address}"
    if _raw_ok(display) and not _PHRASE_SPECIALS.search(display):
        return _fold(name, [*display.split(" "), f"<{address}>"], _RAW_LINE)
    return _fold(name, [*_encoded_words(display, _LINE - len(name) - 2), f"<{address}>"], _LINE)


def _unstructured_header(name: str, value: str) -> str:
    """`Name: value` for free text: raw when plain ASCII words, else encoded-words."""
    if _raw_ok(value):
        return _fold(name, value.split(" ") if value else [], _RAW_LINE)
    return _fold(name, _encoded_words(value, _LINE - len(name) - 2), _LINE)


def _raw_ok(value: str) -> bool:
    """Whether cleaned text can be written as it is: ASCII, no encoded-word look-alike, short words."""
    return value.isascii() and "=?" not in value and (
        len(value) <= _RAW_WORD or all(len(w) <= _RAW_WORD for w in value.split(" ")))


def _encoded_words(value: str, first_room: int) -> list[str]:
    """`value` as UTF-8 "B" encoded-words: each at most 75 chars, fitting its line, whole characters.

    B rather than Q: its alphabet is safe inside a display name with no exceptions to get
    wrong (RFC 2047 §5(3) narrows Q there), and it grows text by a fixed 4/3.
    """
    data = value.encode("utf-8")
    words: list[str] = []
    room, start = first_room, 0
    while start < len(data):
        end = min(len(data), start + (room - len(_PREFIX) - len(_SUFFIX)) // 4 * 3)
        while end < len(data) and data[end] & 0xC0 == 0x80:  # never cut a UTF-8 sequence
            end -= 1
        words.append(_PREFIX + base64.b64encode(data[start:end]).decode("ascii") + _SUFFIX)
        room, start = _LINE - 1, end  # later words start a line of their own after one space
    return words


def _fold(name: str, words: list[str], limit: int) -> str:
    """`Name: w1 w2 ...`, each line filled up to `limit`; every break is CRLF before a space."""
    joined = " ".join(words)
    if words and len(name) + 2 + len(joined) <= limit:  # one line: most To and Subject headers
        return f"{name}: {joined}"
    lines, line = [], name + ":"
    for word in words:
        if len(line) + 1 + len(word) > limit and line != name + ":":
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines)


def _extra_header(name: str, value: str) -> str:
    """A caller's fixed header, checked: a field name, not one of ours, a one-line ASCII value."""
    if not _FIELD_NAME.fullmatch(name):
        raise ValueError(f"header name {name!r} must be printable ASCII without ':' or spaces")
    if name.lower() in _OWN_HEADERS:
        raise ValueError(f"header {name!r} is written by build_message; pass it as an argument")
    if not (value.isascii() and value.isprintable() and len(value) <= 900):
        raise ValueError(f"header {name}: value {value!r} must be printable ASCII on one line, "
                         "at most 900 characters")
    return f"{name}: {value}"


# Quoted-printable lines already written, by their text, as they go on the wire (CRLF, "From "
# escaped): an email's lines are mostly its step's, the same for every subscriber, so most
# are looked up rather than encoded (b2a_qp costs ~11 ns a byte: 60 µs for the two parts of
# a 5 KB email). Emptied when full, so that lines of one email only (its signed links)
# cannot make it grow.
_QP_LINES: dict[str, bytes] = {}
_QP_LINES_MAX = 4096


def _quoted_printable(body: str) -> bytes:
    """The wire form of `body` (no CR in it) as quoted-printable UTF-8, written line by line.

    That is binascii.b2a_qp(body as UTF-8, istext=True), then each line starting "From "
    (mangled to ">From " by mbox-style relays) written "=46rom " ('F' escaped), then CRLF
    line ends. Without a CR, b2a_qp carries nothing from one line to the next (its line
    length starts again at each LF; a space before an LF is judged on that line), so the
    encoding of `line + LF` is the same wherever the line stands; and a line's "From " and
    LFs are its own. So each line's wire form is kept and looked up; the last line, with
    no LF after it, is encoded on its own. The text is split, not its UTF-8: a body with
    one curly quote is a 2-byte-wide str, costly to encode whole (~11 instructions a
    character), while most of its lines split off as 1-byte-wide ASCII.
    """
    lines = body.split("\n")
    last = lines.pop()
    known = _QP_LINES
    out = list(map(known.get, lines))  # the look-ups in C: a few lines an email are new
    if None in out:
        for i, encoded in enumerate(out):
            if encoded is None:
                line = lines[i]
                data = (line + "\n").encode("utf-8", "replace")
                encoded = out[i] = _wire(binascii.b2a_qp(data, istext=True))
                if len(known) >= _QP_LINES_MAX:
                    known.clear()
                known[line] = encoded
    out.append(_wire(binascii.b2a_qp(last.encode("utf-8", "replace"), istext=True)))
    return b"".join(out)  # type: ignore[arg-type]  # every None was filled in


def _wire(encoded: bytes) -> bytes:
    """Quoted-printable lines with "From " at a line start escaped and CRLF line ends."""
    # (bytes.replace, not a regex: 1 µs instead of 38 µs on 5 KB.)
    if encoded.startswith(b"From "):
        encoded = b"=46" + encoded[1:]
    return encoded.replace(b"\nFrom ", b"\n=46rom ").replace(b"\n", b"\r\n")


def _part(content_type: str, body: str, shape: Shaped | None = None) -> bytes:
    """One UTF-8 body part, quoted-printable: lines at most 76, bare CR or LF become CRLF.

    Quoted-printable rather than base64: HTML and text are mostly ASCII, so QP is about 1.05x
    the size instead of 1.37x, stays readable, and is what the large senders use; its
    encoder is C (binascii) so a 5 KB body costs microseconds.
    """
    encoded = shape[0].encode(shape[1]) if shape is not None else None
    if encoded is None:
        if "\r" in body:
            body = _NEWLINE.sub("\n", body)
        encoded = _quoted_printable(body)
    return (f"Content-Type: {content_type}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode("ascii") + encoded


class BodyShape:
    """The bodies of one step, `pieces[0] + values[slots[0]] + pieces[1] + ...`, encoded from fixed lines.

    Most of a body's lines lie inside one fixed piece: the same for every subscriber of the
    step. `_quoted_printable` splits each body into lines and looks every one up (~100,000
    instructions for an email's two parts, most of it splitting a 2-byte-wide str and
    hashing the new lines). Here the lines that hold no value are encoded once, when the
    shape is made; per email, only the lines that hold one (a piece's last line, the value,
    the next piece's first line) are joined and encoded. The bytes are the same: without
    a CR, the encoding of each line (with its LF) does not depend on the others
    (see _quoted_printable), so encoding the body chunk by chunk, each chunk ending at a
    line end, writes what encoding it whole writes.
    """

    __slots__ = ("_inserted", "_plan", "pieces", "slots")

    def __init__(self, pieces: list[str], slots: list[int]) -> None:
        self.pieces, self.slots = pieces, slots
        self._inserted: dict[tuple[int, int], BodyShape] = {}
        # Lines with a value, as pieces and slots (text, slot, text, ...), each chunk but the
        # last ending in LF; between them, the fixed lines' bytes.
        plan: list[bytes | tuple[list[str], list[int]]] = []
        texts: list[str] = []
        chunk_slots: list[int] = []

        def end_chunk() -> None:
            if chunk_slots:
                plan.append((texts, chunk_slots))
            else:  # no value in these lines after all: written once too
                self._add(plan, _quoted_printable("".join(texts)))

        for i, piece in enumerate(pieces):
            if i:
                chunk_slots.append(slots[i - 1])
            first = piece.find("\n")
            if first < 0:
                texts.append(piece)
                continue
            last = piece.rfind("\n")
            texts.append(piece[:first + 1])
            end_chunk()
            if last > first:
                self._add(plan, _quoted_printable(piece[first + 1:last + 1]))
            texts, chunk_slots = [piece[last + 1:]], []
        end_chunk()
        # A CR anywhere is mended to LF over the whole body first: not by pieces.
        self._plan = None if any("\r" in piece for piece in pieces) else plan

    @staticmethod
    def _add(plan: list[bytes | tuple[list[str], list[int]]], encoded: bytes) -> None:
        if plan and isinstance(plan[-1], bytes):
            plan[-1] += encoded
        else:
            plan.append(encoded)

    def encode(self, values: list[str]) -> bytes | None:
        """`_quoted_printable` of the body with these values; None when it must be encoded whole (a CR)."""
        if self._plan is None:
            return None
        out: list[bytes] = []
        for item in self._plan:
            if isinstance(item, bytes):
                out.append(item)
                continue
            texts, slots = item
            parts = [texts[0]]
            for slot, text in zip(slots, texts[1:], strict=True):
                parts.append(values[slot])
                parts.append(text)
            chunk = "".join(parts)
            if "\r" in chunk:
                return None
            # Lines with a subscriber's value are new: encoded as they are, not looked up.
            out.append(_wire(binascii.b2a_qp(chunk.encode("utf-8", "replace"), istext=True)))
        return b"".join(out)

    def inserted(self, values: list[str], at: int, text: str) -> Shaped | None:
        """The shape and values of the body with `text` inserted at index `at`; None if `at` is in a value.

        An open pixel goes before </body>, which lies in a fixed piece: the body is then still
        fixed pieces and values, one more of each.
        """
        pieces, slots = self.pieces, self.slots
        if -1 in slots:  # the slot of an inserted text is taken already
            return None
        start = 0
        for i, piece in enumerate(pieces):
            if i:
                start += len(values[slots[i - 1]])
                if at < start:
                    return None  # inside the value before this piece
            end = start + len(piece)
            if at <= end:
                key = (i, at - start)
                shape = self._inserted.get(key)
                if shape is None:
                    if len(self._inserted) >= 8:
                        self._inserted.clear()
                    cut = at - start
                    shape = self._inserted[key] = BodyShape(
                        [*pieces[:i], piece[:cut], piece[cut:], *pieces[i + 1:]],
                        [*slots[:i], -1, *slots[i:]])
                return shape, [*values, text]
            start = end
        return None


Shaped = tuple[BodyShape, list[str]]
