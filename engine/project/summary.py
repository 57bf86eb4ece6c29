"""The one-line summary `funnel validate` prints for a funnel that passed."""

from __future__ import annotations

from engine.errors import display_path
from engine.project.folder import LoadedFunnel
from engine.sequences.plan import PathPlan, Role


def summarize(loaded: LoadedFunnel) -> str:
    """'path: ok, funnel 'x': 2 segments; beginner: nurture 10 (8 education : 2 sale), ...'."""
    plan = loaded.plan
    parts = []
    for segment in plan.segments:
        paths = ", ".join(_path(p) for p in (segment.nurture, segment.sales, segment.customer))
        parts.append(f"{segment.id}: {paths}")
    count = len(plan.segments)
    return (f"{display_path(loaded.path)}: ok, funnel '{plan.funnel}': {len(plan.magnets)} "
            f"magnet{'s' if len(plan.magnets) != 1 else ''}, {count} "
            f"segment{'s' if count != 1 else ''}; " + "; ".join(parts))


def _path(path: PathPlan) -> str:
    education = sum(1 for e in path.steps if e.role is Role.EDUCATION)
    sale = sum(1 for e in path.steps if e.role is Role.SALE)
    return f"{path.kind.value} {len(path.steps)} ({education} education : {sale} sale)"
