"""Reading an .eml file for showing, whatever bytes it holds: never an exception, always text.

The outbox folder holds what the daemon wrote, but also whatever else lands there (a
message whose recipient came from an RFC 2047 word that decodes to CR LF, a file copied
in by hand, a broken disk). The standard library's `policy.default` parses address and
Message-ID headers into objects and raises on many of them (ValueError for CR LF in an
address, IndexError for an empty Message-ID), so this reads with `compat32`, which keeps
headers as text, decodes encoded words itself, and shows control characters as visible
escapes. Each header value is cut at MAX_VALUE characters and at most MAX_HEADERS headers
are shown.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message

MAX_HEADERS = 200
MAX_VALUE = 2000  # characters of one header value shown (a Subject is tens)
MAX_PARTS = 500  # MIME parts looked at for the HTML and text bodies
_FOLD = re.compile(r"\r?\n(?=[ \t])")  # RFC 5322 unfolding: a line break before white space
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")
_HEADER_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


@dataclass(frozen=True)
class Shown:
    """A message split for showing: its headers as text, and its HTML and text parts."""

    headers: str
    html: str | None
    text: str | None


def parse(data: bytes) -> Message:
    """The message in `data`, headers kept as the bytes said (surrogate-escaped where not ASCII)."""
    return message_from_bytes(data, policy=policy.compat32)


def header_text(raw: object) -> str:
    """A header value as one line a person reads: encoded words decoded, controls made visible, cut."""
    text = _FOLD.sub("", raw if isinstance(raw, str) else str(raw))
    if "=?" in text:  # RFC 2047 encoded words
        with contextlib.suppress(Exception):  # any broken word (unknown charset, bad base64): show it raw
            text = str(make_header(decode_header(text)))
    text = _printable(text)
    shown = _HEADER_CONTROL.sub(_visible, text.strip())
    if len(shown) > MAX_VALUE:
        shown = f"{shown[:MAX_VALUE]}… ({len(shown) - MAX_VALUE:,} more characters)"
    return shown


def summary(data: bytes) -> tuple[str, str]:
    """The Subject and To of a message's head, as text to show."""
    message = parse(data)
    return header_text(message.get("Subject", "")), header_text(message.get("To", ""))


def shown(data: bytes) -> Shown:
    """The message in `data`, split for showing."""
    try:
        message = parse(data)
    except Exception:
        return Shown(_CONTROL.sub(_visible, data[:64 * 1024].decode("utf-8", "replace")), None, None)
    items = message.items()
    lines = [f"{header_text(key)}: {header_text(value)}" for key, value in items[:MAX_HEADERS]]
    if len(items) > MAX_HEADERS:
        lines.append(f"… and {len(items) - MAX_HEADERS:,} more headers")
    try:
        html, text = _bodies(message)
    except Exception:  # a part the parser cannot walk: the headers still show
        html, text = None, "(this message's body cannot be read)"
    return Shown("\n".join(lines), html, text)


def _bodies(message: Message) -> tuple[str | None, str | None]:
    """The first HTML part and the first plain text part that are not attachments."""
    found: dict[str, str] = {}
    for count, part in enumerate(message.walk()):
        if count >= MAX_PARTS or len(found) == 2:
            break
        kind = part.get_content_type()
        if kind not in ("text/html", "text/plain") or part.is_multipart():
            continue
        if str(part.get("Content-Disposition", "")).strip().lower().startswith("attachment"):
            continue
        key = "html" if kind == "text/html" else "plain"
        if key not in found:
            found[key] = _printable(_decoded(part))
    html, text = found.get("html"), found.get("plain")
    return html, _CONTROL.sub(_visible, text.replace("\r\n", "\n")) if text is not None else None


def _decoded(part: Message) -> str:
    """A part's text in its declared charset; UTF-8 with replacements when that is unknown or wrong."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        payload = str(part.get_payload()).encode("utf-8", "surrogateescape")
    charset = part.get_content_charset("utf-8") or "utf-8"
    try:
        # Only text encodings: 'rot13', 'base64' and friends are codecs too, but not of text.
        if not codecs.lookup(charset)._is_text_encoding:
            charset = "utf-8"
        return payload.decode(charset, "replace")
    except (LookupError, ValueError, TypeError):  # an unknown charset, or one that cannot decode
        return payload.decode("utf-8", "replace")


def _printable(text: str) -> str:
    """Text without surrogates: 8-bit bytes of a header read as UTF-8, anything else replaced."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate an encoded word decoded to (utf-16, say)
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _visible(found: re.Match[str]) -> str:
    """A control character as a person can see it: CR as \\r, NUL as \\x00."""
    char = found.group(0)
    return {"\r": "\\r", "\n": "\\n", "\t": " "}.get(char, f"\\x{ord(char):02x}" if ord(char) < 0x100
                                                       else f"\\u{ord(char):04x}")
