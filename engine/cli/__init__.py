"""The `funnel` command line: each module adds its commands to the one group when it is imported,
which happens when its command is run (engine/cli/main.py, COMMANDS)."""

from engine.cli.main import main

__all__ = ["main"]
