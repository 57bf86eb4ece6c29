"""The doctor's DNS questions through dnspython: the one module that imports it."""

from __future__ import annotations

import dns.exception
import dns.resolver

from engine.mail.doctor import LookupFailed

_NO_RECORD = (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer)


class DnsResolver:
    """Asks the system's resolver, or `nameserver` (ADDRESS or ADDRESS:PORT) when given."""

    def __init__(self, nameserver: str | None = None, timeout: float = 3.0) -> None:
        self._resolver = dns.resolver.Resolver(configure=nameserver is None)
        if nameserver is not None:
            # ADDRESS:PORT, or a bare address (an IPv6 one holds colons of its own)
            one_colon = nameserver.count(":") == 1
            address, _, port = nameserver.rpartition(":") if one_colon else (nameserver, "", "")
            self._resolver.nameservers = [address]
            if port:
                self._resolver.port = int(port)
        self._resolver.lifetime = timeout

    def txt(self, name: str) -> list[str]:
        """The TXT records at `name`, each one's strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
        answer = self._ask(name, "TXT")
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]  # type: ignore[attr-defined]

    def mx(self, name: str) -> list[str]:
        """The MX hosts of `name`, without the final dot ('.' for a null MX, RFC 7505)."""
        return [r.exchange.to_text(omit_final_dot=True) or "." for r in self._ask(name, "MX")]  # type: ignore[attr-defined]

    def _ask(self, name: str, kind: str) -> list[object]:
        try:
            return list(self._resolver.resolve(name, kind, search=False))
        except _NO_RECORD:
            return []
        except dns.exception.Timeout:
            raise LookupFailed(f"{kind} {name}: no answer within {self._resolver.lifetime:g} s") from None
        except dns.exception.DNSException as error:
            raise LookupFailed(f"{kind} {name}: {str(error)[:200]}") from None
