"""DKIM keys: the `dkim_keys` entries, reading a private key once, making one, and its DNS record.

A key is read and checked when the daemon starts, never per email: reading a PEM file
costs about 160 µs, more than an Ed25519 signature. Its type comes from the key itself
(an RSA or an Ed25519 private key), so an entry cannot name one type and hold the other.
RSA keys under 2048 bits are refused: RFC 8301 §3.2 says verifiers MUST NOT accept
keys under 1024 bits, and Gmail, Yahoo and Microsoft ask bulk senders for 2048.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

RSA_MIN_BITS = 2048
TXT_STRING_MAX = 255  # RFC 1035 §3.3: one character-string of a TXT record holds at most 255 bytes

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})+")
_SELECTOR = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")  # RFC 6376 §3.1: labels, dots between them
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_ENTRY_SPLIT = re.compile(r"[\n;,]")
ENTRY_EXAMPLE = "example.com mail2026 dkim/mail2026.example.com.pem"


class KeyType(StrEnum):
    """The two signing algorithms: rsa-sha256 (RFC 6376) and ed25519-sha256 (RFC 8463)."""

    RSA = "rsa"
    ED25519 = "ed25519"


@dataclass(frozen=True)
class KeyEntry:
    """One `dkim_keys` entry as written: the sending domain, the selector, and a file or the key."""

    domain: str
    selector: str
    source: str  # a file path, or the PEM itself ("-----BEGIN ...")

    @property
    def inline(self) -> bool:
        """Whether the key is written in the setting itself rather than in a file."""
        return self.source.startswith("-----BEGIN")

    @property
    def record_name(self) -> str:
        """The DNS name its public key is published at: SELECTOR._domainkey.DOMAIN."""
        return f"{self.selector}._domainkey.{self.domain}"


@dataclass(frozen=True)
class DkimKey:
    """A private key read and checked once, ready to sign for `domain` under `selector`."""

    domain: str
    selector: str
    type: KeyType
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @property
    def record_name(self) -> str:
        """Where its public key is published: SELECTOR._domainkey.DOMAIN."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def public(self) -> str:
        """The p= value: base64 of the DER public key (RSA) or of the raw 32 bytes (Ed25519)."""
        return public_value(self.private)

    @property
    def record(self) -> str:
        """The TXT value to publish: `v=DKIM1; k=TYPE; p=...`."""
        return f"v=DKIM1; k={self.type.value}; p={self.public}"


def parse_entries(text: str) -> list[KeyEntry]:
    """`DOMAIN SELECTOR KEY` entries separated by newlines, ';' or ','; ValueError says what to write.

    KEY is a path to a PEM file, or the PEM itself, on one line (as an environment variable
    holds it) or on its own lines (a TOML multi-line string). A domain may have one key of
    each type; that is checked when the keys are read (the type is the key's own). An error
    never repeats what it could not read: that may be a piece of a key.
    """
    entries: list[KeyEntry] = []
    seen: set[tuple[str, str]] = set()
    # A PEM block on lines of its own is one entry's KEY, not entries of its own.
    text = _PEM.sub(lambda block: " ".join(block.group(0).split()), text)
    parts = [p.strip() for p in _ENTRY_SPLIT.split(text)]
    for number, part in enumerate((p for p in parts if p and not p.startswith("#")), 1):
        fields = part.split(None, 2)
        if len(fields) < 3:
            raise ValueError(
                f"entry {number} is not DOMAIN SELECTOR KEY (it has {len(fields)} word(s)); write "
                f"for example '{ENTRY_EXAMPLE}' (KEY: the private key's file, or the key itself)"
            )
        domain, selector, source = fields[0].lower().rstrip("."), fields[1], fields[2].strip()
        if not _DOMAIN.fullmatch(domain):
            raise ValueError(
                f"entry {number}: '{fields[0]}' is not a domain name; write the domain "
                f"of the sender's address (From), e.g. '{ENTRY_EXAMPLE}'"
            )
        if not _SELECTOR.fullmatch(selector) or "_" in selector:
            raise ValueError(
                f"entry {number}: selector '{selector}' may hold only letters, digits, "
                "'-' and '.', e.g. mail2026"
            )
        if (domain, selector.lower()) in seen:
            raise ValueError(f"'{domain} {selector}' is given twice; each selector names one key")
        seen.add((domain, selector.lower()))
        entries.append(KeyEntry(domain, selector, source))
    return entries


