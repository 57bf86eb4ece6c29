"""HTTP load at a fixed concurrency from client processes, for bench/signup.py.

Each client process keeps its share of the requests in flight over keep-alive
connections, one request after another on each, until a wall-clock deadline all the
processes share, and reports the latencies of the requests that started and finished
inside the window.

The default client writes HTTP/1.1 requests on asyncio streams and reads the status
line, the headers and a Content-Length body: about 0.05 ms of CPU a request. httpx's
AsyncClient (`client="httpx"`) costs about 2.3 ms a request at 32 connections on the
2-core development machine (against one bare FastAPI route: 4,900 requests/s with this
client, 380 with httpx), so with it the clients, not the server, set the bare figure.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import httpx

FUNNEL = "first-marathon"


@dataclass(frozen=True)
class Load:
    """What one client process does: `concurrency` connections posting to `path` until `end`."""

    base_url: str
    path: str
    concurrency: int
    begin: float  # time.time() when counting starts; before it is warm-up
    end: float
    body: str  # "none" (the bare route), "json" or "form"
    tag: str  # part of every address, so that each one of the whole run is new
    client: str = "raw"


@dataclass
class Measured:
    """Requests completed inside the window, their latencies, every status seen, the clients' CPU."""

    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    cpu_seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Requests per second inside the window."""
        return len(self.latencies_ms) / self.seconds


def payload(load: Load, n: int) -> tuple[str, bytes, dict[str, str]]:
    """(content type, body, extra headers) of request `n`: a new address each time."""
    if load.body == "none":
        return "", b"", {}
    fields = {"email": f"runner-{load.tag}-{n}@example.com", "name": f"Runner {n}", "funnel": FUNNEL}
    if load.body == "form":
        return "application/x-www-form-urlencoded", urlencode(fields).encode(), {"Accept": "text/html"}
    return "application/json", json.dumps(fields).encode(), {}


class _RawConnection:
    """One keep-alive HTTP/1.1 connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, content_type: str, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head[9:12])
        length, close = 0, False
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                raise RuntimeError("the server sent a chunked answer; this client reads Content-Length only")
            elif name == "connection" and "close" in value:
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _run(load: Load, post: Callable[[int, int], Awaitable[int]]) -> tuple[list[float], Counter[int]]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def worker(index: int) -> None:
        n = 0
        while time.time() < load.end:
            n += 1
            started, clock = time.time(), time.perf_counter()
            status = await post(index, index * 10_000_000 + n)
            took = time.perf_counter() - clock
            statuses[status] += 1
            # Requests in flight at `end` are finished (a cancelled signup may still be
            # written, and the count check needs its answer), not counted.
            if started >= load.begin and started + took <= load.end:
                latencies.append(took * 1000)

    await asyncio.gather(*(worker(i) for i in range(load.concurrency)))
    return latencies, statuses


async def _drive(load: Load) -> tuple[list[float], Counter[int]]:
    if load.client == "httpx":
        limits = httpx.Limits(max_connections=load.concurrency, max_keepalive_connections=load.concurrency)
        async with httpx.AsyncClient(base_url=load.base_url, limits=limits, timeout=60) as client:

            async def post_httpx(_: int, n: int) -> int:
                content_type, body, headers = payload(load, n)
                if content_type:
                    headers = {**headers, "Content-Type": content_type}
                return (await client.post(load.path, content=body, headers=headers)).status_code

            return await _run(load, post_httpx)
    parts = urlsplit(load.base_url)
    connections = [_RawConnection(parts.hostname or "127.0.0.1", parts.port or 80)
                   for _ in range(load.concurrency)]

    async def post_raw(index: int, n: int) -> int:
        return await asyncio.wait_for(connections[index].post(load.path, *payload(load, n)), 60)

    try:
        return await _run(load, post_raw)
    finally:
        for connection in connections:
            await connection.close()


def client_process(load: Load) -> tuple[list[float], Counter[int], float]:
    """Run in a client process: (latencies in ms, statuses, its CPU seconds)."""
    began = time.process_time()
    latencies, statuses = asyncio.run(_drive(load))
    return latencies, statuses, time.process_time() - began


def measure(pool: Executor, base_url: str, path: str, body: str, concurrency: int, processes: int,
            seconds: float, warmup: float, tag: str, client: str = "raw") -> Measured:
    """`concurrency` requests in flight, split over `processes` client processes of `pool`."""
    begin = time.time() + warmup
    shares = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    loads = [Load(base_url, path, share, begin, begin + seconds, body, f"{tag}-{i}", client)
             for i, share in enumerate(shares)]
    measured = Measured(seconds)
    for latencies, statuses, cpu in pool.map(client_process, loads):
        measured.latencies_ms += latencies
        measured.statuses += statuses
        measured.cpu_seconds += cpu
    return measured
