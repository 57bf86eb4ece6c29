"""Reading a signup post: the body in any of three encodings, checked field by field.

Everything here is pure except `read_body` (which reads at most MAX_BODY bytes): the
result is a `Signup` ready for `engine.subscribers.leads.add_lead`, or a `Refusal` with one message
per field and the HTTP status to answer. Nothing is written before a post passes.
"""

from __future__ import annotations

import re
import unicodedata
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import UploadFile
from starlette.requests import Request

from engine.errors import did_you_mean
from engine.sequences.languages import is_tag
from engine.sequences.plan import Plan
from engine.subscribers.addresses import MAX_LENGTH, check_email
from engine.subscribers.leads import UTM_KEYS, Lead, answer_problems
from engine.web.body import (
    BodyCut,
    BodyTooLarge,
    DuplicateKeys,
    duplicate_key_problems,
    load_json,
    read_capped,
    unique_keys,
)

MAX_BODY = 64 * 1024  # a signup form is a few hundred bytes
MAX_FIELDS = 60  # keys in one post
MAX_CUSTOM_FIELDS = 30
HONEYPOT = "website"  # hidden by `funnel form`; people leave it empty, form-filling bots do not
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
JSON_TYPE = "application/json"

# Field name -> (most characters, what it is), for the plain text fields.
TEXT_FIELDS: dict[str, tuple[int, str]] = {
    "name": (100, "the person's name"),
    "first_name": (100, "the person's first name, as templates greet them"),
    "last_name": (100, "the person's last name"),
    "funnel": (100, "the funnel's id"),
    "magnet": (100, "a lead magnet's id"),
    "locale": (35, "a language tag like en or pt-BR"),
    "timezone": (64, "an IANA time zone like Europe/Budapest"),
    "source": (100, "where the signup came from, like homepage"),
    "redirect": (2000, "a thank-you page on the funnel's allowed_redirects"),
    "form": (200, "a name for the form, kept with the consent record"),
    **{key: (200, "a UTM value") for key in UTM_KEYS},
}
RESERVED = frozenset({"email", HONEYPOT, *TEXT_FIELDS})
_KEY = re.compile(r"[A-Za-z0-9_.-]{1,50}")
_BRACKETED = re.compile(r"(fields|answers)\[([^\]]*)\]")


@dataclass(frozen=True)
class Refusal(Exception):
    """Why a post is refused: the status and a message per field ('body' for the whole post)."""

    status: int
    problems: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Signup:
    """A signup post that passed every check."""

    plan: Plan
    lead: Lead
    redirect: str | None
    form: str | None
    trapped: bool  # the honeypot was filled: answer as usual, write nothing
    fields_given: Mapping[str, str] = field(default_factory=dict)


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 beyond MAX_BODY bytes (without reading the rest)."""
    try:
        return await read_capped(request, MAX_BODY)
    except BodyTooLarge as error:
        raise Refusal(413, (("body", f"a signup post must be under {MAX_BODY // 1024} KiB"),)) from error
    except BodyCut as error:
        raise Refusal(400, (("body", "the client went away before sending the whole post"),)) from error


def media_type(request: Request) -> str:
    """The post's media type without parameters, lowercased."""
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


async def parse_values(request: Request, body: bytes) -> dict[str, Any]:
    """The post's fields, from a URL-encoded or multipart form or a JSON object."""
    kind = media_type(request)
    if kind == JSON_TYPE:
        return _json_values(body)
    if kind == FORM_TYPES[0]:
        return _urlencoded_values(body)
    if kind == FORM_TYPES[1]:
        return await _multipart_values(request)
    raise Refusal(
        415,
        (("body", f"send the form as {FORM_TYPES[0]}, {FORM_TYPES[1]} or {JSON_TYPE}; "
                  f"got '{kind or 'no Content-Type'}'"),),
    )


