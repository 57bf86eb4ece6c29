"""The one seam every message leaves through, and what a delivery attempt can come to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol


@dataclass(frozen=True)
class Outgoing:
    """One message ready to leave: the envelope, passed explicitly, and the RFC 5322 bytes."""

    message_id: str  # without angle brackets, e.g. "3f2a...@funnel.example.com"
    mail_from: str  # envelope sender (bare address)
    rcpt_to: str  # envelope recipient (bare address); never taken from the headers
    data: bytes  # the whole message, CRLF line endings
    # Every line of `data` ends in CRLF and no CR or LF stands alone (build_message's bytes):
    # the SMTP transport then only doubles leading dots instead of rewriting every line end.
    crlf: bool = False


class Outcome(StrEnum):
    """What became of one attempt; decides what the store records and whether to retry."""

    SENT = "sent"  # 2xx after the data: the server took responsibility
    RETRY = "retry"  # 4xx, or no connection at all: nothing was delivered, try again later
    BOUNCED = "bounced"  # 5xx at RCPT: the address does not exist; suppress it
    REJECTED = "rejected"  # 5xx at MAIL FROM or after the data: this message failed, the address may be fine
    UNKNOWN = "unknown"  # the connection broke after the data went out: it may have been delivered


@dataclass(frozen=True)
class Result:
    """The outcome of one attempt with the server's own words."""

    outcome: Outcome
    code: int | None = None
    reply: str = ""
    domain_wide: bool = False  # 421: the server refuses this destination for a while


@dataclass(frozen=True)
class TransportState:
    """Whether messages can leave: ok, or degraded since `since` (real time) with the last error."""

    status: Literal["ok", "degraded"] = "ok"
    error: str = ""
    since: datetime | None = None

    @property
    def ok(self) -> bool:
        """Whether the transport is ok."""
        return self.status == "ok"


OK = TransportState()


class Transport(Protocol):
    """Delivers messages; implementations: OutboxTransport, SmtpTransport, MemoryTransport."""

    @property
    def state(self) -> TransportState:
        """Ok, or degraded while the server cannot be reached (/healthz and /metrics show it)."""
        ...  # pragma: no cover

    async def send(self, message: Outgoing) -> Result:
        """Try once to deliver `message`; never raises for a delivery problem, returns a Result."""
        ...  # pragma: no cover

    async def check(self) -> None:
        """While degraded, see whether the server can be reached again (called at each tick; cheap)."""
        ...  # pragma: no cover

    async def close(self) -> None:
        """Close pooled connections; sending after close is an error."""
        ...  # pragma: no cover
