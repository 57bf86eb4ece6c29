"""funnel-engine: sequence files in, a dated timeline of email out."""

__version__ = "0.1.0"
