"""State.replaced and Facts.replaced say what dataclasses.replace says, and the reasons they may."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import pytest

from engine.flow.state import Done, Event, EventType, Facts, Stage, State, Trial
from engine.sequences.plan import PathKind, Role

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

STATE = State(stage=Stage.NURTURE, since=T0, segment="beginner", step="n1",
              done=(Done("w1", PathKind.NURTURE, Role.EDUCATION),))
FACTS = Facts(timezone="Europe/Paris", events=(Event(EventType.OPEN, T0),), marketing_sent=(T0,),
              trials={"s1": Trial(arms=(("a", 1, 0),))}, key="7")

# A value of each field that differs from the instances' above.
STATE_CHANGES: dict[str, Any] = {
    "stage": Stage.WINBACK, "since": T0.replace(hour=9), "segment": "advanced", "step": None,
    "last_sent_at": T0, "deadline": T0, "done": (), "reason": "why", "resume_stage": Stage.SALES,
    "resume_step": "s2",
}
FACTS_CHANGES: dict[str, Any] = {
    "timezone": "UTC", "magnet": "plan", "events": (), "marketing_sent": (), "joined_at": T0,
    "paused": frozenset({"n1"}), "status": "bounced", "confirmations": (T0,), "held": ("n2",),
    "broadcasts": (("b1", T0),), "trials": {}, "key": "8", "variant": "b",
}


@pytest.mark.parametrize(("original", "changes"), [(STATE, STATE_CHANGES), (FACTS, FACTS_CHANGES)])
def test_every_field_replaced_as_dataclasses_replace_does(
        original: State | Facts, changes: dict[str, Any]) -> None:
    assert set(changes) == {f.name for f in dataclasses.fields(original)}  # a new field is listed here
    for name, value in changes.items():
        fast = original.replaced(**{name: value})
        plain = dataclasses.replace(original, **{name: value})  # type: ignore[arg-type]
        assert fast == plain and vars(fast) == vars(plain) and type(fast) is type(plain)
        assert fast is not original and getattr(fast, name) is value
    assert original.replaced(**changes) == dataclasses.replace(original, **changes)
    assert original.replaced() == original and original.replaced() is not original
    assert vars(original) == vars(dataclasses.replace(original))  # the original is untouched


@pytest.mark.parametrize("original", [STATE, FACTS])
def test_an_unknown_field_is_refused(original: State | Facts) -> None:
    with pytest.raises(TypeError, match="stag"):
        original.replaced(stag=Stage.ENDED)


@pytest.mark.parametrize("cls", [State, Facts])
def test_nothing_that_copying_the_dict_would_skip(cls: type[State | Facts]) -> None:
    """The copy skips __init__ and takes __dict__ as it is: right only while these hold."""
    assert not hasattr(cls, "__post_init__")
    assert all(f.init for f in dataclasses.fields(cls))
    assert not any(isinstance(v, cached_property) for v in vars(cls).values())
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
