"""One move of the interpreter: a new state and the actions it takes; `step` loops over moves.

Shared by the stages of joining a funnel (engine/flow/joining.py) and the rest of the
interpreter (engine/flow/step.py). A stage handler returns a Move, or the reason it
waits (engine/flow/waits.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.flow.actions import Action, End, Send
from engine.flow.state import Done, Stage, State
from engine.sequences.plan import EmailStep


@dataclass(frozen=True)
class Move:
    """The state after one move, and what it does."""

    state: State
    actions: tuple[Action, ...] = ()


def send(state: State, email: EmailStep, **changes: object) -> Move:
    """Send `email` now and note it as done; `changes`: other State fields to set."""
    done = Done(email.id, email.path, email.role)
    moved = state.replaced(done=(*state.done, done), **changes)
    return Move(moved, (Send(email, state.segment),))


def end(state: State, reason: str) -> Move:
    """End the enrollment for `reason`."""
    return Move(state.replaced(stage=Stage.ENDED, step=None, reason=reason), (End(reason),))
