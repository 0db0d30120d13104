"""The typed search space of ``tune.space``: which fusion structures a fold's search samples and which candidate
values each trial's exhaustive fit tries.

Sections are frozen dataclasses built by ``ser.config.mapping.from_mapping`` like every other config section (unknown keys
refused with the closest valid one, errors naming ``tune.space.select.gate``), and documented by the same generator
(``docs/config.md``). Choice lists are tuples; YAML gives lists, which are checked and stored as tuples.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ser.config.backends import doc
from ser._util.checks import is_count
from ser.fusion.rules import GATES, WEIGHT_GATES, searchable_rules
from ser.fusion.text import NEGATIVE_SPLITS, PRIORS, SPREADS
from ser._util.io import InputError

VARIANTS = ("speech", "select", "loglinear", "average", "joint", "logistic", "published")
"""The built-in search variants (``ser.tuning.search.BUILTIN_VARIANTS`` says how each is sampled and fitted); a registered
fusion rule with its own search hooks may be named beside them."""


@dataclass(frozen=True)
class Candidates:
    """Candidate values: ``steps`` evenly spaced in ``range``, or at ``steps`` evenly spaced ``quantiles`` of the
    rows' values (exactly one of the two)."""

    quantiles: tuple[float, float] | None = field(default=None, metadata=doc("[low, high] quantile levels in [0, 1]"))
    range: tuple[float, float] | None = field(default=None, metadata=doc("[low, high] values"))
    steps: int = field(default=40, metadata=doc("how many candidates"))

    def __post_init__(self) -> None:
        for key in ("quantiles", "range"):
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))

    def check(self, where: str) -> None:
        """Exactly one of ``quantiles`` and ``range``, an ordered pair each, and a positive ``steps``."""
        if (self.quantiles is None) == (self.range is None):
            raise InputError(f"{where} must be {{quantiles: [lo, hi], steps: n}} or {{range: [lo, hi], steps: n}}, "
                             f"got {self.to_config()!r}")
        if self.quantiles is not None:
            interval(self.quantiles, f"{where}.quantiles", 0.0, 1.0)
        else:
            interval(self.range, f"{where}.range", -np.inf, np.inf)
        if not is_count(self.steps):
            raise InputError(f"{where}.steps must be a positive integer, got {self.steps!r}")

    def to_config(self) -> dict:
        """As written in YAML (the unused bound left out)."""
        bound = {"quantiles": list(self.quantiles)} if self.quantiles is not None else \
            {"range": list(self.range)} if self.range is not None else {}
        return {**bound, "steps": self.steps}

    def values(self, data: np.ndarray) -> np.ndarray:
        """The candidates: evenly spaced in ``range``, or at evenly spaced ``quantiles`` of ``data``."""
        if self.range is not None:
            return np.linspace(*self.range, self.steps)
        if len(data) == 0:
            return np.array([np.inf])
        return np.unique(np.quantile(data, np.linspace(*self.quantiles, self.steps)))

    def count(self, rows: int) -> int:
        """How many candidates at most, on ``rows`` values (quantiles of fewer rows coincide)."""
        return min(self.steps, rows) if self.quantiles is not None else self.steps


def choices(values: Any, allowed: tuple, where: str) -> tuple:
    """A non-empty list of allowed values, as a tuple; anything else names ``where``."""
    if not isinstance(values, (list, tuple)) or not values:
        raise InputError(f"{where} must be a non-empty list of {list(allowed)}, got {values!r}")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise InputError(f"{where}: unknown choice(s) {bad}; allowed: {list(allowed)}")
    return tuple(values)


def interval(values: Any, where: str, lo: float, hi: float) -> tuple[float, float]:
    """An ordered pair inside [lo, hi], as a tuple."""
    if (not isinstance(values, (list, tuple)) or len(values) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            or not lo <= values[0] <= values[1] <= hi):
        raise InputError(f"{where} must be [low, high] with {lo} <= low <= high <= {hi}, got {values!r}")
    return tuple(values)


