"""The `funnel` command line: each module adds its commands to the one group."""

from engine.cli import authoring, daemon, subscribers, testmail
from engine.cli.main import main

__all__ = ["authoring", "daemon", "main", "subscribers", "testmail"]
