"""The links of a live email, each carrying a signed token bound to that one delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.sequences.plan import EmailStep
from engine.tokens import sign


@dataclass(frozen=True)
class SignedLinks:
    """Links for the delivery whose Message-ID is `message_id` (its random part is the key)."""

    base_url: str
    secret: str
    message_id: str
    issued: datetime
    _unsubscribe: str | None = field(default=None, init=False, repr=False, compare=False)

    def _url(self, path: str, purpose: str, *values: str) -> str:
        token = sign(self.secret, purpose, [self.message_id, *values], self.issued)
        return f"{self.base_url.rstrip('/')}/{path}/{token}"

    def unsubscribe(self, email: EmailStep) -> str:
        """The unsubscribe page (GET) and one-click target (POST) for this recipient."""
        # Asked twice per message (the footer and the List-Unsubscribe header): sign once.
        if self._unsubscribe is None:
            object.__setattr__(self, "_unsubscribe", self._url("u", "unsubscribe"))
        assert self._unsubscribe is not None
        return self._unsubscribe

    def confirm(self) -> str:
        """The double opt-in confirmation page."""
        return self._url("confirm", "confirm")

    def answer(self, question: str, answer: str) -> str:
        """The page that records one survey answer."""
        return self._url("a", "answer", question, answer)
