"""`funnel dkim keygen`, `funnel doctor` against a real DNS server on loopback, and a real daemon that
signs what it sends through SMTP (aiosmtpd) or refuses to start with a bad key."""

from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner, Result

from engine.cli import main
from engine.mail.dkimkeys import KeyEntry, parse_tags, read_key
from tests.support.dns_server import running_dns
from tests.support.smtp_server import RecordingHandler, running_smtp
from tests.test_run import _add_leads, _Daemon, _run_once


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A daemon's settings as tests/test_run.py gives them."""
    return {
        "FUNNEL_DATABASE_URL": f"sqlite:///{tmp_path / 'funnel.db'}",
        "FUNNEL_SECRET_KEY": "k" * 32,
        "FUNNEL_BASE_URL": "https://funnel.example",
        "FUNNEL_TICK_SECONDS": "0.2",
    }


def funnel(project: Path, *args: str, **env: str) -> Result:
    return CliRunner().invoke(main, ["--project", str(project), *args], env=env)


def _printed_record(output: str) -> tuple[str, list[str]]:
    """The record's name and its quoted strings, as keygen printed them."""
    name = re.search(r"^   name:  (\S+)$", output, re.MULTILINE)
    value = re.search(r"^   value: (.+)$", output, re.MULTILINE)
    assert name and value, output
    return name.group(1), re.findall(r'"([^"]*)"', value.group(1))


def test_keygen_writes_a_private_key_only_its_owner_reads_and_prints_its_record(project: Path) -> None:
    for kind in ("rsa", "ed25519"):
        result = funnel(project, "dkim", "keygen", "example.com", "--selector", f"k-{kind}", "--type", kind)
        assert result.exit_code == 0, result.output
        path = project / "dkim" / f"k-{kind}.example.com.pem"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        name, strings = _printed_record(result.output)
        assert name == f"k-{kind}._domainkey.example.com"
        assert all(len(s) <= 255 for s in strings) and len(strings) == (2 if kind == "rsa" else 1)
        key = read_key(KeyEntry("example.com", f"k-{kind}", "-"), path.read_bytes())
        assert parse_tags("".join(strings)) == {"v": "DKIM1", "k": kind, "p": key.public}
        assert f'dkim_keys = ["example.com k-{kind} dkim/k-{kind}.example.com.pem"]' in result.output
    again = funnel(project, "dkim", "keygen", "example.com", "--selector", "k-rsa")
    assert again.exit_code == 1 and "exists already; choose another --selector" in again.output


def test_keygen_refuses_a_name_dns_cannot_hold(project: Path) -> None:
    result = funnel(project, "dkim", "keygen", "example.com", "--selector", "bad_one")
    assert result.exit_code == 2 and "may hold only letters" in result.output
    assert not (project / "dkim").exists()


def _zone(project: Path, selector: str) -> dict[tuple[str, str], list[str]]:
    key = read_key(
        KeyEntry("example.com", selector, "-"),
        (project / "dkim" / f"{selector}.example.com.pem").read_bytes(),
    )
    return {
        ("example.com", "TXT"): ["v=spf1 ip4:192.0.2.1 -all"],
        ("example.com", "MX"): ["10 mx.example.com."],
        ("_dmarc.example.com", "TXT"): ["v=DMARC1; p=reject"],
        (key.record_name, "TXT"): [key.record],  # an RSA record: two strings on the wire
    }


def test_doctor_all_ok_through_a_real_dns_server(project: Path) -> None:
    assert funnel(project, "dkim", "keygen", "example.com", "--selector", "s1").exit_code == 0
    env = {
        "FUNNEL_DKIM_KEYS": "example.com s1 dkim/s1.example.com.pem",
        "FUNNEL_BASE_URL": "https://f.example.com",
    }
    with running_dns(_zone(project, "s1")) as nameserver:
        result = funnel(project, "doctor", "--nameserver", nameserver, **env)
        as_json = funnel(project, "doctor", "--json", "--nameserver", nameserver, **env)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "all checks passed"
    assert "  ok    DKIM s1                  s1._domainkey.example.com: the rsa key matches" in result.output
    assert as_json.exit_code == 0
    assert {(c["name"], c["status"]) for c in json.loads(as_json.output)} == {
        ("SPF", "ok"),
        ("DMARC", "ok"),
        ("MX", "ok"),
        ("DKIM s1", "ok"),
        ("base_url", "ok"),
    }


