"""`funnel doctor`'s checks: what a receiver will find in DNS for each sending domain, and the fix.

Gmail and Yahoo (2024) and Microsoft (2025: 550 5.7.515) refuse or bin bulk mail from a
domain without SPF, DKIM and DMARC; a domain without MX loses its replies and bounces;
and RFC 8058's one-click unsubscribe needs an https:// base_url. Each check says ok,
warn or fail, and a failure says exactly what to publish. DNS is asked through a
`Resolver`, so the checks run against a fake one in tests (and `dns.py`'s in real life).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import partial
from typing import Protocol

from engine.mail.dkimkeys import DkimKey, KeyType, parse_tags, txt_strings

SPF_LOOKUP_LIMIT = 10  # RFC 7208 §4.6.4: more DNS-querying terms than this is a permerror


class LookupFailed(Exception):
    """DNS did not answer (timeout, SERVFAIL): neither a record nor the certainty of none."""


class Resolver(Protocol):
    """The DNS questions the doctor asks; 'no such record' is an empty list, not an error."""

    def txt(self, name: str) -> list[str]:
        """The TXT records at `name`, each one's strings joined; LookupFailed if DNS does not answer."""
        ...  # pragma: no cover

    def mx(self, name: str) -> list[str]:
        """The MX hosts of `name` ('.' for a null MX); LookupFailed if DNS does not answer."""
        ...  # pragma: no cover


class Status(StrEnum):
    """How one check came out; any FAIL makes `funnel doctor` exit 1."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One line of the checklist: what was checked, how it came out, and what to do about it."""

    domain: str  # the sending domain, or "" for base_url
    name: str  # "SPF", "DKIM mail2026", "DMARC", "MX", "base_url"
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        """The check for --json."""
        return {k: str(v) for k, v in asdict(self).items()}


def diagnose(
    domains: Iterable[str],
    signing: Sequence[DkimKey],
    published: Sequence[DkimKey],
    base_url: str | None,
    resolver: Resolver,
) -> list[Check]:
    """Every check for every sending domain, then base_url's."""
    checks: list[Check] = []
    for domain in sorted({d.lower() for d in domains}):
        for name, check in (("SPF", _spf), ("DMARC", _dmarc), ("MX", _mx)):
            checks.append(_asked(domain, name, partial(check, domain, resolver)))
        checks.extend(_dkim(domain, signing, published, resolver))
    checks.append(_base_url(base_url))
    return checks


def _asked(domain: str, name: str, check: Callable[[], Check]) -> Check:
    """A check's result, or a FAIL saying DNS could not be asked."""
    try:
        return check()
    except LookupFailed as error:
        return Check(
            domain,
            name,
            Status.FAIL,
            f"DNS did not answer: {error}",
            "check this machine's network and resolver (or pass --nameserver) and run again",
        )


def _spf(domain: str, resolver: Resolver) -> Check:
    records = [r for r in resolver.txt(domain) if r.lower().startswith("v=spf1")]
    publish = (
        f'publish a TXT record at {domain}: "v=spf1 mx ~all", with "mx" replaced by what sends '
        'its mail: "ip4:ADDRESS" of this server, or your relay\'s "include:..."'
    )
    if not records:
        return Check(domain, "SPF", Status.FAIL, "no v=spf1 TXT record", publish)
    if len(records) > 1:
        return Check(
            domain,
            "SPF",
            Status.FAIL,
            f"{len(records)} v=spf1 records (receivers then fail SPF)",
            f"merge them into one TXT record at {domain}",
        )
    record = records[0]
    terms = record.lower().split()
    if "+all" in terms or "all" in terms:
        return Check(
            domain,
            "SPF",
            Status.WARN,
            f"'{record}' lets any server send as {domain}",
            "end the record with ~all (or -all) instead of +all",
        )
    if "?all" in terms:
        return Check(
            domain,
            "SPF",
            Status.WARN,
            f"'{record}' ends in ?all: it vouches for nobody",
            "end the record with ~all (or -all)",
        )
    lookups = _spf_lookups(record, resolver, {domain})
    if lookups > SPF_LOOKUP_LIMIT:
        return Check(
            domain,
            "SPF",
            Status.WARN,
            f"'{record}' needs {lookups} DNS lookups; receivers stop at {SPF_LOOKUP_LIMIT} and fail SPF",
            "replace some include: terms by the ip4:/ip6: ranges they hold",
        )
    return Check(domain, "SPF", Status.OK, record)


def _spf_lookups(record: str, resolver: Resolver, seen: set[str], depth: int = 0) -> int:
    """The DNS-querying terms of an SPF record, its include: and redirect= records counted in."""
    count = 0
    for term in record.lower().split()[1:]:
        term = term.lstrip("+-~?")
        mechanism, _, target = term.replace("=", ":", 1).partition(":")
        if mechanism in ("a", "mx", "ptr", "exists") or mechanism.startswith(("a/", "mx/")):
            count += 1
        elif mechanism in ("include", "redirect"):
            count += 1
            if target and target not in seen and depth < SPF_LOOKUP_LIMIT:
                seen.add(target)
                try:
                    nested = [r for r in resolver.txt(target) if r.lower().startswith("v=spf1")]
                except LookupFailed:
                    nested = []
                if nested:
                    count += _spf_lookups(nested[0], resolver, seen, depth + 1)
    return count


