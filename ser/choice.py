"""Which trial a fold keeps: the choice rules over a search's trials (``tune.choice``).

The best of thousands of configurations fitted to one tuning set scores well there partly by luck, so the
default rule (``levels``) ranks trials of equal complexity by their tuning score, prefers the fewest free
parameters among the fusion finalists within one (overlap-corrected) standard error of the best inner
leave-one-group-out estimate, and keeps that fusion over speech alone (nothing fitted) only when its inner
estimate is better by half a standard error.
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


SPEECH_MARGIN_SE = 0.5
"""``levels`` keeps a fusion over speech alone when its inner estimate is better by this many corrected SEs."""


def _lead(best: TrialRecord, other: TrialRecord, corrected: bool = False) -> float:
    """How many standard errors ``best``'s inner estimate leads ``other``'s (paired over the same groups).

    ``corrected``: the SE is widened by √(1 + J/(J − 1)) for J groups (Nadeau & Bengio, 2003): the J
    per-group scores come from refits on overlapping data, so the plain SE understates the noise.
    """
    d = np.asarray(best.inner) - np.asarray(other.inner)
    se = standard_error(d) or 0.0
    if corrected:
        se *= np.sqrt(1 + len(d) / (len(d) - 1))
    if se > 0:
        return float(d.mean() / se)
    return 0.0 if abs(d.mean()) <= 1e-12 else float(np.copysign(np.inf, d.mean()))


def _one_se(records: list[TrialRecord], corrected: bool) -> TrialRecord:
    """The fewest free parameters among the trials within one SE of the best inner estimate; ties to the higher
    inner estimate, then the earlier trial."""
    best = max(records, key=lambda r: (r.inner_mean, -r.number))
    close = [r for r in records if _lead(best, r, corrected) <= 1 + 1e-9]
    return min(close, key=lambda r: (free_parameters(r.config), -r.inner_mean, r.number))


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
    the fusion finalists, with the overlap-corrected SE. Speech alone is kept instead unless that
    fusion's inner estimate leads it by ``SPEECH_MARGIN_SE`` corrected SEs: a whole SE forfeits
    text that helps a little in every group.
    Trials without inner estimates (a tuning set of one group) fall back to ``tuning-best``. Every
    rule is deterministic.
    """
    if rule not in CHOICES:
        raise ValueError(f"choice '{rule}' is not one of {list(CHOICES)}")
    if rule == "tuning-best" or any(r.inner is None for r in records):
        return max(records, key=lambda r: (r.score, -r.number))
    if rule == "inner-best":
        return max(records, key=lambda r: (r.inner_mean, -r.number))
    if rule == "one-se":
        return _one_se(records, corrected=False)
    by_level: dict[int, list[TrialRecord]] = {}
    for r in records:
        by_level.setdefault(free_parameters(r.config), []).append(r)
    finalists = [max(level, key=lambda r: (r.score, -r.number)) for level in by_level.values()]
    fused = [r for r in finalists if r.config["kind"] != "speech"]
    speech = [r for r in finalists if r.config["kind"] == "speech"]
    if not fused:
        return speech[0]
    kept = _one_se(fused, corrected=True)
    if speech and _lead(kept, speech[0], corrected=True) <= SPEECH_MARGIN_SE + 1e-9:
        return speech[0]
    return kept
