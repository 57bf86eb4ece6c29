"""The daemon's parts, built once from Settings: database, funnels, transport, ticker."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.config import Settings, database_url, dkim_keys, secret_key
from engine.errors import EngineError
from engine.mail.outbox import OutboxTransport
from engine.mail.signing import Signer, SigningTransport
from engine.mail.smtp import SmtpSettings, SmtpTransport
from engine.mail.transport import Transport
from engine.project.folder import Project
from engine.scheduler.clock import (
    Clock,
    ScaledClock,
    SystemClock,
    clock_mark,
    describe_mark,
    marked_clock,
    real_time,
    scale_of,
)
from engine.scheduler.dispatch import Dispatcher
from engine.scheduler.funnels import LiveFunnels
from engine.scheduler.guard import Guard, Paused
from engine.scheduler.policy import RateLimiter, SendPolicy
from engine.scheduler.recording import Recorder, RetryRules
from engine.scheduler.releases import release_recorder
from engine.scheduler.sending import Sender, SendSettings
from engine.scheduler.stoplist import Stoplist
from engine.scheduler.throttle import DomainThrottle
from engine.scheduler.tick import Ticker
from engine.scheduler.warmup import Warmup
from engine.stats.alerts import post_alert
from engine.stats.metrics import Metrics
from engine.store import meta
from engine.store.db import DatabaseError, DbEngine, DbError, check_connection, make_engine, shown_url
from engine.store.migrate import upgrade
from engine.web.context import Web
from engine.web.limits import RateLimit
from engine.web.writer import GroupWriter

SIGNUP_LIMIT_PERIOD = 3600.0  # the signup limits are per hour


def make_transport(settings: Settings, project: Path) -> Transport:
    """The transport the settings choose (the outbox folder, or an SMTP server), signing with dkim_keys."""
    return signing(_plain_transport(settings, project), settings, project)


def signing(transport: Transport, settings: Settings, project: Path) -> Transport:
    """`transport`, DKIM-signing each message when dkim_keys has keys; ConfigError for a bad key.

    The keys are read here, once, at start: a key that cannot sign stops the start
    instead of sending mail that fails DMARC. The outbox is signed too, so its .eml
    files are what a receiver would get.
    """
    # dkim_published is funnel doctor's only: a missing file there does not stop the sending.
    keys = dkim_keys(settings, project)
    return SigningTransport(transport, Signer(keys)) if keys else transport


def _plain_transport(settings: Settings, project: Path) -> Transport:
    if settings.transport == "outbox":
        return OutboxTransport(project / settings.outbox_dir)
    return SmtpTransport(
        SmtpSettings(
            host=settings.smtp_host,
            port=settings.smtp_port_or_default,
            username=settings.smtp_username,
            password=settings.smtp_password,
            tls=settings.smtp_tls,
            timeout=settings.smtp_timeout,
            max_connections=settings.smtp_connections,
            cafile=settings.smtp_cafile,
        )
    )


def _alerter(url: str | None, base_url: str) -> Callable[[Paused], None] | None:
    """Post each pause to the alert webhook from a thread of its own: a slow receiver holds up nothing."""
    if url is None:
        return None

    def alert(paused: Paused) -> None:
        threading.Thread(target=post_alert, args=(url, paused.alert(base_url)), daemon=True).start()

    return alert


def _send_policy(settings: Settings, clock_scale: float = 1.0) -> SendPolicy:
    """The global rate, per-domain rates and warm-up the settings ask for; rates are per real second.

    With `workers` processes each gets 1/workers of every rate, so that one `funnel run` sends
    at most `send_rate` however many processes share the work (the warm-up counts in the
    database and needs no share).
    """
    share = 1.0 / settings.workers
    send_rate = settings.send_rate * share
    limiter = RateLimiter(send_rate, send_rate * settings.tick_seconds)
    # Per-domain buckets are per process: N daemons on one database send N times as fast
    # to a domain (docs/delivery.md). A domain rate at or above send_rate never binds.
    throttle = DomainThrottle(
        settings.domain_send_rate * share,
        {domain: rate * share for domain, rate in settings.domain_rate_overrides.items()},
        burst_seconds=settings.tick_seconds,
        ceiling=send_rate,
    )
    days, day_one = settings.warmup_days, settings.warmup_day_one
    warmup = Warmup(days, day_one) if days and day_one is not None else None
    return SendPolicy(limiter, throttle, warmup, clock_scale)


class ClockMismatch(EngineError):
    """The database was written under another kind of clock; the message says which and what to do."""


def open_database(
    settings: Settings, project: Path, migrate: bool = True, time_scale: float = 1.0
) -> DbEngine:
    """The database engine, reachable and (by default) migrated to the newest schema.

    `time_scale` picks the default file (database_url); whether the database's clock mark
    allows that clock is daemon_clock's question, asked once, as the daemon marks it.
    """
    url = database_url(settings, project, time_scale)
    _check_sqlite_folder(url)
    db_engine = make_engine(url)
    try:
        check_connection(db_engine)
        if migrate:
            upgrade(db_engine)
    except DbError as error:
        db_engine.dispose()
        reason = getattr(error, "orig", None) or error
        raise DatabaseError(
            f"cannot prepare the database {shown_url(db_engine)}: {reason}; check that it is writable "
            "(or FUNNEL_DATABASE_URL) and run funnel db upgrade"
        ) from error
    except EngineError:
        db_engine.dispose()
        raise
    return db_engine


def _check_sqlite_folder(url: str) -> None:
    """A SQLite file's folder must exist and be writable (SQLite writes its journal beside it)."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return
    path = Path(url[len("sqlite:///"):].split("?", 1)[0])
    folder = path.parent
    if not folder.is_dir():
        raise DatabaseError(
            f"cannot create the database {path}: the folder {folder} does not exist; create it "
            "or set FUNNEL_DATABASE_URL to a file in an existing folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise DatabaseError(
            f"cannot write the database {path}: permission denied; make {folder} and the file "
            "writable for this user or set FUNNEL_DATABASE_URL"
        )


