"""The daemon's listening socket, bound before anything else starts.

Binding first turns a port in use, a port the user may not open or an address the
machine does not have into one line and exit status 3, before the database is opened,
the scheduler started or `started` logged (issue 13).
"""

from __future__ import annotations

import errno
import socket

from engine.errors import EngineError


class CannotListen(EngineError):
    """The HTTP server cannot listen on the address asked for; the message says why and what to do."""


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: any free one), ready for uvicorn; CannotListen if not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise CannotListen(
            f"cannot listen on {host}: {error.strerror}; pass --host with an address of this machine "
            "(127.0.0.1, 0.0.0.0 for every interface) or set 'host'"
        ) from error
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restart may bind while the last run's connections are in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise CannotListen(_reason(error, host, port)) from error
    sock.set_inheritable(True)
    return sock


def _reason(error: OSError, host: str, port: int) -> str:
    where = f"port {port} on {host}"
    if error.errno == errno.EADDRINUSE:
        other = port + 1 if port < 65535 else port - 1
        return f"{where} is in use (another funnel run?): stop it or pass --port {other}"
    if error.errno == errno.EACCES:
        return (
            f"{where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE): "
            "pass --port 8000 and put a reverse proxy in front"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on {host}: this machine has no such address; pass --host 127.0.0.1 "
            "(or 0.0.0.0 for every interface)"
        )
    return f"cannot listen on {where}: {error.strerror}; pass another --host or --port"


def bound_port(sock: socket.socket) -> int:
    """The port `sock` listens on (the one the system picked for --port 0)."""
    return int(sock.getsockname()[1])
