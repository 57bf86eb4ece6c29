"""The links of a live email, each carrying a signed token bound to that one delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.mail.tokens import MAX_TOKEN_CHARS, sign
from engine.sequences.plan import EmailStep


@dataclass(frozen=True)
class SignedLinks:
    """Links for the delivery whose Message-ID (`random@domain`, no angle brackets) is `message_id`.

    The full Message-ID is the key: it is the delivery's unique column, so the web side
    finds the delivery a token names with one indexed lookup.
    """

    base_url: str
    secret: str
    message_id: str
    issued: datetime
    _unsubscribe: str | None = field(default=None, init=False, repr=False, compare=False)

    def _token(self, purpose: str, *values: str) -> str:
        return sign(self.secret, purpose, [self.message_id, *values], self.issued)

    def _url(self, path: str, token: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path}/{token}"

    def unsubscribe(self, email: EmailStep) -> str:
        """The unsubscribe page (GET) and one-click target (POST) for this recipient."""
        # Asked twice per message (the footer and the List-Unsubscribe header): sign once.
        if self._unsubscribe is None:
            object.__setattr__(self, "_unsubscribe", self._url("u", self._token("unsubscribe")))
        assert self._unsubscribe is not None
        return self._unsubscribe

    def confirm(self) -> str:
        """The double opt-in confirmation page."""
        return self._url("confirm", self._token("confirm"))

    def answer(self, question: str, answer: str) -> str:
        """The page that records one survey answer."""
        return self._url("a", self._token("answer", question, answer))

    def click(self, url: str) -> str:
        """The redirect that counts a click and sends the browser on to `url`.

        `url` itself when its token would be longer than verify() accepts: about 1,480
        ASCII characters with a 60-character Message-ID, fewer when JSON writes
        characters of the URL as \\uXXXX escapes (non-ASCII, controls).
        """
        token = self._token("click", url)
        return url if len(token) > MAX_TOKEN_CHARS else self._url("c", token)

    def pixel(self) -> str:
        """The 1x1 image whose fetch counts an open."""
        return self._url("o", self._token("open"))