def _refuse_other_clock(db_engine: DbEngine, mark: dict[str, Any] | None, time_scale: float) -> None:
    """Raise ClockMismatch when `mark` (the database's clock) is not a clock of `time_scale`."""
    if mark is None:
        return
    fast = mark.get("kind") == "fast"
    where = f"{shown_url(db_engine)}: this database was written by {describe_mark(mark)}"
    if fast and time_scale == 1.0:
        raise ClockMismatch(
            f"{where}; its times are in the future: run it with --time-scale {float(mark['scale']):g}, "
            "use another database (FUNNEL_DATABASE_URL) or delete it"
        )
    if not fast and time_scale != 1.0:
        raise ClockMismatch(
            f"{where}; a --time-scale {time_scale:g} demo would write the future into it: leave "
            "FUNNEL_DATABASE_URL unset (a demo uses funnel-demo.db) or point it at another database"
        )
    if fast and float(mark.get("scale", 0)) != time_scale:
        raise ClockMismatch(
            f"{where}; run with --time-scale {float(mark['scale']):g}, or use another database "
            "(FUNNEL_DATABASE_URL) or delete it"
        )


def command_clock(db_engine: DbEngine) -> Clock | None:
    """The clock a command writes with on a --time-scale demo's database: the demo's (commands
    read and write beside its daemon, in its future); None for any other database."""
    return marked_clock(meta.read(db_engine, "clock"))


def daemon_clock(db_engine: DbEngine, time_scale: float) -> Clock:
    """The clock of a daemon on `db_engine`: marks a new database with it, or joins the marked one.

    A fast clock starts where the database's first fast run started it, so every daemon on
    one database (and a restart) reads the same time and honours each other's leases.
    """
    wanted: Clock = ScaledClock(time_scale) if time_scale != 1.0 else SystemClock()
    try:
        if time_scale != 1.0 and meta.read(db_engine, "clock") is None and meta.has_sent_mail(db_engine):
            # Mail went out before databases recorded their clock (migration 0004): a real-time
            # run's, most likely. Marking it fast now would write the future into it.
            raise ClockMismatch(
                f"{shown_url(db_engine)}: this database holds mail sent before databases recorded "
                "their clock, by a real-time run most likely; a --time-scale demo would write the "
                "future into it: leave FUNNEL_DATABASE_URL unset (a demo uses funnel-demo.db) or "
                "point it at another database"
            )
        mark = meta.keep_first(db_engine, "clock", clock_mark(wanted), datetime.now(UTC))
    except DbError as error:
        raise DatabaseError(
            f"cannot mark the database {shown_url(db_engine)} with its clock: {error}; check that it is "
            "writable (or FUNNEL_DATABASE_URL) and start again"
        ) from error
    _refuse_other_clock(db_engine, mark, time_scale)  # another kind of clock marked it first
    if mark.get("kind") == "fast":
        return ScaledClock(time_scale, datetime.fromisoformat(str(mark["since"])))
    return wanted


