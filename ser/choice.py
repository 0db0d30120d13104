"""Which trial a fold keeps: the choice rules over a search's trials (``tune.choice``).

The best of thousands of configurations fitted to one tuning set scores well there partly by luck, so the
default rule (``levels``) ranks trials of equal complexity by their tuning score and then prefers the
fewest free parameters among the finalists within one (overlap-corrected) standard error of the best inner
leave-one-group-out estimate; speech alone, with nothing fitted, is always a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ser.config import CHOICES
from ser.fusion import free_parameters
from ser.search import TrialResult


@dataclass(frozen=True)
class TrialRecord:
    """One search trial: the sampled structure, the configuration it settled on, its tuning score."""

    number: int
    params: dict
    config: dict
    score: float
    n_configs: int
    inner: list[float] | None = None

    @classmethod
    def from_result(cls, number: int, params: dict, result: TrialResult) -> "TrialRecord":
        return cls(number, params, result.config, float(result.score), int(result.n_configs),
                   None if result.inner is None else [float(x) for x in result.inner])

    @property
    def inner_mean(self) -> float | None:
        return None if self.inner is None else float(np.mean(self.inner))

    @property
    def selection_score(self) -> float:
        """What the sampler maximizes: the inner estimate where there is one, else the tuning score."""
        return self.score if self.inner is None else self.inner_mean


def standard_error(values: Any) -> float | None:
    """Standard error of the mean (sample std / √n); None for fewer than two values."""
    v = np.asarray(values, dtype=float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else None


def _within_one_se(best: TrialRecord, other: TrialRecord, corrected: bool = False) -> bool:
    """Is ``other``'s inner estimate within one standard error of ``best``'s (paired over the same groups)?

    ``corrected``: the SE is widened by √(1 + J/(J − 1)) for J groups (Nadeau & Bengio, 2003): the J
    per-group scores come from refits on overlapping data, so the plain SE understates the noise.
    """
    d = np.asarray(best.inner) - np.asarray(other.inner)
    se = standard_error(d) or 0.0
    if corrected:
        se *= np.sqrt(1 + len(d) / (len(d) - 1))
    return bool(d.mean() <= se + 1e-12)


def choose_trial(records: list[TrialRecord], rule: str = "levels") -> TrialRecord:
    """The trial a fold keeps.

    ``tuning-best``: highest score on the tuning rows (optimistic: the winner's curse).
    ``inner-best``: highest inner leave-one-group-out estimate.
    ``one-se``: among trials whose inner estimate is within one standard error of the best one
    (the SE of the per-group differences), the one with the fewest free parameters; ties to the
    higher inner estimate, then the earlier trial.
    ``levels``: first, per complexity level (number of free parameters), the trial with the best
    tuning score. Trials with as many fitted parameters are about equally optimistic, and the
    tuning score ranks them with less noise than cross-validation does. Then ``one-se`` among
    these finalists, with the overlap-corrected SE.
    Trials without inner estimates (a tuning set of one group) fall back to ``tuning-best``. Every
    rule is deterministic.
    """
    if rule not in CHOICES:
        raise ValueError(f"choice '{rule}' is not one of {list(CHOICES)}")
    if rule == "tuning-best" or any(r.inner is None for r in records):
        return max(records, key=lambda r: (r.score, -r.number))
    if rule == "levels":
        by_level: dict[int, list[TrialRecord]] = {}
        for r in records:
            by_level.setdefault(free_parameters(r.config), []).append(r)
        records = [max(level, key=lambda r: (r.score, -r.number)) for level in by_level.values()]
    best = max(records, key=lambda r: (r.inner_mean, -r.number))
    if rule == "inner-best":
        return best
    close = [r for r in records if _within_one_se(best, r, corrected=rule == "levels")]
    return min(close, key=lambda r: (free_parameters(r.config), -r.inner_mean, r.number))
