"""The `funnel` command line: each module adds its commands to the one group."""

from engine.cli import authoring, daemon, form, guardrails, init, stats, subscribers, testmail
from engine.cli.main import main

__all__ = ["authoring", "daemon", "form", "guardrails", "init", "main", "stats", "subscribers", "testmail"]