def _dmarc(domain: str, resolver: Resolver) -> Check:
    for name in dict.fromkeys((f"_dmarc.{domain}", f"_dmarc.{_org_domain(domain)}")):
        records = [r for r in resolver.txt(name) if r.lower().replace(" ", "").startswith("v=dmarc1")]
        if records:
            tags = parse_tags(records[0])
            policy = tags.get("p", "").lower()
            if policy not in ("none", "quarantine", "reject"):
                return Check(
                    domain,
                    "DMARC",
                    Status.FAIL,
                    f"{name}: '{records[0]}' has no valid p= tag",
                    f'publish "v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}" at {name}',
                )
            if policy == "none":
                return Check(
                    domain,
                    "DMARC",
                    Status.WARN,
                    f"{name}: p=none only watches; forged mail is still delivered",
                    f"once the reports show only your own mail, publish "
                    f"p=quarantine (then p=reject) at {name}",
                )
            return Check(domain, "DMARC", Status.OK, f"{name}: {records[0]}")
    return Check(
        domain,
        "DMARC",
        Status.FAIL,
        f"no v=DMARC1 TXT record at _dmarc.{domain}",
        f'publish a TXT record at _dmarc.{domain}: "v=DMARC1; p=quarantine; '
        f'rua=mailto:dmarc@{domain}" (p=none to only read the reports first)',
    )


def _mx(domain: str, resolver: Resolver) -> Check:
    for name in dict.fromkeys((domain, _org_domain(domain))):
        hosts = resolver.mx(name)
        if hosts and hosts != ["."]:
            return Check(domain, "MX", Status.OK, f"{name}: {', '.join(sorted(hosts))}")
    return Check(
        domain,
        "MX",
        Status.FAIL,
        f"neither {domain} nor {_org_domain(domain)} takes mail (no MX record)",
        f"publish an MX record for {domain} naming the server that receives its mail: "
        "replies and bounces to the sender's address go there",
    )


def _org_domain(domain: str) -> str:
    """The domain's last two labels: the organizational domain for most names (not co.uk-style ones)."""
    return ".".join(domain.split(".")[-2:])


def _dkim(
    domain: str, signing: Sequence[DkimKey], published: Sequence[DkimKey], resolver: Resolver
) -> list[Check]:
    own = [k for k in signing if k.domain == domain]
    checks: list[Check] = []
    if not own:
        checks.append(
            Check(
                domain,
                "DKIM",
                Status.FAIL,
                f"no key in dkim_keys signs mail from {domain}",
                f"run `funnel dkim keygen {domain}`, publish the record it prints and add "
                "its line to dkim_keys",
            )
        )
    elif all(k.type is KeyType.ED25519 for k in own):
        checks.append(
            Check(
                domain,
                "DKIM",
                Status.WARN,
                f"{domain} signs with Ed25519 only; many "
                "receivers do not check Ed25519 yet (RFC 8463) and see no signature",
                f"add an RSA key too: `funnel dkim keygen {domain} --type rsa`",
            )
        )
    for key in [*own, *(k for k in published if k.domain == domain)]:
        role = "" if key in own else " (published, not signing)"
        checks.append(_asked(domain, f"DKIM {key.selector}", partial(_dkim_key, key, role, resolver)))
    return checks


def _dkim_key(key: DkimKey, role: str, resolver: Resolver) -> Check:
    name = f"DKIM {key.selector}"
    publish = f"publish a TXT record at {key.record_name}: {quoted(key.record)}"
    records = [r for r in resolver.txt(key.record_name) if "p=" in r.replace(" ", "")]
    if not records:
        return Check(key.domain, name, Status.FAIL, f"no DKIM record at {key.record_name}{role}", publish)
    tags = parse_tags(records[0])
    if tags.get("k", "rsa").lower() != key.type.value or tags.get("p") != key.public:
        found = (
            "an empty p= (revoked)"
            if not tags.get("p")
            else (f"a {tags.get('k', 'rsa')} key that is not the configured one")
        )
        return Check(
            key.domain, name, Status.FAIL, f"{key.record_name} holds {found}{role}", f"replace it: {publish}"
        )
    return Check(key.domain, name, Status.OK, f"{key.record_name}: the {key.type.value} key{role} matches")


def _base_url(base_url: str | None) -> Check:
    fix = (
        'set base_url = "https://funnel.example.com" (the daemon\'s public address, behind TLS): '
        "RFC 8058 one-click unsubscribe, which Gmail and Yahoo require, needs https"
    )
    if not base_url:
        return Check(
            "", "base_url", Status.FAIL, "base_url is not set: links point at the daemon's local address", fix
        )
    if not base_url.lower().startswith("https://"):
        return Check("", "base_url", Status.FAIL, f"{base_url} is not https://", fix)
    return Check("", "base_url", Status.OK, base_url)


def quoted(value: str) -> str:
    """A TXT value as zone files and DNS panels take it: quoted strings of at most 255 characters."""
    return " ".join(f'"{part}"' for part in txt_strings(value))
