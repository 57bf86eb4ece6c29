"""The sequence-file format as pydantic models: the one source of validation and JSON Schema.

Every field's description is written for a marketer: validation errors quote it when a
key is missing, and editors show it from the generated schema.
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parseaddr
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, WithJsonSchema

from engine.sequences import values
from engine.sequences.languages import TAG
from engine.sequences.window import FrequencyCap, SendWindow

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


def _check_id(value: Any) -> Any:
    if isinstance(value, str) and not re.match(ID_PATTERN, value):
        slug = re.sub(r"[^a-z0-9_-]+", "-", value.strip().lower()).strip("-_") or "my-id"
        raise ValueError(f"id '{value}' may hold only lowercase letters, digits, '-' and '_'; "
                         f"write '{slug}'")
    return value


def _share(value: Any, key: str, low: str, high: str) -> float:
    """'99%' -> 0.99; the range is the caller's. A bare number is refused with its percentage."""
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    match = re.match(r"^(\d+(?:\.\d+)?)\s*(%?)$", text)
    if not match:
        raise ValueError(f"'{key}' cannot be '{value}'; write a percentage {low} and {high}, "
                         f"like {'99%' if key == 'confidence' else '20%'}")
    number = float(match.group(1))
    if not match.group(2):
        shown = f"{number * 100:g}%" if number <= 1 else f"{number:g}%"
        raise ValueError(f"'{key}: {value}' has no '%'; write it as a percentage, like '{key}: {shown}'")
    return number / 100


def _confidence(value: Any) -> Any:
    share = _share(value, "confidence", "above 50%", "below 100%")
    if not 0.5 < share < 1:
        raise ValueError(f"'confidence: {value}' is out of range: a winner must be best with a "
                         "probability above 50% and below 100% (no count makes a variant certain); "
                         "write a percentage like 95% or 99%")
    return share


def _sample(value: Any) -> Any:
    share = _share(value, "sample", "above 0%", "at most 100%")
    if not 0 < share <= 1:
        raise ValueError(f"'sample: {value}' is out of range; write the share of the audience "
                         "that tries the variants, above 0% and at most 100%, like 20%")
    return share


def _check_url(value: Any) -> Any:
    if isinstance(value, str) and not re.match(r"^https?://[^\s/$.?#][^\s]*$", value):
        raise ValueError(f"'{value}' is not a web address; write a full URL starting with https://")
    return value


def _check_address(value: Any) -> Any:
    if isinstance(value, str):
        _, address = parseaddr(value)
        if "@" not in address or any(c in value for c in "\r\n"):
            raise ValueError(f"'{value}' is not an email address; write 'Name <name@example.com>' "
                             "or 'name@example.com'")
    return value


Id = Annotated[str, BeforeValidator(_check_id),
               WithJsonSchema({"type": "string", "pattern": ID_PATTERN})]
