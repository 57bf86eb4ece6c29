"""Settings: built once from `funnel.toml` and `FUNNEL_*` variables, then passed down.

Every key of `funnel.toml` can be overridden by the environment variable of the
same name in capitals with a `FUNNEL_` prefix (`smtp_host` -> `FUNNEL_SMTP_HOST`).
Nothing needs to be set: the defaults run the daemon on a SQLite file and an outbox
folder in the project, with a secret generated on first use.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import tomllib
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from engine.errors import EngineError, did_you_mean
from engine.sequences.values import parse_delay

if TYPE_CHECKING:
    from engine.mail.dkimkeys import DkimKey, KeyEntry

CONFIG_FILE = "funnel.toml"
ENV_PREFIX = "FUNNEL_"
SECRET_FILE = ".funnel-secret"

_RATES_EXAMPLE = "gmail.com=10,outlook.com=3"
_WARMUP_EXAMPLE = "50,100,200,400,800,1500,3000,5000"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ConfigError(EngineError):
    """A setting in funnel.toml or a FUNNEL_ variable is wrong; the message names it and what to write."""


class Settings(BaseModel):
    """Everything the daemon and the commands can be told; see docs/operations.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["outbox", "smtp"] = Field(
        "outbox", description="'outbox' writes .eml files to the project's outbox/; 'smtp' sends"
    )
    outbox_dir: str = Field("outbox", description="folder for the outbox transport, relative to the project")
    smtp_host: str = Field("localhost", description="SMTP server (relay or provider) host name")
    smtp_port: int = Field(0, ge=0, le=65535, description="SMTP port; 0 picks 25, 587 or 465 by smtp_tls")
    smtp_username: str | None = Field(None, description="SMTP AUTH user name")
    smtp_password: str | None = Field(None, description="SMTP AUTH password")
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="'none', 'starttls' (port 587) or 'tls' (implicit, port 465)"
    )
    smtp_timeout: float = Field(30.0, gt=0, description="seconds to wait for any SMTP reply")
    smtp_connections: int = Field(8, ge=1, le=256, description="SMTP connections kept open at most")
    smtp_cafile: str | None = Field(None, description="CA bundle to trust for a private SMTP server")
    workers: int = Field(
        1, ge=1, le=64, description="processes that tick and send (the first also serves HTTP); "
                                    "each keeps its own smtp_connections"
    )
    base_url: str | None = Field(
        None,
        description="public URL of the daemon, used in links; default: http://host:port it listens on",
    )
    secret_key: str | None = Field(None, description="key that signs links; generated when unset")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///<project>/funnel.db (--time-scale: funnel-demo.db)",
    )
    host: str = Field("127.0.0.1", description="address the HTTP server listens on")
    port: int = Field(8000, ge=0, le=65535, description="port the HTTP server listens on")
    send_rate: float = Field(20.0, gt=0, description="emails per second at most, catch-up included")
    domain_send_rate: float = Field(
        0.0, ge=0, description="emails per second at most to any one recipient domain; 0: no per-domain limit"
    )
    domain_rates: str = Field(
        "", description="per-domain rates overriding domain_send_rate, e.g. 'gmail.com=10,outlook.com=3'"
    )
    warmup_schedule: str = Field(
        "", description="marketing emails a day on warm-up day 1, 2, 3..., e.g. '50,100,200,400'; empty: none"
    )
    warmup_start: str | None = Field(
        None, validate_default=True, description="the UTC date of warm-up day 1, YYYY-MM-DD"
    )
    batch_size: int = Field(200, ge=1, le=10_000, description="enrollments or deliveries claimed at once")
    tick_seconds: float = Field(1.0, gt=0, description="seconds between scheduler ticks")
    reload_settle_seconds: float = Field(
        1.0, ge=0, description="a sequence file or template saved less than this long ago is read at a "
                               "later tick (it may be half-written)")
    lease_seconds: float = Field(
        300.0, gt=0, description="how long a claim lasts before a crashed daemon's work is taken over"
    )
    retry_lifetime: str = Field("3d", description="how long 4xx replies are retried before giving up")
    resend_unknown: bool = Field(
        False, description="re-send a message whose connection broke after the data (risks duplicates)"
    )
    message_id_domain: str | None = Field(
        None, description="domain of Message-IDs; default: the funnel sender's domain"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api_key: str | None = Field(
        None, description="key for /api/ (Authorization: Bearer KEY); the API answers 401 without one"
    )
    webhook_key: str | None = Field(
        None, description="Basic-auth password of /webhooks/ses and /webhooks/postmark; unset: they are off"
    )
    admin_password: str | None = Field(
        None, description="password of the /dashboard login (default: api_key); with neither it is off"
    )
    link_lifetime: str = Field(
        "400d", description="how long the links in an email (unsubscribe, confirm, answers, clicks) work"
    )
    signup_limit_per_ip: int = Field(
        20, ge=1, description="signup posts one IP address may make per hour before getting 429"
    )
    signup_limit_per_address: int = Field(
        3, ge=1, description="signups for one email address per hour before 429"
    )
    trusted_proxies: str = Field(
        "127.0.0.1,::1",
        description="comma-separated addresses of reverse proxies whose X-Forwarded-For is believed",
    )
    check_email_domain: bool = Field(
        False, description="look up the MX record of each signup address's domain (DNS)"
    )
    track_clicks: bool = Field(True, description="send links through /c/ to count clicks")
    track_opens: bool = Field(True, description="add a 1x1 image to count opens (a weak signal)")
    alert_webhook: str | None = Field(
        None, description="URL that gets a JSON POST when a guardrail pauses a step (Slack-compatible)"
    )
    guardrail_seconds: float = Field(
        60.0, gt=0, description="seconds between guardrail checks (each reads every step's numbers)"
    )
    dkim_keys: str = Field(
        "", description="DKIM keys that sign, 'DOMAIN SELECTOR KEY' each (KEY: a PEM file, relative to "
                        "the project, or the PEM on one line), one per line or ';'-separated; docs/dkim.md"
    )
    dkim_published: str = Field(
        "", description="DKIM keys published in DNS that do not sign (the next one before a rotation, "
                        "the last one after it), written as dkim_keys; funnel doctor checks them"
    )

    @field_validator("api_key", "webhook_key", "admin_password", "secret_key", "base_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # FUNNEL_API_KEY="" must leave the API closed, not accept an empty key.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("dkim_keys", "dkim_published", mode="before")
    @classmethod
    def _dkim_entries(cls, value: object) -> object:
        if isinstance(value, list):  # a TOML array: one entry a string
            value = "\n".join(str(item) for item in value)
        if isinstance(value, str) and value.strip():
            # Only where keys are set: every command reads the settings, few sign (cryptography
            # is 14 ms of a command's start).
            from engine.mail.dkimkeys import parse_entries

            parse_entries(value)  # raises ValueError naming the entry and what to write
        return value

    @field_validator("alert_webhook")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"'{value}' is not a web address; write a URL starting with https://")
        return value

    @field_validator("domain_rates")
    @classmethod
    def _domain_rates(cls, value: str) -> str:
        parse_domain_rates(value)  # raises ValueError naming the part and what to write
        return value

    @field_validator("warmup_schedule")
    @classmethod
    def _warmup_schedule(cls, value: str) -> str:
        if value.strip():
            parse_schedule(value)
        return value

    @field_validator("warmup_start", mode="before")
    @classmethod
    def _warmup_start(cls, value: object, info: ValidationInfo) -> str | None:
        if isinstance(value, date):  # TOML's own date: warmup_start = 2026-03-02
            value = value.isoformat()
        if isinstance(value, str) and value.strip():
            return parse_start(value).isoformat()
        if value not in (None, "") and not isinstance(value, str):
            raise ValueError("write the UTC date of warm-up day 1 as YYYY-MM-DD, e.g. 2026-03-02")
        if str(info.data.get("warmup_schedule") or "").strip():
            raise ValueError(
                "warmup_schedule is set, so warm-up day 1 must be too; "
                'write warmup_start = "2026-03-02" (the UTC date of day 1, YYYY-MM-DD)'
            )
        return None

    @field_validator("retry_lifetime", "link_lifetime")
    @classmethod
    def _delay(cls, value: str) -> str:
        parse_delay(value)  # raises ValueError with the allowed forms
        return value

    @property
    def links_url(self) -> str:
        """Where links in emails point: `base_url`, or the address the daemon listens on."""
        if self.base_url:
            return self.base_url
        return listening_url(self.host, self.port)

    @property
    def retry_lifetime_delta(self) -> timedelta:
        """`retry_lifetime` as a duration."""
        return parse_delay(self.retry_lifetime)

    @property
    def link_lifetime_delta(self) -> timedelta:
        """`link_lifetime` as a duration."""
        return parse_delay(self.link_lifetime)

    @property
    def smtp_port_or_default(self) -> int:
        """The SMTP port, defaulting by TLS mode as mail clients do."""
        return self.smtp_port or {"none": 25, "starttls": 587, "tls": 465}[self.smtp_tls]

    @property
    def domain_rate_overrides(self) -> dict[str, float]:
        """`domain_rates` as {domain: emails per second}."""
        return parse_domain_rates(self.domain_rates)

    @property
    def warmup_days(self) -> tuple[int, ...]:
        """`warmup_schedule` as the marketing volumes of day 1, 2, 3...; empty when there is no warm-up."""
        return parse_schedule(self.warmup_schedule) if self.warmup_schedule.strip() else ()

    @property
    def warmup_day_one(self) -> date | None:
        """`warmup_start` as a date; None when it is not set."""
        return parse_start(self.warmup_start) if self.warmup_start else None


def parse_domain_rates(text: str) -> dict[str, float]:
    """`gmail.com=10,outlook.com=3` as {domain: emails per second}; ValueError says what to write."""
    rates: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        domain, equals, value = part.partition("=")
        domain = domain.strip().lower().rstrip(".")
        if not equals or not domain or "@" in domain or " " in domain:
            raise ValueError(f"'{part}' is not DOMAIN=RATE; write for example {_RATES_EXAMPLE}")
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(
                f"'{part}': the rate must be a number of emails per second; "
                f"write for example {_RATES_EXAMPLE}"
            ) from None
        if not rate >= 0 or rate == float("inf"):  # also refuses NaN
            raise ValueError(
                f"'{part}': the rate must be 0 (no limit) or more; write for example {_RATES_EXAMPLE}"
            )
        if domain in rates:
            raise ValueError(f"'{domain}' is given twice; write each domain once, e.g. {_RATES_EXAMPLE}")
        rates[domain] = rate
    return rates


def parse_schedule(text: str) -> tuple[int, ...]:
    """`50,100,200` as (50, 100, 200); ValueError says what to write."""
    days: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():  # also refuses "", "-5", "1.5"
            raise ValueError(
                f"'{part}' is not a whole number of emails; write the daily volumes of day 1, 2, 3... "
                f"separated by commas, e.g. {_WARMUP_EXAMPLE}"
            )
        days.append(int(part))
    return tuple(days)


def parse_start(text: str) -> date:
    """`2026-03-02` as a date; ValueError says what to write."""
    try:
        if not _DATE.fullmatch(text.strip()):
            raise ValueError(text)
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"'{text}' is not a date; write the UTC day of warm-up day 1 as YYYY-MM-DD, e.g. 2026-03-02"
        ) from None


