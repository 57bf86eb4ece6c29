"""The broadcast-file format (broadcasts/*.yaml) as pydantic models, like model.py for sequence files.

A broadcast is one email to part of one funnel's list, at one time (docs/broadcasts.md).
Its field descriptions are written for a marketer: a missing key's error quotes them, and
editors show them from `funnel schema --broadcast`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema

from engine.sequences.model import Delay, Experiment, Id, Node, Variant

# engine.flow.state.Stage's values, kept here because the language does not import the
# interpreter; tests/sequences/test_broadcast_model.py keeps the two equal.
STAGES = ("confirming", "magnet", "survey", "answering", "nurture", "sales", "sales_done",
          "customer", "winback", "sunset", "ended")
# Stages a broadcast never reaches, whatever its audience says: the unconfirmed, and those the
# win-back is trying to wake (or gave up on).
LEFT_OUT_STAGES = ("confirming", "winback", "sunset")

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AT_EXAMPLES = "write '2026-12-10 09:00' (each subscriber's own time) or '2026-12-10T09:00:00Z' (one instant)"


def parse_at(value: Any) -> datetime:
    """'2026-12-10 09:00' -> a naive wall-clock time; with a zone ('Z', '+01:00') -> aware, in UTC."""
    if isinstance(value, datetime):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if _DATE.match(text):
        raise ValueError(f"'at: {text}' has no time of day; write it with one, like '{text} 09:00'")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'at' cannot be {_shown(value)}; {_AT_EXAMPLES}") from None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed


def parse_signup_date(value: Any) -> datetime:
    """'2026-01-01' -> midnight UTC that day; an ISO datetime with a zone -> that instant in UTC."""
    if isinstance(value, datetime):
        return value
    text = value.strip() if isinstance(value, str) else ""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{_shown(value)} is not a date; write a date like 2026-01-01, or a time "
                         "with its zone like 2026-01-01T09:00:00+01:00") from None
    if parsed.tzinfo is None and not _DATE.match(text):
        raise ValueError(f"'{text}' has no time zone; add one, like '{text}Z' or '{text}+01:00', "
                         "or write the date alone (midnight UTC)")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _role(value: Any) -> Any:
    if value == "transactional":
        raise ValueError("a broadcast cannot be 'transactional': it is marketing mail, sent to "
                         "people who did not ask for it just now; write 'role: education' or "
                         "'role: sale'")
    return value


def _products(value: Any) -> Any:
    """`any` -> []; a single product id -> a list of it."""
    if value == "any":
        return []
    if isinstance(value, str):
        return [value]
    return value


def _shown(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else "empty" if value is None else f"{value!r}"


At = Annotated[datetime, BeforeValidator(parse_at),
               WithJsonSchema({"type": "string", "examples": ["2026-12-10 09:00", "2026-12-10T09:00:00Z"]})]
SignupDate = Annotated[datetime, BeforeValidator(parse_signup_date),
                       WithJsonSchema({"type": "string", "examples": ["2026-01-01",
                                                                      "2026-01-01T09:00:00+01:00"]})]
Products = Annotated[list[Id], BeforeValidator(_products),
                     WithJsonSchema({"anyOf": [{"const": "any"}, {"type": "string"},
                                               {"type": "array", "items": {"type": "string"}}]})]
# Checked in broadcast_check.py, not here, so that an unknown stage gets 'did you mean'.
Stage = Annotated[str, WithJsonSchema({"enum": [s for s in STAGES if s not in LEFT_OUT_STAGES]})]
Role = Annotated[Literal["education", "sale"], BeforeValidator(_role)]


class BroadcastEmail(Node):
    """The broadcast's one email; its step id (in stats) is the broadcast's id."""

    noun: ClassVar[str] = "email"
    subject: str = Field(description="the subject line; may use {{ subscriber.first_name }}")
    template: str = Field(description="the Jinja template under templates/, like broadcasts/winter-sale.html")
    role: Role = Field(description="education or sale: a sale counts in each recipient's 4:1 "
                                   "window like a sequence sale")
    variants: list[Variant] | None = Field(
        None, description="two or more versions of this email to test, each overriding its "
                          "subject, its template or both; needs 'experiment:'")
    experiment: Experiment | None = Field(
        None, description="how the variants are tried: sample (required), metric, decide_after, "
                          "min_sends, confidence, max_sends, winner, attribution")


class Audience(Node):
    """Who of the funnel's people get it: every condition given must hold; none: everyone."""

    noun: ClassVar[str] = "audience"
    segments: list[Id] | None = Field(None, min_length=1,
                                      description="in one of these segments of the funnel")
    stages: list[Stage] | None = Field(None, min_length=1, description="at one of these stages: "
                                       f"{', '.join(s for s in STAGES if s not in LEFT_OUT_STAGES)}")
    answers: dict[Id, Id | list[Id]] = Field(
        default_factory=dict, description="survey question: answer (or a list of answers) their "
        "latest answer must be, like {experience: [new, regular]}")
    tags: list[str] = Field(default_factory=list, description="has every one of these tags")
    without_tags: list[str] = Field(default_factory=list, description="has none of these tags")
    bought: Products | None = Field(None, description="bought one of these products, or 'any': "
                                                      "bought anything")
    not_bought: Products | None = Field(None, description="bought none of these products, or "
                                                          "'any': never bought anything")
    engaged_within: Delay | None = Field(None, description="opened or clicked an email within "
                                                           "this long, like 30d")
    signed_up_after: SignupDate | None = Field(None, description="signed up on or after this date "
                                               "(midnight UTC) or time, like 2026-01-01")
    signed_up_before: SignupDate | None = Field(None, description="signed up before this date "
                                                "(midnight UTC) or time, like 2026-12-01")


class Send(Node):
    """When it goes, and what it does where the ratio would break."""

    noun: ClassVar[str] = "send"
    at: At = Field(description="'2026-12-10 09:00': at that time in each subscriber's own time "
                               "zone; with a zone ('2026-12-10T09:00:00Z', '+01:00'): at one instant")
    window: Literal["funnel", "ignore"] = Field(
        "funnel", description="funnel: only inside the funnel's send window; ignore: at 'at' "
                              "whatever the window says")
    when_ratio_breaks: Literal["skip", "defer"] | None = Field(
        None, description="sale broadcasts only: where it would break the 4:1 rule for someone, "
                          "skip them (default), or defer their next sequence sale")
    attribution: Delay = Field(timedelta(days=7), description="purchases this long after it count "
                                                              "for it in stats, like 7d")


class Broadcast(Node):
    """One broadcast: an email to part of one funnel's list, at one time."""

    noun: ClassVar[str] = "broadcast"
    model_config = ConfigDict(title="funnel-engine broadcast file", extra="forbid", frozen=True,
                              arbitrary_types_allowed=True)
    broadcast: Id = Field(description="the broadcast's id, unique in broadcasts/, like winter-sale")
    name: str | None = Field(None, description="a name people read; default: the id")
    funnel: Id = Field(description="the funnel whose people get it: its sender, footer, send "
                                   "window, frequency cap and 4:1 rule apply")
    email: BroadcastEmail = Field(description="the email: subject, template, role")
    audience: Audience = Field(default_factory=Audience, description="who gets it; default: "
                                                                     "everyone in the funnel")
    send: Send = Field(description="when it goes")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a broadcast file, for editors."""
    schema = Broadcast.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
