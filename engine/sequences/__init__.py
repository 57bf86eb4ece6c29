"""Sequence files: load with positions, validate, compile into a Plan."""
