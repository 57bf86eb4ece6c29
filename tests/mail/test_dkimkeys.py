"""DKIM keys: the dkim_keys entries, the key forms read, and the clear errors for keys that cannot sign."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from engine.config import ConfigError, Settings, dkim_keys, load_settings
from engine.mail.dkimkeys import KeyEntry, KeyType, parse_entries, read_key, txt_strings

ENTRY = KeyEntry("example.com", "s1", "-")


def test_entries_from_lines_semicolons_and_a_toml_list() -> None:
    assert parse_entries("example.com s1 dkim/a.pem\n# a comment\nExample.com. s2 dkim/b c.pem; ") == [
        KeyEntry("example.com", "s1", "dkim/a.pem"),
        KeyEntry("example.com", "s2", "dkim/b c.pem"),
    ]
    settings = Settings.model_validate({"dkim_keys": ["example.com s1 a.pem", "example.com s2 b.pem"]})
    assert len(parse_entries(settings.dkim_keys)) == 2


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("example.com dkim/a.pem", "is not DOMAIN SELECTOR KEY"),
        ("localhost s1 a.pem", "'localhost' is not a domain name"),
        ("example.com s_1 a.pem", "selector 's_1' may hold only"),
        ("example.com s1 a.pem; example.com S1 b.pem", "given twice"),
    ],
)
def test_bad_entries_say_what_to_write(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        parse_entries(text)


def test_a_bad_entry_in_the_environment_names_the_variable_and_hides_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, {"FUNNEL_DKIM_KEYS": "example.com -----BEGIN PRIVATE KEY----- SECRETSTUFF"})
    text = str(caught.value)
    assert "setting 'dkim_keys' (funnel.toml or FUNNEL_DKIM_KEYS)" in text and "SECRETSTUFF" not in text


@pytest.mark.parametrize("form", ["pkcs8", "pkcs1", "one line", "escaped newlines"])
def test_rsa_keys_in_every_pem_form(form: str) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kind = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if form == "pkcs1"
        else serialization.PrivateFormat.PKCS8
    )
    pem = private.private_bytes(serialization.Encoding.PEM, kind, serialization.NoEncryption())
    if form == "one line":
        pem = pem.replace(b"\n", b" ")
    elif form == "escaped newlines":
        pem = pem.replace(b"\n", b"\\n")
    key = read_key(ENTRY, pem)
    assert key.type is KeyType.RSA
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key.public == base64.b64encode(spki).decode()
    assert key.record == f"v=DKIM1; k=rsa; p={key.public}"


def test_ed25519_keys_as_pem_or_as_dknewkeys_bare_seed() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    for data in (pem, base64.b64encode(seed) + b"\n"):
        key = read_key(ENTRY, data)
        assert key.type is KeyType.ED25519 and key.public == base64.b64encode(raw).decode()
        assert key.record == f"v=DKIM1; k=ed25519; p={key.public}"


def test_a_short_rsa_key_is_refused_with_the_command_that_makes_a_good_one() -> None:
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = short.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(
        ValueError, match=r"1024 bits; .*at least 2048.*funnel dkim keygen example.com --type rsa"
    ):
        read_key(ENTRY, pem)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"hello", "not a private key in PEM form"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a readable private key"),
    ],
)
def test_what_is_not_a_key_is_refused(data: bytes, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        read_key(ENTRY, data)


def test_an_encrypted_key_is_refused() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(ValueError, match="encrypted with a password; write it unencrypted"):
        read_key(ENTRY, pem)


def _pem(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_bad_key_settings_give_the_start_error(tmp_path: Path) -> None:
    (tmp_path / "ed.pem").write_bytes(_pem(ed25519.Ed25519PrivateKey.generate()))
    (tmp_path / "ed2.pem").write_bytes(_pem(ed25519.Ed25519PrivateKey.generate()))
    (tmp_path / "short.pem").write_bytes(_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    cases = {
        "example.com s1 missing.pem": "setting 'dkim_keys' (funnel.toml or FUNNEL_DKIM_KEYS): "
        "example.com s1: "
        f"cannot read the key file {tmp_path / 'missing.pem'} (No such file",
        "example.com s1 short.pem": "example.com s1: the RSA key has 1024 bits",
        "example.com s1 ed.pem; example.com s2 ed2.pem": "example.com has two ed25519 keys (s1, s2)",
    }
    for value, words in cases.items():
        with pytest.raises(ConfigError) as caught:
            dkim_keys(Settings(dkim_keys=value), tmp_path)
        assert words in str(caught.value)
    both = Settings(dkim_keys="example.com s1 ed.pem", dkim_published="example.com s1 ed.pem")
    with pytest.raises(ConfigError, match="is in dkim_keys too"):
        dkim_keys(both, tmp_path)
    inline = _pem(ed25519.Ed25519PrivateKey.generate()).decode().replace("\n", " ")
    (key,) = dkim_keys(Settings(dkim_keys=f"example.com s3 {inline}"), tmp_path)
    assert key.selector == "s3" and key.type is KeyType.ED25519


def test_long_txt_values_are_cut_at_255() -> None:
    parts = txt_strings("x" * 600)
    assert [len(p) for p in parts] == [255, 255, 90] and "".join(parts) == "x" * 600


def test_a_key_on_lines_of_its_own_is_one_entry_and_an_error_never_repeats_a_piece_of_a_key() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    (entry,) = parse_entries(f"example.com ed1 {pem}\nexample.org rsa1 dkim/org.pem")[:1]
    assert (entry.domain, entry.selector, entry.inline) == ("example.com", "ed1", True)
    assert read_key(entry, entry.source.encode()).type is KeyType.ED25519
    secret = pem.splitlines()[1]  # the key's base64: the whole private key of an Ed25519 key
    with pytest.raises(ValueError) as refused:  # the BEGIN line misspelt: the base64 stands alone
        parse_entries("example.com ed1 " + pem.replace("-----BEGIN", "----BEGIN"))
    assert secret not in str(refused.value)
    assert "is not DOMAIN SELECTOR KEY" in str(refused.value)