@dataclass(frozen=True)
class SelectSpace:
    """``tune.space.select``: the structures a ``select`` trial samples and the thresholds its fit tries."""

    gate: tuple[str, ...] = field(default=("hv", "h", "v"), metadata=doc(f"gate forms, of {sorted(GATES)}"))
    thresholds: tuple[str, ...] = field(default=("global", "per_class"), metadata=doc(
        "global thresholds, or per speech-predicted class (coordinate ascent)"))
    tau_h: Candidates = field(default=Candidates(quantiles=(0.02, 0.98), steps=40), metadata=doc(
        "entropy threshold candidates: {quantiles: [lo, hi], steps: n} of the tuning rows, or {range: [lo, hi], "
        "steps: n}"))
    tau_v: Candidates = field(default=Candidates(quantiles=(0.02, 0.98), steps=40), metadata=doc(
        "varentropy threshold candidates, as tau_h"))
    negative: tuple[str, ...] = field(default=("refer", "score-split"), metadata=doc("negative mappings sampled"))
    split_t: tuple[float, float] = field(default=(0.0, 0.7), metadata=doc(
        "score-split threshold range [low, high] in [0, 1]"))
    merge: tuple[str, ...] = field(default=("replace", "exclude"), metadata=doc(
        "replace: switch wherever the gate fires; exclude: also learn transitions never taken"))
    rounds: int = field(default=2, metadata=doc("coordinate-ascent rounds of per-class thresholds"))

    def __post_init__(self) -> None:
        where = "tune.space.select."
        for key, allowed in (("gate", tuple(GATES)), ("thresholds", ("global", "per_class")),
                             ("negative", ("refer", "score-split")), ("merge", ("replace", "exclude"))):
            object.__setattr__(self, key, choices(getattr(self, key), allowed, where + key))
        object.__setattr__(self, "split_t", interval(self.split_t, where + "split_t", 0.0, 1.0))
        self.tau_h.check(where + "tau_h")
        self.tau_v.check(where + "tau_v")
        if not is_count(self.rounds):
            raise InputError(f"{where}rounds must be a positive integer, got {self.rounds!r}")


@dataclass(frozen=True)
class SoftSpace:
    """``tune.space.soft``: the structures a soft (log-linear, average, joint) trial samples and the weights its
    fit tries."""

    w: Candidates = field(default=Candidates(range=(0.0, 1.0), steps=51), metadata=doc("text weight candidates"))
    weight_gate: tuple[str, ...] = field(default=("none", "entropy", "scaled"), metadata=doc(
        f"weight gates, of {list(WEIGHT_GATES)}"))
    gate_quantile: tuple[float, float] = field(default=(0.1, 0.9), metadata=doc(
        "entropy gate: range of the H quantile sampled as τ_H"))
    spread: tuple[str, ...] = field(default=("probs", "top"), metadata=doc(f"text distributions, of {list(SPREADS)}"))
    negative_split: tuple[str, ...] = field(default=("even", "ratio"), metadata=doc(
        f"negative mass splits, of {list(NEGATIVE_SPLITS)}"))
    prior: tuple[str, ...] = field(default=PRIORS, metadata=doc(
        "keep the mapped text distribution, or divide it by its mean on the tuning rows (the text's own prior), "
        f"of {list(PRIORS)}"))
    uniform: tuple[float, ...] = field(default=(0.0, 0.2, 0.5), metadata=doc("uniform mixing weights in [0, 1]"))
    joint_w: Candidates = field(default=Candidates(range=(0.0, 1.0), steps=26), metadata=doc(
        "per-path weight candidates of a joint fusion (combinations summing to at most 1)"))

    def __post_init__(self) -> None:
        where = "tune.space.soft."
        for key, allowed in (("weight_gate", WEIGHT_GATES), ("spread", SPREADS),
                             ("negative_split", NEGATIVE_SPLITS), ("prior", PRIORS)):
            object.__setattr__(self, key, choices(getattr(self, key), allowed, where + key))
        uniform = self.uniform
        if not isinstance(uniform, (list, tuple)) or not uniform or \
                not all(isinstance(u, (int, float)) and not isinstance(u, bool) and 0 <= u <= 1 for u in uniform):
            raise InputError(f"{where}uniform must be a non-empty list of numbers in [0, 1], got {uniform!r}")
        object.__setattr__(self, "uniform", tuple(uniform))
        object.__setattr__(self, "gate_quantile", interval(self.gate_quantile, where + "gate_quantile", 0.0, 1.0))
        self.w.check(where + "w")
        self.joint_w.check(where + "joint_w")


@dataclass(frozen=True)
class SearchSpace:
    """``tune.space``: what each fold's search samples. ``joint`` (one weight per text path) is searched only where
    the tuning rows carry further text paths (``text_*:NAME``)."""

    variants: tuple[str, ...] = field(default=VARIANTS, metadata=doc(f"fusion structures sampled, of {list(VARIANTS)}"))
    anchors: bool = field(default=True, metadata=doc(
        "evaluate speech alone, each one-weight log-linear fusion and the published procedure first"))
    select: SelectSpace = field(default_factory=SelectSpace, metadata=doc("see `tune.space.select.*`"))
    soft: SoftSpace = field(default_factory=SoftSpace, metadata=doc("see `tune.space.soft.*`"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", choices(self.variants, (*VARIANTS, *searchable_rules()),
                                                     "tune.space.variants"))
        if not isinstance(self.anchors, bool):
            raise InputError(f"tune.space.anchors must be true or false, got {self.anchors!r}")

    def without_joint(self) -> "SearchSpace":
        return replace(self, variants=tuple(v for v in self.variants if v != "joint"))
