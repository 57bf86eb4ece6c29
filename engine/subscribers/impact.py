"""Who an edit of the sequence files affects (`funnel validate --against-db`), counted by the database.

One GROUP BY over (funnel, stage, segment, step, magnet) gives a few hundred groups
however many enrollments there are; a second GROUP BY adds the history (the `done` list)
of those walking a path. For each history the interpreter itself says what comes next
(`explain`) and which emails lie behind the subscriber's position (`passed_unsent`, the
function `step` uses): no rule is re-implemented here that step() could later disagree with.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from engine.flow.explain import explain
from engine.flow.position import passed_unsent, position
from engine.flow.state import Facts, Stage, State
from engine.flow.step import walked_path
from engine.project.release import Release, changes
from engine.sequences.plan import PathKind, Plan, Role, SegmentPlan
from engine.store import releases, reports
from engine.store.db import DbConnection, DbEngine, Row
from engine.store.rows import state_of

_WALKING = (Stage.NURTURE.value, Stage.SALES.value, Stage.CUSTOMER.value)
# Those away from their path keep their segment: a click returns them into it (engine/flow/step.py).
_AWAY = (Stage.WINBACK.value, Stage.SUNSET.value)
# Any fixed moment will do: only which email comes next is asked, not when.
_SOME_TIME = datetime(2000, 1, 3, tzinfo=UTC)
_FINISHED = {PathKind.NURTURE: "go on to the sales path", PathKind.SALES: "have finished the sales path",
             PathKind.CUSTOMER: "have finished the customer path"}

Where = tuple[str, str, str]  # (segment, stage, step or email id)


@dataclass(frozen=True)
class Change:
    """One effect of the edit on some subscribers: the words and, for --json, the numbers."""

    kind: str  # removed_step, next_changed, passed_email, removed_segment, queued_text, note
    count: int
    text: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunnelImpact:
    """What the edit does to the subscribers of one funnel."""

    funnel: str
    subscribers: int
    changes: tuple[Change, ...]
    defined: bool = True  # False: no sequence file defines the funnel any more

    def line(self) -> str:
        """The funnel's line of `validate --against-db`."""
        if not self.defined:
            return (f"{self.funnel}: {_subscribers(self.subscribers)}; no sequence file defines this "
                    "funnel any more: they wait until the file is back")
        parts = [f"{self.funnel}: {_subscribers(self.subscribers)}"]
        kinds = {c.kind for c in self.changes}
        for kind, none in (("removed_step", "0 at removed steps"), ("next_changed", None),
                           ("passed_email", None), ("removed_segment", "0 in removed segments"),
                           ("queued_text", None), ("note", None)):
            parts += [c.text for c in self.changes if c.kind == kind]
            if kind not in kinds and none:
                parts.append(none)
        return "; ".join(parts)


@dataclass(frozen=True)
class Impact:
    """The whole report: per funnel, change by change."""

    database: str  # the URL as printed
    compared: bool  # False: there is no database yet
    funnels: tuple[FunnelImpact, ...] = ()

    def lines(self) -> list[str]:
        """The text report."""
        if not self.compared:
            return [f"no database yet at {self.database}; nothing to compare"]
        return [f"subscribers in the database at {self.database}:", *(f.line() for f in self.funnels)]

    def as_json(self) -> dict[str, Any]:
        """The report for `--json`."""
        return {"database": self.database, "compared": self.compared, "funnels": [
            {"funnel": f.funnel, "subscribers": f.subscribers, "defined": f.defined,
             "changes": [{"kind": c.kind, "count": c.count, "text": c.text, **c.detail}
                         for c in f.changes]} for f in self.funnels]}


def against_database(db_engine: DbEngine | None, shown: str, plans: Mapping[str, Plan],
                     complete: bool, release: Release | None = None) -> Impact:
    """The report of `validate --against-db`; `db_engine`: None when there is no database yet; `shown`:
    its URL as printed; `complete`: every file was checked, so a missing funnel is news; `release`:
    the files as they are now, compared with the release that went live last for emails whose text
    changed (None: not compared)."""
    if db_engine is None or not reports.has_enrollments(db_engine):
        return Impact(shown, compared=False)
    with db_engine.connect() as conn:
        changed: list[str] = []
        if release is not None and releases.has_releases(conn):
            last = releases.latest_release(conn)
            before = releases.files_of(last) if last else None
            changed = changes(before, release)["emails_changed"] if before else []
        return impact_at(conn, shown, plans, complete, changed)


