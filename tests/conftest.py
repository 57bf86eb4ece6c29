"""Test-wide settings: hypothesis profiles.

- default (a developer's run): 300 random examples per property;
- ci (CI=true): the same number, derandomized, so that a run cannot turn red by chance;
  a failure found locally is pinned with @example instead;
- deep (HYPOTHESIS_PROFILE=deep): 3,000 examples, for hunting bugs before a release.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.register_profile("deep", parent=settings.get_profile("default"), max_examples=3000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))