def load_settings(project: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings for `project`: defaults, then funnel.toml, then FUNNEL_ variables."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    path = project / CONFIG_FILE
    if path.is_file():
        try:
            values.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f'{path}: {error}; write key = "value" lines (TOML)') from error
        _check_keys(values, str(path))
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key not in _IGNORED_ENV:
            name = key[len(ENV_PREFIX) :].lower()
            _check_keys({name: value}, f"environment variable {key}", env=True)
            values[name] = value
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise ConfigError("\n".join(_describe(e, path) for e in error.errors())) from error


# Variables with the prefix that configure tests or tools, not the daemon.
_IGNORED_ENV = frozenset({"FUNNEL_REQUIRE_POSTGRES", "FUNNEL_TEST_DATABASE_URL", "FUNNEL_REQUIRE_BROWSER"})


def _check_keys(values: Mapping[str, object], where: str, env: bool = False) -> None:
    known = Settings.model_fields
    for name in values:
        if name not in known:
            shown = (ENV_PREFIX + name.upper()) if env else name
            options = [(ENV_PREFIX + k.upper()) if env else k for k in known]
            raise ConfigError(
                f"{where}: unknown setting '{shown}'; "
                + did_you_mean(shown, options, "see docs/operations.md for the settings")
            )


def _describe(error: Mapping[str, object], path: Path) -> str:
    loc = error.get("loc") or ("?",)
    name = str(loc[0]) if isinstance(loc, tuple) else str(loc)
    field = Settings.model_fields.get(name)
    hint = f" ({field.description})" if field and field.description else ""
    # A DKIM setting may hold a private key: its value is never shown, the message names the entry.
    got = "" if name in _SECRET_VALUES else f"; got {error.get('input')!r}"
    return f"setting '{name}' (funnel.toml or {ENV_PREFIX}{name.upper()}): {error.get('msg')}{got}{hint}"