def read_key(entry: KeyEntry, data: bytes) -> DkimKey:
    """The key of `entry` from the bytes of its file (or its inline PEM); ValueError says what is wrong."""
    private = load_private(data)
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < RSA_MIN_BITS:
            raise ValueError(
                f"the RSA key has {private.key_size} bits; receivers want at least {RSA_MIN_BITS}: "
                f"make a new one with `funnel dkim keygen {entry.domain} --type rsa` and publish it"
            )
        return DkimKey(entry.domain, entry.selector, KeyType.RSA, private)
    return DkimKey(entry.domain, entry.selector, KeyType.ED25519, private)


def load_private(data: bytes) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    """An unencrypted RSA or Ed25519 private key from PEM (PKCS#1 or PKCS#8, newlines optional)
    or from the bare base64 Ed25519 seed that dkimpy's dknewkey writes; ValueError otherwise."""
    text = data.decode("ascii", "replace").strip()
    match = _PEM.search(text)
    if match is None:
        seed = _base64(text)
        if seed is not None and len(seed) == 32:
            return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        raise ValueError(
            "this is not a private key in PEM form (-----BEGIN PRIVATE KEY-----); "
            "make one with `funnel dkim keygen DOMAIN`"
        )
    # A key written on one line (an environment variable) lost its line breaks: rebuild them.
    body = re.sub(r"\s|\\n", "", match.group(2))
    pem = f"-----BEGIN {match.group(1)}-----\n{body}\n-----END {match.group(1)}-----\n"
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except TypeError:
        raise ValueError(
            "the key is encrypted with a password; write it unencrypted "
            "(openssl pkey -in KEY -out KEY.pem) and make the file readable by the "
            "daemon's user only (chmod 600)"
        ) from None
    except ValueError as error:
        raise ValueError(
            f"the PEM block is not a readable private key ({error}); make one with "
            "`funnel dkim keygen DOMAIN`"
        ) from None
    except Exception as error:  # cryptography raises UnsupportedAlgorithm and others
        raise ValueError(f"the key cannot be read ({error}); DKIM keys are RSA or Ed25519") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise ValueError(
            f"the key is a {type(key).__name__.removeprefix('_')}; DKIM signs with an RSA "
            "or an Ed25519 key: make one with `funnel dkim keygen DOMAIN`"
        )
    return key


def _base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return None


def generate(key_type: KeyType) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    """A new private key: RSA-2048 (e = 65537) or Ed25519."""
    if key_type is KeyType.RSA:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_MIN_BITS)
    return ed25519.Ed25519PrivateKey.generate()


def private_pem(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM, which OpenSSL, dkimpy and this module all read."""
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_value(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    """The p= tag of the key's DNS record (RFC 6376 §3.6.1; RFC 8463 §4.2 for Ed25519)."""
    if isinstance(private, rsa.RSAPrivateKey):
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        der = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(der).decode("ascii")


def txt_strings(value: str) -> list[str]:
    """`value` cut into TXT character-strings of at most 255 characters, as DNS needs for RSA keys."""
    return [value[i : i + TXT_STRING_MAX] for i in range(0, len(value), TXT_STRING_MAX)] or [""]


def parse_tags(record: str) -> dict[str, str]:
    """A DKIM or DMARC record's `tag=value; ...` as a dict (names lower-cased, spaces removed from values)."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            tags.setdefault(name.strip().lower(), re.sub(r"\s", "", value))
    return tags
