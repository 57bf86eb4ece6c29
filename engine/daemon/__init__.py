"""The daemon: its parts wired from Settings, and the runner that serves HTTP and ticks."""
