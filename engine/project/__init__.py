"""A project folder as one release: every sequence file and template, loaded and checked together."""
