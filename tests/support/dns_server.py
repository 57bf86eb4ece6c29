"""A real DNS server on loopback (UDP, dnspython's wire format) answering from a dict, for `funnel doctor`.

    zone = {("example.com", "TXT"): ["v=spf1 mx ~all"], ("example.com", "MX"): ["10 mx.example.com."]}
    with running_dns(zone) as address:  # "127.0.0.1:PORT"
        ...  # funnel doctor --nameserver ADDRESS

A TXT value longer than 255 characters is sent as several strings, as a real zone holds it;
a name with no records answers NXDOMAIN.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Zone = Mapping[tuple[str, str], Sequence[str]]


def _rdata(kind: str, value: str) -> str:
    if kind != "TXT":
        return value
    parts = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)


def _answer(zone: Zone, wire: bytes) -> bytes:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    kind = dns.rdatatype.to_text(question.rdtype)
    values = zone.get((name, kind), [])
    if values:
        response.answer.append(
            dns.rrset.from_text_list(
                question.name, 300, dns.rdataclass.IN, kind, [_rdata(kind, v) for v in values]
            )
        )
    elif not any(n == name for n, _ in zone):
        response.set_rcode(dns.rcode.NXDOMAIN)
    return response.to_wire()


@contextmanager
def running_dns(zone: Zone) -> Iterator[str]:
    """Serve `zone` on a loopback UDP port until the block ends; yields "127.0.0.1:PORT"."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            sock.sendto(_answer(zone, wire), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        sock.close()
