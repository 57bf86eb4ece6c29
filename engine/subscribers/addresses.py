"""Is this an email address we take? The one check for every way in: signup, the admin API, CSV import.

An address is stored and later handed to an SMTP server, which may read it differently
from us. So besides the syntax (email-validator, then the SMTP-line check of
engine/mail/message.py), forms that mail software is known to *decode* or *route* are
refused, each with its reason:

- RFC 2047 encoded words (`=?utf-8?q?a=0D=0A?=@example.com`): a server that decodes them
  turned one into a recipient holding CR LF (issue 13, finding 12);
- the percent hack (`a%evil.test@example.com`): relays that honour it send to
  `a@evil.test`, a host the address does not name;
- bang paths (`host!user@example.com`): UUCP routing, still honoured by some sendmail
  set-ups, routes through `host`;
- source routes (`@relay:user@example.com`) and quoted local parts (`"a b"@...`), whose
  quotes can carry spaces and control characters.

None of them is a mailbox a person types into a form; refusing them loses no one.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from engine.mail.message import check_address

MAX_LENGTH = 254  # RFC 5321 §4.5.3.1.3: a forward path holds at most 256 octets with its <>
_FIX = "write the plain address, like ann@example.com"


def address_problem(value: str) -> str | None:
    """Why `value` is an address mail software could route or decode into another one, or None."""
    if value.startswith("@"):
        return (f"'{value[:80]}' starts with a source route (@host:...), which sends the mail through "
                f"another host; {_FIX}")
    local = value.rpartition("@")[0]
    if local.startswith('"'):
        return (f"'{value[:80]}' has a quoted part before '@', which can hide spaces and control "
                f"characters; {_FIX}")
    if "=?" in local or "?=" in local:
        return (f"'{value[:80]}' holds an encoded word (=?...?=), which mail servers may decode into "
                f"other characters, line breaks included; {_FIX}")
    if "%" in local:
        return (f"'{value[:80]}' holds '%' before '@' (the percent hack), which some servers read as "
                f"'send on to the host after %'; {_FIX}")
    if "!" in local:
        return (f"'{value[:80]}' holds '!' before '@' (a UUCP bang path), which some servers read as "
                f"'send on to the host before !'; {_FIX}")
    return None


def check_email(value: str, check_domain: bool = False) -> tuple[str | None, str | None]:
    """(the normalised address, None) or (None, what is wrong with it and what to write).

    `check_domain` also looks up the domain's MX record (DNS: call it off the event loop).
    """
    if len(value) > MAX_LENGTH:
        return None, f"is too long for an email address (at most {MAX_LENGTH} characters); {_FIX}"
    problem = address_problem(value)
    if problem:
        return None, problem
    try:
        checked = validate_email(value, check_deliverability=check_domain, allow_smtputf8=False)
        address = check_address(checked.normalized)
    except EmailNotValidError as error:
        return None, f"'{value[:80]}' is not an email address ({str(error).rstrip('.')}); {_FIX}"
    except ValueError as error:  # check_address: what an SMTP line cannot carry
        return None, f"{error}; {_FIX}"
    return address, None
