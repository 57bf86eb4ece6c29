"""Benchmarks: the engine's sending rate against a raw aiosmtplib baseline, both into smtp-sink."""
