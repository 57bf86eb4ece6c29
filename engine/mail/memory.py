"""A transport that keeps messages in memory: for unit tests, simulations and previews."""

from __future__ import annotations

from collections.abc import Callable

from engine.mail.transport import OK, Outcome, Outgoing, Result, TransportState


class MemoryTransport:
    """Records every attempt; `script` picks each attempt's Result (SENT 250 by default)."""

    def __init__(self, script: Callable[[Outgoing], Result] | None = None) -> None:
        self.script = script
        self.attempts: list[tuple[Outgoing, Result]] = []
        self.closed = False
        self.state: TransportState = OK  # a test may set it, as SmtpTransport's changes

    @property
    def sent(self) -> list[Outgoing]:
        """The messages whose attempt came to SENT, in order."""
        return [message for message, result in self.attempts if result.outcome is Outcome.SENT]

    async def send(self, message: Outgoing) -> Result:
        """Record the attempt and return the scripted Result."""
        if self.closed:
            raise RuntimeError("MemoryTransport.send() after close()")
        result = self.script(message) if self.script else Result(Outcome.SENT, 250, "kept in memory")
        self.attempts.append((message, result))
        return result

    async def check(self) -> None:
        """Nothing to reach: the state is what a test set."""

    async def close(self) -> None:
        """Refuse later sends, as a real transport would."""
        self.closed = True
