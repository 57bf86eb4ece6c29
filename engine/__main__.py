"""`python -m engine` runs the `funnel` command."""

from engine.cli import main

main()
