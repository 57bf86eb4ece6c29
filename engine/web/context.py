"""What every web route needs from the daemon, built once by `funnel run`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from starlette.requests import Request

from engine.mail.render import Renderer
from engine.scheduler.clock import Clock
from engine.scheduler.stoplist import Stoplist
from engine.sequences.plan import Plan
from engine.stats.metrics import Metrics
from engine.store.db import DbEngine
from engine.web.limits import RateLimit
from engine.web.writer import GroupWriter


@dataclass(frozen=True)
class Web:
    """The daemon's parts the HTTP side uses."""

    db_engine: DbEngine
    plans: Callable[[], Mapping[str, Plan]]  # the live funnels, reloaded as files change
    clock: Clock  # the daemon's clock: events are recorded in the time the scheduler runs in
    secret: str
    link_lifetime: timedelta
    writer: GroupWriter
    stoplist: Stoplist
    ip_limit: RateLimit
    address_limit: RateLimit
    api_key: str | None
    check_email_domain: bool = False
    metrics: Metrics | None = None  # signup counts for /metrics
    admin_password: str | None = None  # the dashboard's login; None: api_key, else the dashboard is off
    outbox_dir: Path | None = None  # the outbox transport's folder, shown in the dashboard; None: SMTP
    base_url: str = ""  # https: the dashboard's session cookie is Secure
    webhook_key: str | None = None  # Basic-auth password of /webhooks/ (never the API key)
    renderer: Callable[[], Renderer] | None = None  # the live templates: the dashboard's previews
    # Opens and clicks already counted in the last hour: a proxy or a bot fetching one
    # link again and again costs no database write.
    seen_links: RateLimit = field(default_factory=lambda: RateLimit(1, 3600.0))


def client_ip(request: Request) -> str:
    """The caller's address (uvicorn already applied X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"
