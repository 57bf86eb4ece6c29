"""The baseline: pre-built emails pushed to smtp-sink with bare aiosmtplib over N open connections.

Run from the repository root: python -m bench.raw_baseline --messages 5000 --concurrency 8 16 64 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import aiosmtplib

from bench import machine
from bench.messages import Envelope, build_sample_messages
from bench.smtp_sink import read_counters, running_sink

__all__ = ["build_sample_messages", "main", "raw_send"]

_CLIENT_NAME = "bench.localhost"  # fixed EHLO name: the default calls socket.getfqdn(), a DNS lookup
_NOISY = 0.1  # cores used by other processes during a run that make its rate suspect
_TIMEOUT = 30.0  # seconds per SMTP command; a loopback sink answers in well under 1 ms


async def raw_send(
    port: int, messages: list[Envelope], concurrency: int, *, host: str = "127.0.0.1"
) -> float:
    """Send `messages` over `concurrency` open connections, each its share in turn; messages per second.

    The clock runs from the moment every connection has said EHLO until the last DATA is answered
    with 250: connecting and QUIT are left out, as a sender keeps its connections open.
    """
    if not messages or concurrency < 1:
        raise ValueError("raw_send needs at least one message and one connection")
    clients = [
        aiosmtplib.SMTP(
            hostname=host, port=port, start_tls=False, local_hostname=_CLIENT_NAME, timeout=_TIMEOUT
        )
        for _ in range(min(concurrency, len(messages)))
    ]
    try:
        await asyncio.gather(*(_open(client) for client in clients))
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for index, client in enumerate(clients):
                # Round-robin shares: with equal-sized messages every connection gets n/c +- 1.
                group.create_task(_send_share(client, messages[index :: len(clients)]))
        elapsed = time.perf_counter() - started
    finally:
        # return_exceptions: a failed QUIT must not hide the error that ended the sends.
        await asyncio.gather(*(_close(client) for client in clients), return_exceptions=True)
    return len(messages) / elapsed


async def _open(client: aiosmtplib.SMTP) -> None:
    await client.connect()
    await client.ehlo()


async def _send_share(client: aiosmtplib.SMTP, share: list[Envelope]) -> None:
    for sender, recipient, data in share:
        # MAIL, RCPT, DATA one after another: aiosmtplib does not pipeline, and raises unless each is 2xx.
        await client.sendmail(sender, [recipient], data)


async def _close(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except aiosmtplib.SMTPException:
        client.close()


def _runner(use_uvloop: bool) -> Callable[[Coroutine[Any, Any, float]], float]:
    if not use_uvloop:
        return asyncio.run
    import uvloop  # type: ignore[import-not-found]  # optional: not a dependency of the project

    return uvloop.run  # type: ignore[no-any-return]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_baseline", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="emails per run (default 5000)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64], help="open connections (64)")
    parser.add_argument("--runs", type=int, default=1, help="runs per concurrency (default 1)")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed messages sent first (1000)")
    parser.add_argument("--port", type=int, help="send to a sink already on 127.0.0.1:PORT")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (must be installed)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the baseline's emails/s for each concurrency and run; 1 if the sink lost messages."""
    args = _parse(argv)
    installed = importlib.util.find_spec("uvloop") is not None
    if args.uvloop and not installed:
        raise SystemExit("--uvloop: uvloop is not installed (pip install uvloop); it is no dependency")
    status = "installed" if installed else "not installed"
    loop_name = "uvloop" if args.uvloop else f"asyncio (uvloop {status})"
    messages = build_sample_messages(args.messages)
    size = sum(len(data) for _, _, data in messages) / len(messages)
    print(f"{len(messages)} messages of {size:,.0f} bytes on average; event loop: {loop_name}")
    with tempfile.TemporaryDirectory() as scratch:
        counters = None if args.port else Path(scratch) / "counters"
        sink = contextlib.nullcontext(args.port) if args.port else running_sink(counters_file=counters)
        with sink as port:
            if args.warmup:
                # The first run in a fresh process is ~35% slower (1,445 vs ~2,200/s at 8 connections
                # here): sockets, allocators and lazy imports warm up. A short untimed run absorbs it.
                _runner(args.uvloop)(raw_send(port, messages[: args.warmup], args.concurrency[0]))
            for concurrency in args.concurrency:
                rates = []
                for number in range(1, args.runs + 1):
                    before = read_counters(counters).messages if counters else 0
                    start = machine.sample()
                    rates.append(_runner(args.uvloop)(raw_send(port, messages, concurrency)))
                    others = machine.others_cores(start, machine.sample())
                    # On 2 cores the client takes ~1 and the sink ~0.3; others above 0.1 cost us.
                    note = "" if others < _NOISY else "  (noisy)"
                    print(
                        f"concurrency {concurrency:>4}  run {number}: {rates[-1]:8,.0f} emails/s"
                        f"   other processes: {others:.2f} cores{note}"
                    )
                    if counters and (lost := _lost(counters, before, len(messages))):
                        print(f"smtp-sink is {lost} messages short of {len(messages)}")
                        return 1
                if len(rates) > 1:
                    print(f"concurrency {concurrency:>4}  median: {statistics.median(rates):8,.0f} emails/s")
    return 0


def _lost(counters: Path, before: int, sent: int) -> int:
    # The sink updates its counters just after it answers "250": give it up to 1 s to catch up.
    deadline = time.monotonic() + 1.0
    while (counted := read_counters(counters).messages - before) < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    return sent - counted


if __name__ == "__main__":
    raise SystemExit(main())