def impact_at(conn: DbConnection, shown: str, plans: Mapping[str, Plan], complete: bool,
              changed_emails: Collection[str] = ()) -> Impact:
    """The report, read in `conn`'s transaction; `changed_emails`: "funnel/email" whose text the edit
    changes (their queued emails are counted: they go out with the new text)."""
    groups = reports.positions(conn, None if complete else list(plans))
    funnels = []
    for funnel, plan in sorted(plans.items()):
        found = _funnel(conn, plan, [g for g in groups if g["funnel"] == funnel])
        queued = _queued(conn, plan, changed_emails)
        funnels.append(replace(found, changes=(*found.changes, *queued)) if queued else found)
    return Impact(shown, True, (*funnels, *_missing(groups, plans)))


def _queued(conn: DbConnection, plan: Plan, changed_emails: Collection[str]) -> list[Change]:
    """Emails decided but not yet composed whose text the edit changes."""
    prefix = plan.funnel + "/"
    steps = [key[len(prefix):] for key in changed_emails if key.startswith(prefix)]
    return [Change("queued_text", n, f"{n:,} queued '{step}' go out with the changed text", {"step": step})
            for step, n in sorted(releases.queued_by_step(conn, plan.funnel, steps).items())]


def _live(groups: Sequence[Mapping[Any, Any]]) -> int:
    return sum(g["count"] for g in groups if g["stage"] != Stage.ENDED.value)


def _subscribers(count: int) -> str:
    return f"{count:,} subscriber{'s' if count != 1 else ''}"


def _missing(groups: list[Row], plans: Mapping[str, Plan]) -> list[FunnelImpact]:
    by_funnel: dict[str, list[Row]] = defaultdict(list)
    for group in groups:
        if group["funnel"] not in plans:
            by_funnel[group["funnel"]].append(group)
    return [FunnelImpact(funnel, _live(found), (), defined=False)
            for funnel, found in sorted(by_funnel.items()) if _live(found)]


def _funnel(conn: DbConnection, plan: Plan, groups: list[Row]) -> FunnelImpact:
    return funnel_impact(plan, groups, _walkers(conn, plan, groups))


def funnel_impact(plan: Plan, groups: Sequence[Mapping[Any, Any]],
                  walkers: Sequence[tuple[State, int]]) -> FunnelImpact:
    """What `plan` does to one funnel's subscribers, without a database: `groups`, the counts by
    `stage`, `segment`, `magnet` (`count`); `walkers`, each history of those walking a path, with
    how many share it (those of a removed segment are counted by `groups` alone)."""
    walkers = [(state, n) for state, n in walkers if plan.segment(state.segment) is not None]
    gone: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    for g in groups:
        stage, segment, count = g["stage"], g["segment"], g["count"]
        if stage in (*_WALKING, *_AWAY) and segment is not None and plan.segment(segment) is None:
            gone[segment] += count
        elif stage == Stage.CONFIRMING.value and not plan.double_opt_in:
            notes["waiting for the confirmation click: the funnel no longer asks for one, they get "
                  "the magnet at once"] += count
        elif stage in (Stage.SURVEY.value, Stage.ANSWERING.value) and plan.survey is None:
            notes[f"waiting for the survey: it was removed, they go to segment '{plan.default_segment}' "
                  "at once"] += count
        if stage in (Stage.CONFIRMING.value, Stage.MAGNET.value) and g["magnet"] \
                and g["magnet"] not in {m.id for m in plan.magnets}:
            notes[f"signed up for removed magnet '{g['magnet']}': they get "
                  f"'{plan.magnet(None).id}' instead"] += count
    changes = _walking_changes(plan, walkers)
    changes += [Change("removed_segment", count, f"{count:,} in removed segment '{segment}' move to the "
                       f"default segment '{plan.default_segment}'",
                       {"segment": segment, "default_segment": plan.default_segment})
                for segment, count in sorted(gone.items())]
    changes += [Change("note", count, f"{count:,} {note}") for note, count in sorted(notes.items())]
    return FunnelImpact(plan.funnel, _live(groups), tuple(changes))


