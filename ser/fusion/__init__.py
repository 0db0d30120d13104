"""Fusion rules: how speech and text combine into one label (``rules``, and the registry a new rule joins
with ``register_rule``), how a text path is read as evidence (``text``), the grid of thresholds and weights a rule
is fitted over, and the published rule."""

from ser.fusion.rules import BUILTIN_SYSTEMS, Rule, register_rule, rule_from_config
from ser.fusion import logistic  # noqa: F401  (registers the logistic rule)

__all__ = ["BUILTIN_SYSTEMS", "Rule", "register_rule", "rule_from_config"]
