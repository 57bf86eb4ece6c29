"""The numbers: reports, guardrail rules, alerts and Prometheus metrics."""