def _walkers(conn: DbConnection, plan: Plan, groups: list[Row]) -> list[tuple[State, int]]:
    """Each history of those walking a path of a segment that still exists, with how many share it."""
    steps = sorted({g["step"] for g in groups if g["stage"] in _WALKING and g["step"]})
    if not steps:
        return []
    found = []
    for g in reports.histories_at(conn, plan.funnel, steps):
        if g["stage"] not in _WALKING or plan.segment(g["segment"]) is None:
            continue
        row = {"stage": g["stage"], "since": _SOME_TIME, "segment": g["segment"], "step": g["step"],
               "last_sent_at": None, "deadline": None, "done": json.loads(g["done"]), "reason": None,
               "resume_stage": None, "resume_step": None}
        found.append((state_of(row), g["count"]))
    return found


def _walking_changes(plan: Plan, walkers: Sequence[tuple[State, int]]) -> list[Change]:
    """Removed steps, a new next email, and emails behind their position, asked of the interpreter."""
    removed: dict[Where, Counter[str]] = defaultdict(Counter)
    moved_on: dict[Where, Counter[str]] = defaultdict(Counter)
    passed: Counter[Where] = Counter()
    for state, count in walkers:
        assert state.step is not None and state.segment is not None
        kind = PathKind(state.stage.value)
        found = explain(plan, state, Facts(), _SOME_TIME).step
        next_id = found.id if found is not None and found.path is kind else ""
        path = walked_path(plan, state, Facts())
        where = (state.segment, state.stage.value, state.step)
        if not _still_in_path(plan, plan.segment(state.segment), state.stage.value, state.step):
            removed[where][next_id] += count
        elif path is not None and path.index(state.step) is not None and next_id != state.step:
            moved_on[where][next_id] += count
        for email in passed_unsent(path, state.done) if path is not None else ():
            passed[(state.segment, state.stage.value, email.id)] += count
    changes = [Change("removed_step", sum(c.values()), f"{sum(c.values()):,} at removed step '{w[2]}' "
                      f"({w[1]} of '{w[0]}') {_continues(w[1], c)}", _detail(w, c))
               for w, c in sorted(removed.items())]
    changes += [Change("next_changed", sum(c.values()), f"{sum(c.values()):,} waiting for '{w[2]}' "
                       f"({w[1]} of '{w[0]}') now {_continues(w[1], c)}", _detail(w, c))
                for w, c in sorted(moved_on.items())]
    changes += [_passed(plan, where, count, walkers) for where, count in sorted(passed.items())]
    return changes


def _passed(plan: Plan, where: Where, count: int, walkers: Sequence[tuple[State, int]]) -> Change:
    """An email some subscribers are past without having it: inserted (or moved) behind them."""
    segment, stage, email_id = where
    ahead = 0
    for state, n in walkers:
        path = walked_path(plan, state, Facts())
        if state.segment != segment or state.stage.value != stage or path is None:
            continue
        at, index = position(path, state.done), path.index(email_id)
        if index is not None and email_id not in state.passed_ids() and (at is None or index > at):
            ahead += n  # it is ahead of them: never skipped
    email = next(e for s in plan.segments for e in (*s.nurture.steps, *s.sales.steps, *s.customer.steps)
                 if e.id == email_id)
    if email.send_to_passed:
        fate = "passed it and get it too (send_to_passed)"
        if email.role is Role.SALE:
            fate += " unless it would break the ratio"
    else:
        fate = "passed it and will not get it"
    text = f"new or moved '{email_id}' ({stage} of '{segment}'): {ahead:,} will get it, {count:,} {fate}"
    return Change("passed_email", count, text, {
        "segment": segment, "stage": stage, "email": email_id, "ahead": ahead, "passed": count,
        "passed_get_it": email.send_to_passed})


def _detail(where: Where, nexts: Counter[str]) -> dict[str, Any]:
    return {"segment": where[0], "stage": where[1], "step": where[2],
            "continue_with": {name or None: n for name, n in nexts.most_common()}}


def _continues(stage: str, nexts: Counter[str]) -> str:
    """'continue with 'e4' (3) or 's1' (1)', or what finishing the path means."""
    if list(nexts) == [""]:
        return _FINISHED[PathKind(stage)]
    options = [(f"'{name}'" if name else "the next path") + (f" ({n:,})" if len(nexts) > 1 else "")
               for name, n in nexts.most_common()]
    return "continue with " + " or ".join(options)


def _still_in_path(plan: Plan, segment: SegmentPlan | None, stage: str, step: str) -> bool:
    """Whether `step` is still in the path `stage` walks; a customer's may be another segment's
    customer path, the one their product named (`products:`)."""
    if stage == Stage.CUSTOMER.value:
        return any(s.customer.index(step) is not None for s in plan.segments)
    return segment is not None and segment.path(PathKind(stage)).index(step) is not None
