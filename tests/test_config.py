"""Settings: funnel.toml, FUNNEL_ variables over it, clear errors, and a documented key for each."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from engine.config import ConfigError, Settings, database_url, load_settings, secret_key

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
    assert secret_key(load_settings(tmp_path, environ={"FUNNEL_SECRET_KEY": "given"}), tmp_path) == "given"


def test_every_setting_is_documented_in_the_operators_guide() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`{name}`" not in guide]
    assert missing == []


def test_an_empty_key_leaves_the_api_webhooks_and_dashboard_closed(tmp_path: Path) -> None:
    env = {"FUNNEL_API_KEY": "", "FUNNEL_WEBHOOK_KEY": "  ", "FUNNEL_ADMIN_PASSWORD": ""}
    settings = load_settings(tmp_path, env)
    assert (settings.api_key, settings.webhook_key, settings.admin_password) == (None, None, None)
