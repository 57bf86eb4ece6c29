"""Compile a checked Broadcast model into the BroadcastPlan the interpreter and the store read."""

from __future__ import annotations

from engine.sequences.broadcast_model import Broadcast
from engine.sequences.compile import experiment_of
from engine.sequences.plan import Audience, BroadcastPlan, EmailStep, PathKind, RatioBreak, Role


def compile_broadcast(broadcast: Broadcast, source: str) -> BroadcastPlan:
    """Turn a broadcast that passed its checks into a BroadcastPlan; `source` is its file as shown."""
    audience = broadcast.audience
    send = broadcast.send
    return BroadcastPlan(
        id=broadcast.broadcast,
        name=broadcast.name or broadcast.broadcast,
        funnel=broadcast.funnel,
        source=source,
        email=EmailStep(id=broadcast.broadcast, path=PathKind.BROADCAST, segment=None,
                        role=Role(broadcast.email.role), subject=broadcast.email.subject,
                        template=broadcast.email.template, **experiment_of(broadcast.email)),
        audience=Audience(
            segments=frozenset(audience.segments) if audience.segments is not None else None,
            stages=frozenset(audience.stages) if audience.stages is not None else None,
            answers=tuple((question, frozenset([accepted] if isinstance(accepted, str) else accepted))
                          for question, accepted in audience.answers.items()),
            tags=frozenset(audience.tags),
            without_tags=frozenset(audience.without_tags),
            bought=frozenset(audience.bought) if audience.bought is not None else None,
            not_bought=frozenset(audience.not_bought) if audience.not_bought is not None else None,
            engaged_within=audience.engaged_within,
            signed_up_after=audience.signed_up_after,
            signed_up_before=audience.signed_up_before,
        ),
        at=send.at,
        local=send.at.tzinfo is None,
        use_window=send.window == "funnel",
        when_ratio_breaks=RatioBreak(send.when_ratio_breaks or RatioBreak.SKIP.value),
        attribution=send.attribution,
    )
