"""Operational scripts (robustness runs); importable so that tests share their measuring code."""