@dataclass
class Daemon:
    """Everything `funnel run` runs, wired together."""

    settings: Settings
    project: Path
    db_engine: DbEngine
    live: LiveFunnels
    transport: Transport
    clock: Clock
    ticker: Ticker
    dispatcher: Dispatcher
    db_executor: ThreadPoolExecutor
    web: Web
    web_executor: ThreadPoolExecutor
    metrics: Metrics | None = None


def build_daemon(
    settings: Settings,
    project: Path,
    clock: Clock | None = None,
    transport: Transport | None = None,
    db_engine: DbEngine | None = None,
    time_scale: float = 1.0,
    guard: bool = True,
) -> Daemon:
    """Wire a daemon for `project`; tests hand in their own clock, transport or database.

    Without a clock, the daemon runs real time or `time_scale` times faster, as the
    database's clock mark allows (see daemon_clock). `guard=False` leaves the guardrail
    check to another process (the parent of `--workers N` runs it once for all).
    """
    db_engine = db_engine or open_database(settings, project, time_scale=time_scale)
    if clock is None:
        try:
            clock = daemon_clock(db_engine, time_scale)
        except EngineError:
            db_engine.dispose()
            raise
    live = LiveFunnels(Project(project), on_release=release_recorder(db_engine, clock, shown_url(db_engine)),
                       settle=settings.reload_settle_seconds)
    try:
        transport = make_transport(settings, project) if transport is None else signing(
            transport, settings, project)
    except EngineError:
        db_engine.dispose()
        raise
    # One thread does all database work: SQLite has one writer anyway, and the event
    # loop never blocks on a query.
    db_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="funnel-db")
    secret = secret_key(settings, project)
    stoplist = Stoplist(settings.lease_seconds * 2)
    lease = real_time(clock, settings.lease_seconds)  # real seconds, whatever the clock's speed
    metrics = Metrics(db_engine, clock.now, transport=lambda: transport.state)
    policy = _send_policy(settings, scale_of(clock))
    recorder = Recorder(db_engine, db_executor, stoplist, lease)
    send_settings = SendSettings(
        base_url=settings.links_url,
        secret=secret,
        concurrency=settings.smtp_connections if settings.transport == "smtp" else 4,
        retry=RetryRules(settings.retry_lifetime_delta, settings.resend_unknown),
        track_clicks=settings.track_clicks,
        track_opens=settings.track_opens,
    )
    sender = Sender(lambda: live.current, transport, clock, send_settings, policy, recorder, metrics)
    dispatcher = Dispatcher(
        db_engine, db_executor, clock, policy, sender, recorder, lease, settings.batch_size
    )
    checker = Guard(db_engine, lambda: live.current.plans, settings.guardrail_seconds,
                    alert=_alerter(settings.alert_webhook, settings.links_url)) if guard else None
    ticker = Ticker(
        db_engine, live, dispatcher, clock, db_executor, settings.batch_size, settings.message_id_domain,
        metrics=metrics, guard=checker,
    )
    # Web writes (signups, clicks, unsubscribes) have their own thread: a signup does not
    # wait behind a tick's batch.
    web_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="funnel-web-db")
    web = Web(
        db_engine=db_engine,
        plans=lambda: live.current.plans,
        clock=clock,
        secret=secret,
        link_lifetime=settings.link_lifetime_delta,
        writer=GroupWriter(db_engine, web_executor),
        stoplist=stoplist,
        ip_limit=RateLimit(settings.signup_limit_per_ip, SIGNUP_LIMIT_PERIOD),
        address_limit=RateLimit(settings.signup_limit_per_address, SIGNUP_LIMIT_PERIOD),
        api_key=settings.api_key,
        check_email_domain=settings.check_email_domain,
        metrics=metrics,
        admin_password=settings.admin_password,
        outbox_dir=project / settings.outbox_dir if settings.transport == "outbox" else None,
        base_url=settings.links_url,
        webhook_key=settings.webhook_key,
        renderer=lambda: live.current.renderer,
    )
    return Daemon(
        settings, project, db_engine, live, transport, clock, ticker, dispatcher, db_executor,
        web, web_executor, metrics,
    )
