"""Who an edit of the sequence files affects (`funnel validate --against-db`), counted by the database.

One GROUP BY over (funnel, stage, segment, step, magnet) gives a few hundred groups
however many enrollments there are; everything else is judged per group. For the
groups at a removed step, a second GROUP BY adds their history, and `explain` (the
interpreter itself) says which email each history continues with: no rule is
re-implemented here that step() could later disagree with.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime

from engine.flow.explain import explain
from engine.flow.state import Facts, Stage
from engine.sequences.plan import PathKind, Plan, SegmentPlan
from engine.store import reports
from engine.store.db import DbConnection, DbEngine, Row
from engine.store.rows import state_of

_WALKING = (Stage.NURTURE.value, Stage.SALES.value, Stage.CUSTOMER.value)
# Any fixed moment will do: only which email comes next is asked, not when.
_SOME_TIME = datetime(2000, 1, 3, tzinfo=UTC)
_FINISHED = {PathKind.NURTURE: "go on to the sales path", PathKind.SALES: "have finished the sales path",
             PathKind.CUSTOMER: "have finished the customer path"}


def against_database(db_engine: DbEngine | None, shown: str, plans: Mapping[str, Plan],
                     complete: bool) -> list[str]:
    """Lines for `validate --against-db`; `db_engine`: None when there is no database yet; `shown`: its
    URL as printed; `complete`: every file was checked, so a missing funnel is news."""
    if db_engine is None or not reports.has_enrollments(db_engine):
        return [f"no database yet at {shown}; nothing to compare"]
    with db_engine.connect() as conn:
        groups = reports.positions(conn, None if complete else list(plans))
        lines = [f"subscribers in the database at {shown}:"]
        lines += [_funnel_line(conn, plan, [g for g in groups if g["funnel"] == funnel])
                  for funnel, plan in sorted(plans.items())]
        lines += _missing(groups, plans)
    return lines


def _live(groups: list[Row]) -> int:
    return sum(g["count"] for g in groups if g["stage"] != Stage.ENDED.value)


def _subscribers(count: int) -> str:
    return f"{count:,} subscriber{'s' if count != 1 else ''}"


def _missing(groups: list[Row], plans: Mapping[str, Plan]) -> list[str]:
    by_funnel: dict[str, list[Row]] = defaultdict(list)
    for group in groups:
        if group["funnel"] not in plans:
            by_funnel[group["funnel"]].append(group)
    return [f"{funnel}: {_subscribers(_live(found))}; no sequence file defines this funnel any more: "
            "they wait until the file is back"
            for funnel, found in sorted(by_funnel.items()) if _live(found)]


def _funnel_line(conn: DbConnection, plan: Plan, groups: list[Row]) -> str:
    parts = [f"{plan.funnel}: {_subscribers(_live(groups))}"]
    removed: Counter[tuple[str, str, str]] = Counter()
    gone: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    for g in groups:
        stage, segment, count = g["stage"], g["segment"], g["count"]
        if stage in _WALKING and segment is not None:
            found = plan.segment(segment)
            if found is None:
                gone[segment] += count
            elif g["step"] and not _still_in_path(plan, found, stage, g["step"]):
                removed[(segment, stage, g["step"])] += count
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
    continues = _continuations(conn, plan, removed) if removed else {}
    for (segment, stage, step_id), count in sorted(removed.items()):
        parts.append(f"{count:,} at removed step '{step_id}' ({stage} of '{segment}') "
                     f"{continues.get((segment, stage, step_id), 'continue with the next email')}")
    if not removed:
        parts.append("0 at removed steps")
    for segment, count in sorted(gone.items()):
        parts.append(f"{count:,} in removed segment '{segment}' move to the default segment "
                     f"'{plan.default_segment}'")
    if not gone:
        parts.append("0 in removed segments")
    parts += [f"{count:,} {note}" for note, count in sorted(notes.items())]
    return "; ".join(parts)


def _still_in_path(plan: Plan, segment: SegmentPlan, stage: str, step: str) -> bool:
    """Whether `step` is still in the path `stage` walks; a customer's may be another segment's
    customer path, the one their product named (`products:`)."""
    if stage == Stage.CUSTOMER.value:
        return any(s.customer.index(step) is not None for s in plan.segments)
    return segment.path(PathKind(stage)).index(step) is not None


def _continuations(conn: DbConnection, plan: Plan,
                   removed: Counter[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """What each removed-step group continues with, asked of the interpreter for each history."""
    nexts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for g in reports.histories_at(conn, plan.funnel, sorted({step for _, _, step in removed})):
        key = (g["segment"], g["stage"], g["step"])
        if key not in removed:
            continue
        row = {"stage": g["stage"], "since": _SOME_TIME, "segment": g["segment"], "step": g["step"],
               "last_sent_at": None, "deadline": None, "done": json.loads(g["done"]), "reason": None,
               "resume_stage": None, "resume_step": None}
        found = explain(plan, state_of(row), Facts(), _SOME_TIME)
        kind = PathKind(g["stage"])
        next_step = found.step if found.step is not None and found.step.path is kind else None
        nexts[key][f"'{next_step.id}'" if next_step else ""] += g["count"]
    texts = {}
    for key, counter in nexts.items():
        if list(counter) == [""]:
            texts[key] = _FINISHED[PathKind(key[1])]
            continue
        options = [f"{name or 'the next path'}" + (f" ({n:,})" if len(counter) > 1 else "")
                   for name, n in counter.most_common()]
        texts[key] = "continue with " + " or ".join(options)
    return texts
