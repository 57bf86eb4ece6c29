"""A transport that writes each message to a folder as an .eml file, for development and previews."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path

from engine.mail.transport import OK, Outcome, Outgoing, Result, TransportState

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9@._+-]")  # '/' and '\' (path tricks) among them


class OutboxTransport:
    """Writes `<directory>/<message id>.eml` atomically; a re-send of the same id overwrites it."""

    # Always ok: there is no server to lose. A disk problem is the message's RETRY, and the
    # folder's own monitoring (disk space) covers the rest.
    state: TransportState = OK

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._closed = False

    async def send(self, message: Outgoing) -> Result:
        """Write the message; a disk problem is a RETRY, never an exception."""
        if self._closed:
            raise RuntimeError("OutboxTransport.send() after close()")
        path = self.directory / f"{safe_file_stem(message.message_id)}.eml"
        try:
            # In a thread: the fsyncs take milliseconds the event loop should not wait for.
            await asyncio.to_thread(_write_atomically, path, message.data)
        except OSError as error:
            return Result(Outcome.RETRY, None, f"cannot write {path}: {error}")
        return Result(Outcome.SENT, 250, f"written to {path}")

    async def check(self) -> None:
        """Nothing to check: always ok."""

    async def close(self) -> None:
        """Nothing is held open; later sends are refused like the other transports'."""
        self._closed = True


def safe_file_stem(message_id: str) -> str:
    """A file name for a Message-ID: itself when harmless, else cleaned and tagged with a hash."""
    stem = _UNSAFE_NAME.sub("_", message_id)
    if stem == message_id and not stem.startswith("."):
        return stem
    # The hash keeps two ids that clean to the same text ("a/b@x", "a_b@x") in two files.
    return stem.lstrip(".") + "-" + hashlib.sha256(message_id.encode()).hexdigest()[:12]


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # the bytes on disk before the name points at them
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