def test_doctor_fails_with_the_records_to_publish(project: Path) -> None:
    assert funnel(project, "dkim", "keygen", "example.com", "--selector", "s1").exit_code == 0
    zone = {k: v for k, v in _zone(project, "s1").items() if k[0] != "s1._domainkey.example.com"}
    zone[("_dmarc.example.com", "TXT")] = ["v=DMARC1; p=none"]
    env = {
        "FUNNEL_DKIM_KEYS": "example.com s1 dkim/s1.example.com.pem",
        "FUNNEL_BASE_URL": "http://f.example.com",
    }
    with running_dns(zone) as nameserver:
        result = funnel(project, "doctor", "--nameserver", nameserver, "--json", **env)
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.output)}
    assert checks["DKIM s1"]["status"] == "fail"
    assert checks["DKIM s1"]["fix"].startswith(
        'publish a TXT record at s1._domainkey.example.com: "v=DKIM1; k=rsa; p='
    )
    assert checks["DMARC"]["status"] == "warn" and checks["base_url"]["status"] == "fail"


def test_run_refuses_to_start_with_a_bad_key(project: Path, env: dict[str, str]) -> None:
    (project / "short.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    for value, words in (
        ("example.com s1 missing.pem", "cannot read the key file"),
        ("example.com s1 short.pem", "the PEM block is not a readable private key"),
    ):
        result = _run_once(project, {**env, "FUNNEL_DKIM_KEYS": value}, "--port", "0")
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith(
            "Error: setting 'dkim_keys' (funnel.toml or FUNNEL_DKIM_KEYS): example.com s1: "
        ), result.stderr
        assert words in result.stderr


def test_a_real_daemon_signs_what_it_sends_and_the_server_gets_it_verifiable(
    project: Path, env: dict[str, str]
) -> None:
    for kind in ("ed25519", "rsa"):
        assert (
            funnel(project, "dkim", "keygen", "example.com", "--selector", kind, "--type", kind).exit_code
            == 0
        )
    keys = [
        read_key(KeyEntry("example.com", k, "-"), (project / "dkim" / f"{k}.example.com.pem").read_bytes())
        for k in ("ed25519", "rsa")
    ]
    records = {f"{k.record_name}.".encode(): k.record.encode() for k in keys}
    _add_leads(project, env["FUNNEL_DATABASE_URL"], 2)
    handler = RecordingHandler()
    with running_smtp(handler) as server:
        smtp = {
            "FUNNEL_TRANSPORT": "smtp",
            "FUNNEL_SMTP_HOST": server.host,
            "FUNNEL_SMTP_PORT": str(server.port),
            "FUNNEL_SMTP_TLS": "none",
            "FUNNEL_DKIM_KEYS": "example.com ed25519 dkim/ed25519.example.com.pem; "
            "example.com rsa dkim/rsa.example.com.pem",
        }
        with _Daemon(project, {**env, **smtp}) as daemon:
            daemon.wait_healthy()
            deadline = time.monotonic() + 20
            while len(handler.received) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            status, _ = daemon.stop()
    assert status == 0 and len(handler.received) >= 2
    for received in handler.received:
        checker = dkim.DKIM(received.data)
        assert [checker.verify(idx=i, dnsfunc=lambda n, timeout=5: records.get(n)) for i in (0, 1)] == [
            True,
            True,
        ]
        tampered = dkim.DKIM(received.data.replace(b"Subject: ", b"Subject: RE: ", 1))
        assert not tampered.verify(idx=1, dnsfunc=lambda n, timeout=5: records.get(n))
