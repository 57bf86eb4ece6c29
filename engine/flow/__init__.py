"""The pure interpreter: step(plan, state, facts, now) -> (state, actions, wake_at)."""
