"""Signed tokens for the links in emails: HMAC-SHA256, no guessable ids, an issue time.

A token is `<payload>.<signature>`, both base64url: the payload is a JSON list of the
purpose, the issue time (Unix seconds) and the purpose's values. The signature covers
all of it, so a token cannot be moved to another purpose or changed in any byte.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from json.encoder import encode_basestring_ascii
from typing import Any

# RFC 2104: a 128-bit truncation of HMAC-SHA256 still leaves forgery at 2**-128.
SIGNATURE_BYTES = 16
MAX_TOKEN_CHARS = 2048


# base64.urlsafe_b64encode, without its two Python-level calls (four _b64 an email).
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=16)
def _keyed(secret: str) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hashes for `secret`, with the padded key already fed in (RFC 2104).

    Copying these and hashing only the payload is the same HMAC: OpenSSL 3's one-shot
    hmac.digest looks the algorithm up and keys it anew at every call (3.9 µs here, against
    1.3 µs for the two copies; two tokens an email).
    """
    key = secret.encode("utf-8")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_INNER_PAD)), hashlib.sha256(key.translate(_OUTER_PAD))


_BLOCK = 64  # SHA-256's block size in bytes
_INNER_PAD = bytes(b ^ 0x36 for b in range(256))
_OUTER_PAD = bytes(b ^ 0x5C for b in range(256))


def _signature(secret: str, payload: str) -> str:
    inner, outer = _keyed(secret)
    inner, outer = inner.copy(), outer.copy()
    inner.update(payload.encode("ascii"))
    outer.update(inner.digest())
    return _b64(outer.digest()[:SIGNATURE_BYTES])


def _json(purpose: str, issued: int, values: list[str]) -> str:
    """`json.dumps([purpose, issued, *values], separators=(",", ":"))`, written directly.

    The encoder writes a list of strings and an int so: each string through
    encode_basestring_ascii (the default ensure_ascii), the int as repr() writes it,
    joined by ",". JSONEncoder.encode builds its C encoder anew at every call
    (~1.3 µs, against ~0.4 µs here; two tokens an email).
    """
    return "[" + ",".join([encode_basestring_ascii(purpose), str(issued),
                           *map(encode_basestring_ascii, values)]) + "]"


def sign(secret: str, purpose: str, values: list[str], issued: datetime) -> str:
    """A token for `purpose` carrying `values`, issued at `issued`."""
    body = _json(purpose, int(issued.timestamp()), values)
    payload = _b64(body.encode("utf-8"))
    return f"{payload}.{_signature(secret, payload)}"


def verify(secret: str, purpose: str, token: str, now: datetime, max_age: timedelta) -> list[str] | None:
    """The values of a valid, unexpired token for `purpose`; None for anything else."""
    # Only we make tokens, and ours are ASCII; compare_digest refuses non-ASCII text anyway.
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1 or not token.isascii():
        return None
    payload, signature = token.split(".")
    try:
        expected = _signature(secret, payload)
    except UnicodeEncodeError:
        return None
    if not hmac.compare_digest(expected, signature):
        return None
    try:
        body = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError):  # pragma: no cover - only we sign payloads
        return None
    if not (
        isinstance(body, list)
        and len(body) >= 2
        and body[0] == purpose
        and isinstance(body[1], int)
        and all(isinstance(v, str) for v in body[2:])
    ):
        return None
    age = now.timestamp() - body[1]
    if age > max_age.total_seconds() or age < -300:  # five minutes of clock skew between daemons
        return None
    return list(body[2:])
