"""Postfix's `smtp-sink`, unpacked from Debian's postfix package, run on loopback as a throwaway server."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.debpkg import fetch_and_unpack, library_path, missing_libraries

LOG = logging.getLogger("funnel.bench")

DEFAULT_CACHE = Path(__file__).resolve().parent / ".cache"

# The libraries smtp-sink and postfix's own libpostfix-*.so link against, by the Debian 12 package
# that ships each. A stock Debian machine has them all; a slim image may lack a few, and then we
# unpack those packages beside postfix instead of installing them.
_LIBRARY_PACKAGES = {
    "libdb-5.3.so": "libdb5.3",
    "libnsl.so.2": "libnsl2",
    "libtirpc.so.3": "libtirpc3",
    "libicuuc.so.72": "libicu72",
    "libicudata.so.72": "libicu72",
    "libicui18n.so.72": "libicu72",
    "libstdc++.so.6": "libstdc++6",
    "libgcc_s.so.1": "libgcc-s1",
    "libgssapi_krb5.so.2": "libgssapi-krb5-2",
    "libkrb5.so.3": "libkrb5-3",
    "libk5crypto.so.3": "libk5crypto3",
    "libkrb5support.so.0": "libkrb5support0",
    "libkeyutils.so.1": "libkeyutils1",
    "libcom_err.so.2": "libcom-err2",
    "libsasl2.so.2": "libsasl2-2",
    "libssl.so.3": "libssl3",
    "libcrypto.so.3": "libssl3",
}

# ldd cannot see past a library it cannot find, so each round reveals one more level. The deepest
# chain is smtp-sink -> libnsl2 -> libtirpc3 -> libgssapi-krb5-2 -> libkrb5-3 -> libkeyutils1:
# 5 rounds that unpack and a 6th that finds nothing missing; 8 leaves room.
_UNPACK_ROUNDS = 8
_START_TIMEOUT = 5.0  # seconds for the sink to listen; it does so in ~10 ms here
_GREETING = b"220 smtp-sink "  # its banner with the default -h hostname
_STOP_TIMEOUT = 5.0  # seconds after SIGTERM before SIGKILL; it exits at once on SIGTERM


class SinkUnavailable(RuntimeError):
    """smtp-sink could not be unpacked or started; the message names the missing piece."""


@dataclass(frozen=True)
class SinkCounters:
    """smtp-sink's running counters (-c): sessions ended, QUITs seen, messages accepted."""

    sessions: int
    quits: int
    messages: int


def ensure_smtp_sink(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The path of a runnable smtp-sink under `cache_dir`, downloading and unpacking postfix once."""
    root = cache_dir / "root"
    binary = root / "usr/sbin/smtp-sink"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two benchmark processes must not unpack into one folder at once
        if not binary.exists():
            fetch_and_unpack(["postfix"], cache_dir / "debs", root)
        if not binary.exists():
            raise SinkUnavailable(f"the postfix package has no usr/sbin/smtp-sink (looked in {root})")
        for _ in range(_UNPACK_ROUNDS):
            missing = missing_libraries(binary, library_path(root))
            if not missing:
                return binary
            unknown = [name for name in missing if name not in _LIBRARY_PACKAGES]
            if unknown:
                raise SinkUnavailable(
                    f"smtp-sink needs {', '.join(unknown)}, which no known Debian package provides; "
                    f"install the package that ships it, or add it to _LIBRARY_PACKAGES in {__file__}"
                )
            fetch_and_unpack({_LIBRARY_PACKAGES[name] for name in missing}, cache_dir / "debs", root)
        raise SinkUnavailable(f"smtp-sink still misses {', '.join(missing)} after unpacking their packages")


def sink_command(
    binary: Path, host: str, port: int, backlog: int, max_sessions: int, count: bool
) -> list[str]:
    """The smtp-sink argv: accept and discard everything, announcing PIPELINING, 8BITMIME and ESMTP."""
    # No -8, -p or -e: those *stop* it announcing 8BITMIME, PIPELINING and ESMTP. No -w/-W delays.
    command = [str(binary)]
    if os.geteuid() == 0:
        # As root it refuses to start ("fatal: -u option is required if running as root"); it drops
        # to this user after binding. As non-root, -u fails: "fatal: initgroups: Operation not permitted".
        command += ["-u", "nobody"]
    if count:
        command.append("-c")  # "sess=N quit=N mesg=N\r" to stdout after every message and session
    command += ["-m", str(max_sessions), f"{host}:{port}", str(backlog)]
    return command


@contextlib.contextmanager
def running_sink(
    port: int | None = None,
    backlog: int = 256,
    *,
    host: str = "127.0.0.1",
    max_sessions: int = 256,
    counters_file: Path | None = None,
    cache_dir: Path = DEFAULT_CACHE,
) -> Iterator[int]:
    """Run smtp-sink on `host` for the duration of the block; yields the port it listens on.

    `max_sessions` caps simultaneous connections (smtp-sink's -m, default 256); more wait in the
    listen backlog. With `counters_file`, its running counters go there; read them with
    `read_counters`.
    """
    binary = ensure_smtp_sink(cache_dir)
    env = {**os.environ, "LD_LIBRARY_PATH": library_path(binary.parents[2])}
    with contextlib.ExitStack() as stack:
        stdout = stack.enter_context(counters_file.open("wb")) if counters_file else subprocess.DEVNULL
        # A file, not a pipe: nobody drains it while we send, and a full 64 KiB pipe would stall the sink.
        stderr = stack.enter_context(tempfile.TemporaryFile())
        chosen = port or _free_port(host)
        command = sink_command(binary, host, chosen, backlog, max_sessions, counters_file is not None)
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
        try:
            _wait_listening(process, host, chosen, stderr)
            LOG.info("bench.sink_started", extra={"fields": {"pid": process.pid, "command": command}})
            yield chosen
        finally:
            _stop(process)


def read_counters(counters_file: Path) -> SinkCounters:
    """The last counters smtp-sink wrote to `counters_file` (all zero before its first update)."""
    records = counters_file.read_bytes().decode("ascii").split("\r")
    last = next((record for record in reversed(records) if record.strip()), "")
    fields = dict(part.split("=", 1) for part in last.split())
    return SinkCounters(int(fields.get("sess", 0)), int(fields.get("quit", 0)), int(fields.get("mesg", 0)))


def _free_port(host: str) -> int:
    # The kernel picks an unused port; the sink binds it a few ms later. Another process could take
    # it in between, which _wait_listening then reports as the sink's own "bind" error.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _wait_listening(process: subprocess.Popen[bytes], host: str, port: int, stderr: IO[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SinkUnavailable(f"smtp-sink exited with {process.returncode}: {_read(stderr)}")
        try:
            # The greeting proves it is our sink and not another program on a port we were given.
            # The probe costs one empty session in the counters.
            with socket.create_connection((host, port), timeout=0.5) as probe:
                if probe.recv(64).startswith(_GREETING):
                    return
        except OSError:
            pass
        time.sleep(0.01)
    _stop(process)
    raise SinkUnavailable(
        f"smtp-sink did not listen on {host}:{port} within {_START_TIMEOUT} s: {_read(stderr)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # it has no state to flush; it dies on the default action
    try:
        process.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace").strip()