def _json_values(body: bytes) -> dict[str, Any]:
    try:
        data = load_json(body)
    except DuplicateKeys as error:
        raise _repeated(error) from error
    except (ValueError, RecursionError) as error:
        raise Refusal(422, (("body", f"the body is not valid JSON: {error}"[:200]),)) from error
    if not isinstance(data, dict):
        raise Refusal(422, (("body", 'the JSON body must be an object like {"email": "ann@example.com"}'),))
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key, value in data.items():
        if key in ("fields", "answers"):
            if not isinstance(value, dict):
                problems.append((key, f"'{key}' must be an object of names to texts"))
                continue
            for name, inner in value.items():
                values[f"{key}[{name}]"] = inner
        else:
            values[key] = value
    if len(values) > MAX_FIELDS:  # a form's cap, counted as a form's: fields[x] is one field
        raise Refusal(422, (("body", f"a signup form has at most {MAX_FIELDS} fields"),))
    for key, value in list(values.items()):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value is None:
            problems.append((key, "must be text"))
        elif not isinstance(value, str):
            values[key] = str(value)
    if problems:
        raise Refusal(422, tuple(problems))
    return values


def _urlencoded_values(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except UnicodeDecodeError as error:
        raise Refusal(422, (("body", "the form must be sent as UTF-8 (add accept-charset=\"UTF-8\" "
                                     "to the <form> tag)"),)) from error
    except ValueError as error:
        raise Refusal(422, (("body", f"a signup form has at most {MAX_FIELDS} fields"),)) from error
    return _unique(pairs)


async def _multipart_values(request: Request) -> dict[str, Any]:
    try:
        form = await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=MAX_BODY)
    except Exception as error:  # starlette raises HTTPException or MultiPartException by version
        detail = getattr(error, "detail", None) or getattr(error, "message", None) or str(error)
        raise Refusal(422, (("body", f"the multipart form does not parse: {detail}"[:300]),)) from error
    pairs = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):  # pragma: no cover - max_files=0 refuses files first
            raise Refusal(422, ((key, "files are not accepted"),))
        pairs.append((key, value))
    return _unique(pairs)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    try:
        return unique_keys(pairs)
    except DuplicateKeys as error:
        raise _repeated(error) from error


def _repeated(error: DuplicateKeys) -> Refusal:
    """The 422 for a field sent twice, in a form or a JSON body alike."""
    return Refusal(422, tuple((p["loc"][1], p["msg"]) for p in duplicate_key_problems(error)))


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def text_problem(value: str, limit: int) -> str | None:
    """What is wrong with one line of text a stranger sent, or None."""
    if len(value) > limit:
        return f"is {len(value)} characters long; at most {limit} are allowed"
    if value.isascii() and value.isprintable():  # most posts: no control character, no surrogate
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains text that is not valid Unicode"
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in value if c != "\t"):
        return "contains control characters or line breaks; send one line of text"
    return None


