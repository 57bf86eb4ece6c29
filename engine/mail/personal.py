"""Which templates write the subscriber's values only as they are, so that the skeleton is their HTML.

textpart.py renders a step once with a marker in place of each personal value (the
skeleton) and fills the markers in per email. Filling in is right only when the template
wrote each personal value as it is, in a place that does not depend on its text. The
per-email proof of that is rendering the subscriber's own HTML and comparing (~25 µs an
email); `as_is_chains` proves it once per template, from the Jinja syntax tree:

Every personal name (PERSONAL) is read only as a chain of constant attributes or items
(`subscriber.fields.city`, `subscriber["email"]`), and each chain only:

- as an output's value: alone, an operand of `or` (`{{ subscriber.first_name or "there" }}`),
  a branch of `x if test else y`, or under `| default(constant)` (what the engine's own
  error message tells a marketer to write for a field some subscribers lack);
- as a test (of `{% if %}`, `{% elif %}` or `x if test else y`): alone, under `not`, `and`,
  `or`, or `is defined`, `is undefined`, `is none`.

So the subscriber's values reach the HTML only through those outputs, and every branch
reads the truth (or presence) of a chain's value, which the key's shape fixes
(textpart._mark: the same types, dict keys and list lengths, the same strings empty, the
same other values). Every other branch, loop and output reads the rest of the context,
which is the same for every email of the skeleton's key (context.skeleton_key). The same
chain then reaches the same place in the subscriber's values as in the marked ones;
`written_as_leaves` checks, once per skeleton, that each place holds a marker, '' or an
int, bool or None, or, for a chain under `default` or `is defined`, nothing at all (the
key's dict keys fix that too). A marker stands for a non-empty string, which autoescaped
Jinja writes as escape(value): the fill. The rest the skeleton wrote already, the same for
everyone.

Anything that could take written text back and change it (a `set` block, a filter block, a
macro or call block, `self`, `super()`, a recursive loop's `loop()`), an import, a personal
name assigned or looped over, the survey (whose answers' links are personal and are looped
over), per-render randomness (`random`, `lipsum`) makes a template not proven: it keeps the
per-email comparison. So do a template without autoescaping and one that writes dates
(render.py checks both: sent_at is in the key to the minute, and a date may show seconds).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from jinja2 import Environment, Undefined, nodes

# Context values that differ from one subscriber to the next; everything else in the
# context is the same for every recipient of a step (the survey's answer links aside).
PERSONAL = ("subscriber", "unsubscribe_url", "confirm_url")

# A personal name, its constant steps ((is attribute, name or key) each), and whether the
# template copes with its value missing (`| default(...)`, `is defined`).
Chain = tuple[str, tuple[tuple[bool, Any], ...], bool]

# Statements that capture what their body writes (and may change it), or bring in macros.
_CAPTURING = (nodes.AssignBlock, nodes.FilterBlock, nodes.Macro, nodes.CallBlock,
              nodes.Import, nodes.FromImport, nodes.EvalContextModifier)
# Names that reach written output (self.block(), super(), caller()), the survey, or randomness.
_UNCLEAR_NAMES = frozenset({"self", "super", "caller", "varargs", "kwargs", "survey", "lipsum"})
_WHOLE_MARKER = re.compile(r"qzfm\d+mfzq")
_DEFAULT = frozenset({"default", "d"})
# Tests of a chain's presence (its value may be missing) and of its being None.
_PRESENCE_TESTS = frozenset({"defined", "undefined"})
_TESTS = _PRESENCE_TESTS | {"none"}


def _chain(expr: nodes.Node | None, missing: bool = False) -> tuple[nodes.Name, Chain] | None:
    """`subscriber.fields.city` as its Name node and chain; None for any other expression.

    `missing`: the template copes with the value being missing.
    """
    steps: list[tuple[bool, Any]] = []
    while True:
        if isinstance(expr, nodes.Getattr) and expr.ctx == "load":
            steps.append((True, expr.attr))
            expr = expr.node
        elif isinstance(expr, nodes.Getitem) and expr.ctx == "load" and isinstance(expr.arg, nodes.Const):
            steps.append((False, expr.arg.value))
            expr = expr.node
        else:
            break
    if isinstance(expr, nodes.Name) and expr.name in PERSONAL and expr.ctx == "load":
        return expr, (expr.name, tuple(reversed(steps)), missing)
    return None


def _found(found: list[tuple[nodes.Name, Chain]], expr: nodes.Node | None, missing: bool = False) -> bool:
    """Add `expr` to `found` if it is a personal chain; whether it was."""
    chain = _chain(expr, missing)
    if chain is not None:
        found.append(chain)
    return chain is not None


def _written(expr: nodes.Node, found: list[tuple[nodes.Name, Chain]]) -> None:
    """Collect the chains an output expression writes as they are (the module's docstring)."""
    if _found(found, expr):
        return
    if isinstance(expr, nodes.Or):
        _written(expr.left, found)
        _written(expr.right, found)
    elif isinstance(expr, nodes.CondExpr):
        _tested(expr.test, found)
        _written(expr.expr1, found)
        if expr.expr2 is not None:
            _written(expr.expr2, found)
    elif isinstance(expr, nodes.Filter) and expr.name in _DEFAULT and _constant_arguments(expr):
        _found(found, expr.node, missing=True)


def _tested(expr: nodes.Node, found: list[tuple[nodes.Name, Chain]]) -> None:
    """Collect the chains a test reads only the truth or presence of (the module's docstring)."""
    if _found(found, expr):
        return
    if isinstance(expr, nodes.Not):
        _tested(expr.node, found)
    elif isinstance(expr, nodes.And | nodes.Or):
        _tested(expr.left, found)
        _tested(expr.right, found)
    elif isinstance(expr, nodes.Test) and expr.name in _TESTS and _constant_arguments(expr):
        _found(found, expr.node, missing=expr.name in _PRESENCE_TESTS)


def _constant_arguments(expr: nodes.Filter | nodes.Test) -> bool:
    """Whether a filter's or test's arguments are all written in the template (none personal)."""
    return (expr.node is not None and expr.dyn_args is None and expr.dyn_kwargs is None
            and all(isinstance(arg, nodes.Const) for arg in expr.args)
            and all(isinstance(kwarg.value, nodes.Const) for kwarg in expr.kwargs))


def as_is_chains(trees: Iterable[nodes.Template]) -> tuple[Chain, ...] | None:
    """The personal chains that templates (one with all it extends and includes) write as they are.

    None when any template uses a personal value any other way, or does anything the
    module's docstring lists as unclear: those emails keep the per-email comparison.
    """
    found: list[tuple[nodes.Name, Chain]] = []
    trees = list(trees)
    for tree in trees:
        if any(True for _ in tree.find_all(_CAPTURING)):
            return None
        if any(f.recursive for f in tree.find_all(nodes.For)):
            return None
        if any(f.name == "random" for f in tree.find_all(nodes.Filter)):
            return None
        if any(n.name in _UNCLEAR_NAMES for n in tree.find_all(nodes.Name)):
            return None
        for output in tree.find_all(nodes.Output):
            for expr in output.nodes:
                _written(expr, found)
        for branch in tree.find_all(nodes.If):  # an {% elif %} is an If of its own
            _tested(branch.test, found)
    allowed = {id(name) for name, _ in found}
    for tree in trees:
        # Any other reading, or a store (`{% set subscriber = ... %}`, a loop variable).
        if any(n.name in PERSONAL and id(n) not in allowed for n in tree.find_all(nodes.Name)):
            return None
        if any(n.name in PERSONAL for n in tree.find_all(nodes.NSRef)):  # `{% set subscriber.x = ... %}`
            return None
    return tuple(chain for _, chain in found)


def written_as_leaves(env: Environment, marked: dict[str, Any], chains: Iterable[Chain]) -> bool:
    """Whether each chain reaches, in the marked context, a value the skeleton writes right for everyone.

    A whole marker (a non-empty string), an exact '' or an int, bool or None: the shape
    of the key holds the last three as they are. Not a float (0.0 and -0.0 are one key
    and two texts), not a dict or list (written by repr), not a missing value unless the
    template lets it be (a chain under `default`, `is defined`: the key's dict keys are
    the same for everyone). Each step is taken from a dict or a list, as the compiled
    template takes it (env.getattr, env.getitem): those are what the shape describes item
    by item (a tuple is one value in it, where 1 and True are equal).
    """
    for root, steps, missing in chains:
        if root not in marked:
            return False
        value = marked[root]
        try:
            for is_attribute, key in steps:
                if not isinstance(value, dict | list):
                    return False
                value = env.getattr(value, key) if is_attribute else env.getitem(value, key)
        except Exception:  # a sandbox refusal, say: no proof
            return False
        if missing and isinstance(value, Undefined):
            continue
        if type(value) is str:
            if value and not _WHOLE_MARKER.fullmatch(value):
                return False
        elif type(value) not in (int, bool, type(None)):
            return False
    return True