_SECRET_VALUES = frozenset({"dkim_keys", "dkim_published"})


def listening_url(host: str, port: int) -> str:
    """http://host:port for a browser on this machine (0.0.0.0 and :: become loopback)."""
    shown = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


DEMO_DATABASE = "funnel-demo.db"


def database_url(settings: Settings, project: Path, time_scale: float = 1.0) -> str:
    """The database to use: the setting, or a SQLite file in the project folder.

    A fast clock (`--time-scale`) gets its own file, funnel-demo.db: its times run ahead of
    the real ones, and a later real-time run on them would send days early (issue 13).
    """
    name = "funnel.db" if time_scale == 1.0 else DEMO_DATABASE
    return settings.database_url or f"sqlite:///{(project / name).resolve()}"


# A link-signing key holds at least this many characters. The generated one is
# token_urlsafe(32): 43 characters carrying 32 random bytes; a key given in the settings
# is taken as it is written, so it must be as long. An empty or short key lets anyone
# sign links (issue 13: an empty .funnel-secret made a forged /c/ token redirect away).
SECRET_MIN_LENGTH = 32
_MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def secret_key(settings: Settings, project: Path) -> str:
    """The link-signing key: the setting, else one generated once and kept in the project.

    Raises ConfigError for a key shorter than SECRET_MIN_LENGTH, naming where it came from.
    """
    if settings.secret_key:
        if len(settings.secret_key.strip()) < SECRET_MIN_LENGTH:
            raise ConfigError(
                f"setting 'secret_key' (funnel.toml or {ENV_PREFIX}SECRET_KEY) has "
                f"{len(settings.secret_key.strip())} characters; a link-signing key needs at least "
                f"{SECRET_MIN_LENGTH}: set it to a random one, e.g. the output of {_MAKE_ONE}"
            )
        return settings.secret_key
    path = project / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    return _read_secret(path)


