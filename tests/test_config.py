"""Settings: funnel.toml, FUNNEL_ variables over it, clear errors, and a documented key for each."""

from __future__ import annotations

import multiprocessing
import stat
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from engine.config import SECRET_MIN_LENGTH, ConfigError, Settings, database_url, load_settings, secret_key

ROOT = Path(__file__).resolve().parent.parent


def test_nothing_set_runs_on_sqlite_and_the_outbox_in_the_project(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert settings.transport == "outbox"
    assert database_url(settings, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'funnel.db'}"


def test_environment_variables_override_funnel_toml(tmp_path: Path) -> None:
    (tmp_path / "funnel.toml").write_text(
        'transport = "smtp"\nsmtp_host = "relay.example"\nsmtp_port = 2525\n'
    )
    settings = load_settings(tmp_path, environ={"FUNNEL_SMTP_HOST": "other.example", "HOME": "/x"})
    assert (settings.transport, settings.smtp_host, settings.smtp_port) == ("smtp", "other.example", 2525)
    assert load_settings(tmp_path, environ={"FUNNEL_SMTP_TLS": "tls"}).smtp_port_or_default == 2525
    assert load_settings(ROOT, environ={"FUNNEL_SMTP_TLS": "tls"}).smtp_port_or_default == 465


def test_a_misspelt_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / "funnel.toml").write_text('smtp_hots = "relay.example"\n')
    with pytest.raises(
        ConfigError, match=r"funnel.toml: unknown setting 'smtp_hots'; did you mean 'smtp_host'\?"
    ):
        load_settings(tmp_path, environ={})
    with pytest.raises(
        ConfigError, match=r"unknown setting 'FUNNEL_SMTP_HOTS'; did you mean 'FUNNEL_SMTP_HOST'\?"
    ):
        load_settings(tmp_path.parent, environ={"FUNNEL_SMTP_HOTS": "x"})


def test_a_wrong_value_says_what_the_setting_accepts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path, environ={"FUNNEL_SMTP_TLS": "ssl"})
    assert "setting 'smtp_tls' (funnel.toml or FUNNEL_SMTP_TLS)" in str(error.value)
    assert "'none', 'starttls' or 'tls'" in str(error.value) and "got 'ssl'" in str(error.value)
    with pytest.raises(ConfigError, match="retry_lifetime"):
        load_settings(tmp_path, environ={"FUNNEL_RETRY_LIFETIME": "three days"})
    (tmp_path / "funnel.toml").write_text("transport = outbox\n")
    with pytest.raises(ConfigError, match=r'funnel.toml: .*; write key = "value" lines \(TOML\)'):
        load_settings(tmp_path, environ={})


def test_the_generated_secret_is_private_and_stays_the_same(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    first = secret_key(settings, tmp_path)
    assert secret_key(settings, tmp_path) == first and len(first) >= 40
    assert stat.S_IMODE((tmp_path / ".funnel-secret").stat().st_mode) == 0o600
    given = "g" * SECRET_MIN_LENGTH
    assert secret_key(load_settings(tmp_path, environ={"FUNNEL_SECRET_KEY": given}), tmp_path) == given
    assert [p.name for p in tmp_path.iterdir()] == [".funnel-secret"]  # no temporary file left behind


def test_an_empty_or_short_secret_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    path = tmp_path / ".funnel-secret"
    path.write_text("\n")
    with pytest.raises(ConfigError) as error:
        secret_key(settings, tmp_path)
    assert str(error.value) == (
        f"{path} holds no key; a link-signing key needs at least 32: delete the file to have a new one "
        "made (links in emails sent already stop working), or set FUNNEL_SECRET_KEY to at least 32 "
        "random characters"
    )
    path.write_text("short\n")
    with pytest.raises(ConfigError, match=r"holds a key of 5 characters; .* needs at least 32: delete"):
        secret_key(settings, tmp_path)
    path.unlink()  # what the message says to do
    assert len(secret_key(settings, tmp_path)) >= 40


def test_a_short_secret_in_the_settings_is_refused_with_the_fix(tmp_path: Path) -> None:
    for where in ({"FUNNEL_SECRET_KEY": "e2e-secret"}, {}):
        if not where:
            (tmp_path / "funnel.toml").write_text('secret_key = "k"\n')
        with pytest.raises(ConfigError) as error:
            secret_key(load_settings(tmp_path, environ=where), tmp_path)
        assert str(error.value).startswith(
            "setting 'secret_key' (funnel.toml or FUNNEL_SECRET_KEY) has "
            f"{10 if where else 1} characters; a link-signing key needs at least 32: set it to a random one"
        )
    assert not (tmp_path / ".funnel-secret").exists()  # refused, not replaced by a generated key


def test_a_key_that_cannot_be_created_names_the_fix_not_a_traceback(tmp_path: Path) -> None:
    # Stands in for a read-only project folder (tests run as root, which chmod does not stop):
    # the temporary file cannot be made in either case.
    gone = tmp_path / "gone"
    with pytest.raises(ConfigError) as error:
        secret_key(Settings(), gone)
    assert str(error.value).startswith(f"{gone / '.funnel-secret'}: cannot create the link-signing key (")
    assert str(error.value).endswith("make the folder writable, or set FUNNEL_SECRET_KEY to at least 32 "
                                     "random characters, e.g. the output of python -c 'import secrets; "
                                     "print(secrets.token_urlsafe(32))'")


def _race(rounds: list[Path], start: Barrier, keys: Queue) -> None:  # type: ignore[type-arg]
    settings = Settings()
    for folder in rounds:
        start.wait()
        keys.put((folder.name, secret_key(settings, folder)))


def test_processes_starting_together_all_get_the_same_whole_key(tmp_path: Path) -> None:
    # Two processes, 300 rounds: each round both create the secret of a new folder at the
    # same moment. With O_EXCL then a write, 131 of 300 such pairs read an empty key.
    rounds = [tmp_path / f"r{n}" for n in range(300)]
    for folder in rounds:
        folder.mkdir()
    context = multiprocessing.get_context("fork")
    start, keys = context.Barrier(2), context.Queue()
    racers = [context.Process(target=_race, args=(rounds, start, keys)) for _ in range(2)]
    began = time.monotonic()
    for racer in racers:
        racer.start()
    got: dict[str, set[str]] = {}
    for _ in range(2 * len(rounds)):
        name, key = keys.get(timeout=30)
        got.setdefault(name, set()).add(key)
    for racer in racers:
        racer.join(10)
        assert racer.exitcode == 0
    assert time.monotonic() - began < 10
    assert len(got) == 300
    assert all(len(k) == 1 and len(next(iter(k))) >= 40 for k in got.values()), got
    assert all((folder / ".funnel-secret").read_text().strip() in got[folder.name] for folder in rounds)
    assert all(len(list(folder.iterdir())) == 1 for folder in rounds)  # no temporary file left


def test_every_setting_is_documented_in_the_operators_guide() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`{name}`" not in guide]
    assert missing == []


def test_an_empty_key_leaves_the_api_webhooks_and_dashboard_closed(tmp_path: Path) -> None:
    env = {"FUNNEL_API_KEY": "", "FUNNEL_WEBHOOK_KEY": "  ", "FUNNEL_ADMIN_PASSWORD": ""}
    settings = load_settings(tmp_path, env)
    assert (settings.api_key, settings.webhook_key, settings.admin_password) == (None, None, None)