def check_signup(values: Mapping[str, Any], plans: Mapping[str, Plan], check_domain: bool = False) -> Signup:
    """The signup in `values`, or a Refusal: 404 for an unknown funnel, 422 for anything else wrong."""
    problems: list[tuple[str, str]] = []
    texts: dict[str, str] = {}
    for key, value in values.items():
        limit = TEXT_FIELDS.get(key, (2000, ""))[0] if key != "email" else MAX_LENGTH
        problem = text_problem(value, limit if key in RESERVED else 500)
        if problem:
            problems.append((key[:100], problem))
        else:
            texts[key] = value.strip()
    if "funnel" in values and "funnel" not in texts:  # the funnel's own value was refused above
        raise Refusal(422, tuple(problems))
    plan = _plan(texts.get("funnel", ""), plans)  # raises 404 or 422 by itself: nothing else matters then
    email = texts.get("email", "")
    address = None
    if not email:
        if "email" not in dict(problems):
            problems.append(("email", "is required: the address to send to"))
    else:
        address, problem = check_email(email, check_domain)
        if problem:
            problems.append(("email", problem))
    custom, answers = _custom_and_answers(texts, plan, problems)
    if len(custom) > MAX_CUSTOM_FIELDS:
        problems.append(("fields", f"{len(custom)} custom fields; at most {MAX_CUSTOM_FIELDS} are allowed"))
    answers = {q: a for q, a in answers.items() if a}  # an untouched <select> sends ""
    problems.extend(("answers", p) for p in answer_problems(plan, answers))
    magnet = texts.get("magnet") or None
    if magnet and magnet not in {m.id for m in plan.magnets}:
        problems.append(("magnet", f"'{magnet}' is not a lead magnet of funnel '{plan.funnel}'; "
                         + did_you_mean(magnet, [m.id for m in plan.magnets], "leave it out")))
    locale = texts.get("locale") or None
    if locale and not is_tag(locale):
        problems.append(("locale", f"'{locale}' is not a language tag; write one like en, de or pt-BR"))
    timezone = texts.get("timezone") or None
    if timezone and timezone not in _zones():
        problems.append(("timezone", f"'{timezone}' is not a time zone; "
                         + did_you_mean(timezone, sorted(_zones()), "write one like Europe/Budapest")))
    redirect = texts.get("redirect") or None
    if redirect and not redirect_allowed(plan, redirect):
        problems.append(("redirect", f"'{redirect[:200]}' is not on funnel '{plan.funnel}''s "
                         "signup.allowed_redirects; add it there or leave 'redirect' out"))
    if problems:
        raise Refusal(422, tuple(problems))
    assert address is not None
    lead = Lead(
        email=address,
        name=texts.get("name", ""),
        first_name=texts.get("first_name", ""),
        last_name=texts.get("last_name", ""),
        locale=locale,
        timezone=timezone,
        source=texts.get("source") or None,
        utm={k: texts[k] for k in UTM_KEYS if texts.get(k)},
        fields=custom,
        magnet=magnet,
        answers=answers,
    )
    return Signup(plan, lead, redirect, texts.get("form") or None, bool(texts.get(HONEYPOT)))


def _custom_and_answers(
    texts: Mapping[str, str], plan: Plan, problems: list[tuple[str, str]]
) -> tuple[dict[str, str], dict[str, str]]:
    """The custom fields and survey answers among the posted values; adds a problem per unknown key."""
    custom: dict[str, str] = {}
    answers: dict[str, str] = {}
    questions = {q.id for q in plan.survey.questions} if plan.survey else set()
    for key, value in texts.items():
        if key in RESERVED:
            continue
        if len(key) > 100:
            problems.append((key[:100], "is not a signup field (a name that long never is)"))
            continue
        bracketed = _BRACKETED.fullmatch(key)
        if bracketed and bracketed.group(1) == "fields":
            name = bracketed.group(2)
            if not _KEY.fullmatch(name):
                problems.append((key, "a field name is 1 to 50 letters, digits, '_', '.' or '-'"))
            else:
                custom[name] = value
        elif bracketed:
            answers[bracketed.group(2)] = value
        elif key in questions:
            answers[key] = value
        elif key.startswith("_") or key in ("submit", "consent"):
            continue  # a CMS's nonce, the button's name, the consent checkbox: not ours to keep
        else:
            options = sorted(RESERVED - {HONEYPOT} | questions)
            problems.append((key, "is not a signup field; "
                             + did_you_mean(key, options, "put your own data in fields[...]")))
    return custom, answers


def _plan(name: str, plans: Mapping[str, Plan]) -> Plan:
    if not name:
        if len(plans) == 1:
            return next(iter(plans.values()))
        raise Refusal(422, (("funnel", "is required: write one of " + ", ".join(sorted(plans))),))
    plan = plans.get(name)
    if plan is None:
        known = sorted(plans)
        raise Refusal(404, (("funnel", f"no funnel '{name[:100]}'; "
                             + did_you_mean(name, known, "write one of " + ", ".join(known))),))
    return plan


def redirect_allowed(plan: Plan, url: str) -> bool:
    """Whether `url` is on the funnel's allow-list: equal to an entry, or under one ending in '/'."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "\\" in url:
        return False
    for allowed in plan.allowed_redirects:
        if url == allowed or (allowed.endswith("/") and url.startswith(allowed)):
            return True
    return False


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, lowercased: what a browser sends as Origin."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
