"""Reading a CSV of people into Leads: the header's columns, then every row checked on its own.

A problem is written `FILE:LINE: what is wrong; what to write instead`, LINE being the
physical line in the file (the header is line 1), so that a marketer can open the file
at that line. A header problem stops the import (every row would fail the same way);
a row problem skips that row only.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from zoneinfo import available_timezones

from engine.errors import EngineError, closest, did_you_mean
from engine.flow.status import BLOCKED_STATUSES, SubscriberStatus
from engine.sequences.languages import is_tag
from engine.sequences.plan import Plan
from engine.store.subscribers import column_widths
from engine.subscribers.addresses import check_email
from engine.subscribers.leads import UTM_KEYS, Lead, answer_problems

STANDARD = ("email", "name", "first_name", "last_name", "locale", "timezone", "source", *UTM_KEYS, "magnet")
# Written by `subscribers export`, read back as nothing (or, for status, as a reason to
# skip the row): a round trip must not turn them into custom fields.
EXPORT_ONLY = ("status", "created_at", "stage", "segment", "step")
SKIPPED_STATUSES = (SubscriberStatus.UNSUBSCRIBED, *BLOCKED_STATUSES)
# The widths of the columns the cells go to: PostgreSQL refuses a longer value (and with
# it the whole batch), so a long cell is a problem of its row.
_LIMITS: dict[str, int] = {
    name: width or 10_000
    for name, width in column_widths(n for n in STANDARD if n not in ("email", "magnet")).items()
}


class ImportFileError(EngineError):
    """The file cannot be imported at all (not UTF-8, no header, no email column); the message says why."""


@dataclass(frozen=True)
class Columns:
    """What each column of the header means."""

    standard: dict[str, int]  # email, name, ... -> column index
    answers: dict[str, int]  # question id -> column index
    fields: dict[str, int]  # custom field name -> column index
    status: int | None
    ignored: tuple[str, ...]  # export-only columns present in the file
    width: int  # cells in the header


@dataclass(frozen=True)
class Row:
    """One data row: a Lead to add, or the problems that skip it, or why it is not imported."""

    line: int
    lead: Lead | None
    problems: tuple[str, ...] = ()
    skipped: str | None = None  # the file's own status: unsubscribed, bounced, complained


@dataclass
class CsvLeads:
    """A CSV file of people for `plan`'s funnel, read row by row."""

    path: Path
    plan: Plan
    shown: str = ""
    lines: int = 0  # physical lines in the file, for a progress bar
    columns: Columns = field(init=False)

    def __post_init__(self) -> None:
        self.shown = self.shown or str(self.path)
        self.lines, header, self._delimiter = _scan(self.path, self.shown)
        self.columns = _columns(header, self.plan, self.shown)

    def rows(self) -> Iterator[Row]:
        """Every non-blank data row, checked; `Row.line` is where it starts in the file."""
        with self.path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=self._delimiter)
            next(reader)
            last = reader.line_num
            for cells in reader:
                line, last = last + 1, reader.line_num
                if any(cell.strip() for cell in cells):
                    yield self._row(line, cells)

    def _row(self, line: int, cells: list[str]) -> Row:
        cols = self.columns
        width = cols.width
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            return self._bad(line, f"the row has {len(cells)} cells but the first line names {width} "
                                   'columns; put a cell that holds a comma in double quotes, like "Lee, Ann"')
        value = [c.strip() for c in cells] + [""] * (width - len(cells))
        given = {name: value[i] for name, i in cols.standard.items()}
        problems = [p for name, text in given.items() for p in _check(name, text, self.plan)]
        answers = {q: value[i] for q, i in cols.answers.items() if value[i]}
        problems += answer_problems(self.plan, answers)
        problems += [f"column '{name}' holds a NUL character; remove it"
                     for name, i in {**cols.standard, **cols.fields}.items() if "\x00" in value[i]]
        status = value[cols.status] if cols.status is not None else ""
        if status and status.lower() != SubscriberStatus.ACTIVE and status.lower() not in SKIPPED_STATUSES:
            problems.append(f"unknown status '{status}'; write active, unsubscribed, "
                            "bounced or complained, or leave it empty")
        if problems:
            return self._bad(line, *problems)
        if status.lower() in SKIPPED_STATUSES:
            return Row(line, None, skipped=status.lower())
        lead = Lead(email=given["email"], name=given.get("name", ""), locale=given.get("locale") or None,
                    first_name=given.get("first_name", ""), last_name=given.get("last_name", ""),
                    timezone=given.get("timezone") or None, source=given.get("source") or None,
                    utm={k: given[k] for k in UTM_KEYS if given.get(k)},
                    fields={name: value[i] for name, i in cols.fields.items() if value[i]},
                    magnet=given.get("magnet") or None, answers=answers)
        return Row(line, lead)

    def _bad(self, line: int, *problems: str) -> Row:
        return Row(line, None, tuple(f"{self.shown}:{line}: {p}" for p in problems))


