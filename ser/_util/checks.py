"""Tiny value checks shared by the config sections (YAML's ``true`` is a Python int: refuse it as a count)."""

from __future__ import annotations

from typing import Any


def is_count(value: Any, minimum: int = 1) -> bool:
    """An integer ≥ ``minimum`` that is not a boolean."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_number(value: Any) -> bool:
    """A real number that is not a boolean."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