Url = Annotated[str, BeforeValidator(_check_url),
                WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https?://"})]
Address = Annotated[str, BeforeValidator(_check_address),
                    WithJsonSchema({"type": "string", "examples": ["Anna <anna@example.com>"]})]
Delay = Annotated[timedelta, BeforeValidator(values.parse_delay),
                  WithJsonSchema({"type": "string", "pattern": values.DELAY_PATTERN,
                                  "examples": ["2d", "36h", "90m", "1d12h"]})]
Window = Annotated[SendWindow, BeforeValidator(values.parse_window),
                   WithJsonSchema({"type": "string", "pattern": values.WINDOW_PATTERN,
                                   "examples": ["weekdays 08:00-11:00"]})]
Cap = Annotated[FrequencyCap, BeforeValidator(values.parse_cap),
                WithJsonSchema({"type": "string", "pattern": values.CAP_PATTERN,
                                "examples": ["1/day", "3/week"]})]
RatioValue = Annotated[values.Ratio, BeforeValidator(values.parse_ratio),
                       WithJsonSchema({"type": "string", "pattern": values.RATIO_PATTERN,
                                       "examples": ["4:1"]})]
Percent = Annotated[float | None, BeforeValidator(values.parse_percent),
                    WithJsonSchema({"type": "string", "pattern": values.PERCENT_PATTERN,
                                    "examples": ["2%", "0.1%", "off"]})]
Confidence = Annotated[float, BeforeValidator(_confidence),
                       WithJsonSchema({"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$",
                                       "examples": ["99%", "95%"]})]
Sample = Annotated[float, BeforeValidator(_sample),
                   WithJsonSchema({"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%\s*$",
                                   "examples": ["20%", "10%"]})]
VarValue = str | int | float | bool
# A text a subscriber reads, in one language or in each of the funnel's (docs/languages.md):
# "Your checklist" or {en: "Your checklist", hu: "Itt a listád"}. Checked in languages_check.py.
Text = Annotated[str | dict[str, str], WithJsonSchema({"oneOf": [
    {"type": "string"},
    {"type": "object", "additionalProperties": {"type": "string"},
     "propertyNames": {"pattern": f"^{TAG.pattern}$"},
     "examples": [{"en": "Your checklist is here", "hu": "Itt a listád"}]},
]})]
# Checked in validate.py, not here, so that a missing exit gets its own message.
ExitOn = Annotated[Any, WithJsonSchema({"oneOf": [
    {"const": "purchase"},
    {"type": "object", "additionalProperties": False, "required": ["purchase"],
     "properties": {"purchase": {"oneOf": [{"type": "string"},
                                           {"type": "array", "items": {"type": "string"}}]}}},
]})]


class Node(BaseModel):
    """A mapping in a sequence file; remembers where it stands in its file."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    noun: ClassVar[str] = "section"
    _where: tuple[str | int, ...] = PrivateAttr(default=())


class Sender(Node):
    """Who the emails come from, and the postal address every footer shows."""

    noun: ClassVar[str] = "sender"
    from_: Address = Field(alias="from", description="the From address, like 'Anna <anna@example.com>'")
    reply_to: Address | None = Field(None, description="where replies go, if not to 'from'")
    postal_address: str = Field(description="the sender's postal address, shown in every footer "
                                            "(the law requires it on marketing email)")


class TransactionalEmail(Node):
    """An email that is not marketing: confirmation, lead magnet delivery, survey."""

    noun: ClassVar[str] = "email"
    id: Id = Field(description="a stable id for this email, like checklist-delivery")
    subject: Text = Field(description="the subject line; may use {{ subscriber.first_name }}")
    template: str = Field(description="the Jinja template under templates/, like marathon/welcome.html")


class Signup(Node):
    """What happens when a web form posts a new subscriber."""

    noun: ClassVar[str] = "signup"
    thank_you_url: Url = Field(description="where a browser goes after the form is sent")
    double_opt_in: bool = Field(True, description="send a confirmation email first (true or false)")
    confirmation: TransactionalEmail | None = Field(
        None, description="the confirmation email; required when double_opt_in is true")
    default_magnet: Id | None = Field(
        None, description="the magnet a form without a 'magnet' field delivers; default: the first")
    allowed_origins: list[Url] = Field(
        default_factory=list, description="web sites allowed to post with fetch()")
    allowed_redirects: list[Url] = Field(
        default_factory=list, description="thank-you pages a form's 'redirect' field may choose; "
        "an entry ending in '/' allows every page under it")
    consent_text: str | None = Field(
        None, description="the sentence shown next to the form's button and kept as proof of "
        "consent; default: 'Send me <magnet> and emails from <name>. Unsubscribe at any time.'")


class Defaults(Node):
    """Settings every path of the funnel uses unless it says otherwise."""

    noun: ClassVar[str] = "defaults"
    spacing: Delay = Field(timedelta(days=2), description="time between emails, like 2d")
    send_window: Window | None = Field(
        None, description="when marketing email may go out, in the subscriber's time zone, "
                          "like 'weekdays 08:00-11:00'")
    frequency_cap: Cap = Field(values.parse_cap("1/day"),
                               description="most marketing emails per subscriber, like 1/day")
    ratio: RatioValue = Field(values.parse_ratio("4:1"),
                              description="education:sale emails in nurture and customer paths, "
                                          "like \"4:1\"")


class Magnet(Node):
    """A lead magnet: what a subscriber gets in exchange for their address."""

    noun: ClassVar[str] = "magnet"
    id: Id = Field(description="a stable id, like checklist")
    title: Text = Field(description="what the magnet is called, like '10 things to do before every "
                                    "run'; with languages, one per language")
    download_url: Url | None = Field(None, description="where it can be downloaded, if it is a file")
    email: TransactionalEmail = Field(description="the email that delivers it")


class Answer(Node):
    """One answer a subscriber can click in the survey email."""

    noun: ClassVar[str] = "answer"
    id: Id = Field(description="a stable id, like beginner")
    label: Text = Field(description="the text of the answer link; with languages, one per language")
    segment: Id | None = Field(None, description="the segment this answer puts the subscriber in")


class Question(Node):
    """One survey question with its answers."""

    noun: ClassVar[str] = "question"
    id: Id = Field(description="a stable id, like experience")
    text: Text = Field(description="the question as the subscriber reads it; with languages, one "
                                   "per language")
    answers: list[Answer] = Field(min_length=2, description="at least two answers")


class Rule(Node):
    """Answers that together put a subscriber in a segment; the first rule that matches wins."""

    noun: ClassVar[str] = "rule"
    when: dict[str, Id | list[Id]] = Field(
        description="question: answer (or a list of answers), like {experience: racer, goal: time}")
    segment: Id = Field(description="the segment the matching subscribers go to")


class Survey(Node):
    """The short survey sent after the magnet; its answers choose the segment."""

    noun: ClassVar[str] = "survey"
    after: Delay = Field(timedelta(0), description="how long after the magnet the survey goes out")
    wait: Delay = Field(timedelta(days=3),
                        description="how long to wait for an answer before default_segment applies")
    default_segment: Id = Field(description="the segment for those who never answer")
    email: TransactionalEmail = Field(description="the survey email, with one link per answer")
    questions: list[Question] = Field(min_length=1, description="the questions, one or more")
    rules: list[Rule] = Field(default_factory=list,
                              description="answer combinations -> segment, tried before the "
                                          "answers' own 'segment'")


class Variant(Node):
    """One version of an email in an experiment: its own subject, its own template, or both."""

    noun: ClassVar[str] = "variant"
    id: Id = Field(description="a stable id for this version, like question; stats and timelines "
                               "name it")
    subject: Text | None = Field(None, description="this version's subject line (one per language "
                                                   "with languages); default: the email's")
    template: str | None = Field(None, description="this version's template under templates/; "
                                                   "default: the email's")


class Experiment(Node):
    """How an email's variants are tried and a winner kept (docs/experiments.md)."""

    noun: ClassVar[str] = "experiment"
    metric: Literal["clicks", "purchases"] = Field(
        description="what makes a variant better: clicks (unique clickers per send) or purchases "
                    "(buyers within 'attribution' per send)")
    min_sends: int = Field(100, ge=0, description="sends per variant before any adapting or "
                                                  "stopping (default 100)")
    confidence: Confidence = Field(0.99, description="stop and keep a winner once it is best with "
                                   "this probability, above 50% and below 100% (default 99%)")
    max_sends: int | None = Field(None, ge=1, description="sends of all variants in total after "
                                  "which the best so far is kept, like 5000; default: no limit")
    winner: Id | None = Field(None, description="a variant's id: everyone gets it, whatever the "
                                                "counts say (a manual override)")
    attribution: Delay = Field(timedelta(days=7), description="a purchase this long after the email "
                               "counts for its variant, like 7d (default 7d)")
    sample: Sample | None = Field(None, description="broadcasts only (required there): the share "
                                  "of the audience that tries the variants, evenly, like 20%; "
                                  "the rest get the winner")
    decide_after: Delay | None = Field(None, description="broadcasts only: how long after the "
                                       "first recipients were due the winner is chosen, like 4h "
                                       "(default 4h)")


class Email(Node):
    """A marketing email in a path."""

    noun: ClassVar[str] = "email"
    id: Id = Field(description="a stable id, unique in the funnel, like b-choosing-shoes")
    role: Literal["education", "sale"] | None = Field(
        None, description="education or sale")
    subject: Text = Field(description="the subject line; may use {{ subscriber.first_name }}")
    template: str = Field(description="the Jinja template under templates/, like marathon/shoes.html")
    after: Delay | None = Field(None, description="time since the previous email (or since the "
                                                  "path began), like 2d; default: the spacing")
    last_chance: bool = Field(False, description="true on the final offer of a sales path")
    anytime: bool = Field(False, description="true to send it as soon as it is due, outside the "
                          "send window and over the frequency cap: for a welcome or receipt-like "
                          "onboarding; unsubscribes and the ratio still apply")
    send_to_passed: bool = Field(False, description="true to send it also to subscribers already "
                                 "past the place it is inserted at (by default they never get it); "
                                 "the cap, the send window and the ratio still apply")
    variants: list[Variant] | None = Field(
        None, description="two or more versions of this email to test, each overriding its "
                          "subject, its template or both; needs 'experiment:'")
    experiment: Experiment | None = Field(
        None, description="how the variants are tried and a winner kept: metric, min_sends, "
                          "confidence, max_sends, winner, attribution")


class Path(Node):
    """A nurture or customer path: a list of emails, or pools the compiler interleaves."""

    noun: ClassVar[str] = "path"
    spacing: Delay | None = Field(None, description="time between emails in this path, like 3d")
    emails: list[Email] | None = Field(None, description="the emails in order, each with a role")
    education: list[Email] | None = Field(
        None, description="a pool of education emails, interleaved with 'offers' at the ratio")
    offers: list[Email] | None = Field(
        None, description="a pool of sale emails, interleaved with 'education' at the ratio")


class SalesPath(Node):
    """The sales path: offers ending in a last chance; a purchase leaves it at once."""

    noun: ClassVar[str] = "sales path"
    exit_on: ExitOn = Field(None, description="'purchase', or {purchase: [product ids]} to count "
                                           "only those products")
    spacing: Delay | None = Field(None, description="time between emails in this path, like 1d")
    emails: list[Email] = Field(min_length=1, description="the offers in order, the last with "
                                                          "last_chance: true")


class Segment(Node):
    """A group of subscribers with the same needs, and their three paths."""

    noun: ClassVar[str] = "segment"
    id: Id = Field(description="a stable id, like beginner")
    name: str = Field(description="a name people read, like 'First-timers'")
    nurture: Path = Field(description="the education path, at the funnel's ratio")
    sales: SalesPath = Field(description="the sales path that follows nurture")
    customer: Path = Field(description="the path after a purchase")


class Guardrails(Node):
    """When a step is paused automatically: rates over its sends, judged after enough sends."""

    noun: ClassVar[str] = "guardrails"
    min_sends: int = Field(200, ge=1, description="judge a step only after this many sends "
                                                  "(counted again from zero after a resume)")
    unsubscribe_rate: Percent = Field(0.02, description="pause a step whose unsubscribes pass "
                                                        "this share of its sends, like 2%, or off")
    bounce_rate: Percent = Field(0.05, description="pause a step whose hard bounces pass this "
                                                   "share of its sends, like 5%, or off")
    complaint_rate: Percent = Field(0.001, description="pause a step whose spam complaints pass "
                                                       "this share of its sends, like 0.1%, or off")


class Winback(Node):
    """Emails for people who stopped opening and clicking; no click after them ends marketing mail."""

    noun: ClassVar[str] = "win-back"
    after: Delay = Field(timedelta(days=90), description="how long without an open or a click "
                                                         "before the win-back emails start, like 90d")
    spacing: Delay | None = Field(None, description="time between win-back emails, like 3d")
    emails: list[Email] = Field(min_length=1, description="the win-back emails in order")
    sunset_after: Delay = Field(timedelta(days=7), description="how long after the last win-back "
                                "email someone who did not click stops getting marketing email")


class Funnel(Node):
    """One funnel: magnets, a survey, segments with their nurture, sales and customer paths."""

    noun: ClassVar[str] = "funnel"
    model_config = ConfigDict(title="funnel-engine sequence file", extra="forbid", frozen=True,
                              arbitrary_types_allowed=True)
    funnel: Id = Field(description="the funnel's id, used in forms and commands, like first-marathon")
    name: str = Field(description="a name people read")
    languages: list[str] | None = Field(
        None, description="the languages its emails are written in, the default first, like "
        "[en, hu]: each subject is then {en: ..., hu: ...} and templates/hu/ holds the Hungarian "
        "templates (docs/languages.md)")
    sender: Sender = Field(description="who the email comes from")
    signup: Signup = Field(description="what happens on signup")
    defaults: Defaults = Field(default_factory=Defaults, description="spacing, window, cap, ratio")
    vars: dict[str, VarValue] = Field(default_factory=dict,
                                      description="values templates can use as {{ vars.name }}")
    magnets: list[Magnet] = Field(min_length=1, description="one or more lead magnets")
    survey: Survey | None = Field(None, description="the segmenting survey")
    segments: list[Segment] = Field(min_length=1, description="one or more segments")
    guardrails: Guardrails = Field(default_factory=Guardrails,
                                   description="when a step pauses itself: unsubscribe, bounce "
                                               "and complaint rates")
    winback: Winback | None = Field(None, description="what idle subscribers get before they "
                                                      "stop getting marketing email (sunset)")
    products: dict[Id, Id] = Field(
        default_factory=dict, description="product id: the segment whose customer path a "
        "purchase of it starts, like {sub-3-marathon: advanced}; other products start the "
        "buyer's own segment's customer path")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a sequence file, for editors."""
    schema = Funnel.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