def _scan(path: Path, shown: str) -> tuple[int, list[str], str]:
    """(physical lines, header cells, delimiter); raises ImportFileError for a file that is not UTF-8 text."""
    lines, first = 0, b""
    with path.open("rb") as handle:
        for lines, raw in enumerate(handle, start=1):
            first = first or raw
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ImportFileError(
                    f"{shown}:{lines}: the file is not UTF-8 text (byte {raw[error.start]:#04x} at "
                    f"column {error.start + 1}); save it as 'CSV UTF-8'") from None
    text = first.decode("utf-8").removeprefix("\ufeff")
    if not text.strip():
        raise ImportFileError(f"{shown}:1: the first line is empty; it must name the columns, "
                              "like email,name,timezone")
    # Spreadsheets in many locales write ';' (or tabs) between cells: take the one used most.
    delimiter = max((",", ";", "\t"), key=text.count)
    header = next(csv.reader([text], delimiter=delimiter))
    return lines, header, delimiter


def _columns(header: list[str], plan: Plan, shown: str) -> Columns:
    standard: dict[str, int] = {}
    answers: dict[str, int] = {}
    fields: dict[str, int] = {}
    status: int | None = None
    ignored: list[str] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    questions = [q.id for q in plan.survey.questions] if plan.survey else []
    for index, raw in enumerate(header):
        name = raw.strip()
        low = name.lower()
        if not name:
            continue
        key = _key(name)
        if key in seen:
            problems.append(f"column '{name}' appears twice (columns {seen[key] + 1} and {index + 1}); "
                            "keep one of them")
            continue
        seen[key] = index
        if low in STANDARD:
            standard[low] = index
        elif low == "status":
            status = index
        elif low in EXPORT_ONLY:
            ignored.append(low)
        elif low.startswith("answer."):
            question = name[len("answer."):]
            if plan.survey is None:
                problems.append(f"column '{name}': funnel '{plan.funnel}' has no survey; remove the column")
            elif question not in questions:
                match = closest(question, questions)
                options = ", ".join(f"answer.{q}" for q in questions)
                hint = f"did you mean 'answer.{match}'?" if match else f"the survey's columns are {options}"
                problems.append(f"column '{name}' names no question of funnel '{plan.funnel}'; {hint}")
            else:
                answers[question] = index
        elif low.startswith("field."):
            fields[name[len("field."):]] = index
        else:
            fields[name] = index
    if "email" not in standard:
        problems.insert(0, "no 'email' column; name the column that holds the addresses 'email' "
                           "(the first line names the columns, like email,name,timezone)")
    if problems:
        raise ImportFileError("\n".join(f"{shown}:1: {p}" for p in problems))
    return Columns(standard, answers, fields, status, tuple(ignored), len(header))


def _key(name: str) -> str:
    """What a column stands for: two columns for one thing ('email', 'Email'; 'x', 'field.x') clash."""
    low = name.lower()
    if low in STANDARD or low in EXPORT_ONLY:
        return low
    for prefix in ("answer.", "field."):
        if low.startswith(prefix):
            return prefix + name[len(prefix):]
    return "field." + name


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones() | {"UTC"})


def _check(name: str, value: str, plan: Plan) -> list[str]:
    """What is wrong with one standard cell (empty list when it is fine)."""
    if name == "email":
        if not value:
            return ["no email address; write the person's address in the 'email' column, or delete the row"]
        problem = check_email(value)[1]  # the same rule as a signup (engine/subscribers/addresses.py)
        return [f"email {problem}" if problem.startswith("is ") else problem] if problem else []
    if not value:
        return []
    if name == "timezone" and value not in _zones():
        hint = did_you_mean(value, _zones(), "write an IANA name like Europe/Budapest or America/New_York")
        return [f"unknown time zone '{value}'; {hint}"]
    if name == "magnet" and value not in {m.id for m in plan.magnets}:
        ids = [m.id for m in plan.magnets]
        hint = did_you_mean(value, ids, f"the magnets of funnel '{plan.funnel}' are {', '.join(ids)}")
        return [f"unknown magnet '{value}'; {hint}"]
    if name == "locale" and not is_tag(value):
        return [f"locale '{value}' is not a language tag; write one like en, de or pt-BR"]
    limit = _LIMITS.get(name)
    if limit is not None and len(value) > limit:
        return [f"{name} is {len(value)} characters long; at most {limit} fit, shorten it"]
    return []