def _create_secret(path: Path) -> None:
    """Write a new key to `path` unless another process gets there first.

    The key is written and synced to a private temporary file, then hard-linked to its
    name: the name appears with the whole key in it or not at all, so a process starting
    at the same moment reads a complete key, and of two racing processes the loser's link
    fails and both use the winner's file. (O_EXCL on the file itself let a second process
    read it still empty: 131 of 300 racing pairs did.)
    """
    try:
        fd, temporary = tempfile.mkstemp(prefix=SECRET_FILE + ".", suffix=".tmp", dir=path.parent)
    except OSError as error:  # a read-only project folder (a container's mount) fails here, not at link
        raise _cannot_create(path, error) from error
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:  # mkstemp: mode 0600
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return  # another process won: its key is the key
        except OSError as error:
            raise _cannot_create(path, error) from error
        _sync_folder(path.parent)
    finally:
        os.unlink(temporary)


def _cannot_create(path: Path, error: OSError) -> ConfigError:
    return ConfigError(
        f"{path}: cannot create the link-signing key ({error}); make the folder writable, or set "
        f"{ENV_PREFIX}SECRET_KEY to at least {SECRET_MIN_LENGTH} random characters, e.g. the "
        f"output of {_MAKE_ONE}"
    )


def _sync_folder(folder: Path) -> None:
    """Make a new name in `folder` survive a power cut (where the system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a folder that cannot be opened (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that cannot sync a folder
        pass
    finally:
        os.close(fd)


def _read_secret(path: Path) -> str:
    """The key kept in `path`; ConfigError when the file is empty, short or not text."""
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"{path}: cannot read the link-signing key ({error}); fix the file's permissions, or "
            f"delete it to have a new key made (links in emails sent already stop working)"
        ) from error
    if len(key) < SECRET_MIN_LENGTH:
        raise ConfigError(
            f"{path} holds {'no key' if not key else f'a key of {len(key)} characters'}; a link-signing "
            f"key needs at least {SECRET_MIN_LENGTH}: delete the file to have a new one made (links in "
            f"emails sent already stop working), or set {ENV_PREFIX}SECRET_KEY to at least "
            f"{SECRET_MIN_LENGTH} random characters"
        )
    return key


def dkim_keys(settings: Settings, project: Path, published: bool = False) -> list[DkimKey]:
    """The DKIM keys of `dkim_keys` (or, with `published`, of `dkim_published`), read and checked.

    Called once at start: a missing file, a key that is not a private key or an RSA key
    under 2048 bits is a ConfigError naming the setting, the entry and what to write.
    """
    from engine.mail.dkimkeys import parse_entries, read_key  # see _dkim_entries

    name = "dkim_published" if published else "dkim_keys"
    where = f"setting '{name}' (funnel.toml or {ENV_PREFIX}{name.upper()})"
    keys: list[DkimKey] = []
    for entry in parse_entries(getattr(settings, name)):
        try:
            key = read_key(entry, _key_bytes(entry, project))
        except ValueError as error:
            raise ConfigError(f"{where}: {entry.domain} {entry.selector}: {error}") from None
        twin = next((k for k in keys if k.domain == key.domain and k.type is key.type), None)
        if twin is not None and not published:
            raise ConfigError(
                f"{where}: {key.domain} has two {key.type.value} keys ({twin.selector}, {key.selector}); "
                f"a domain signs with one key of each type: move the one not signing to dkim_published"
            )
        keys.append(key)
    if not published:
        signing = {(k.domain, k.selector.lower()) for k in keys}
        for entry in parse_entries(settings.dkim_published):
            if (entry.domain, entry.selector.lower()) in signing:
                raise ConfigError(
                    f"setting 'dkim_published': {entry.domain} {entry.selector} is in dkim_keys too; "
                    "a key signs (dkim_keys) or is only published (dkim_published): keep one line"
                )
    return keys


def _key_bytes(entry: KeyEntry, project: Path) -> bytes:
    """The key of `entry`: written in the setting, or read from its file (relative to the project)."""
    if entry.inline:
        return entry.source.encode("ascii", "replace")
    path = project / entry.source
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(
            f"cannot read the key file {path} ({error.strerror or error}); write the path of the file "
            f"`funnel dkim keygen {entry.domain}` wrote, relative to the project folder, or the key "
            "itself on one line"
        ) from None
