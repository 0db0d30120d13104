"""Logistic fusion: a multinomial logistic regression of the emotion class on the speech log-probabilities and every
text path's log-sentiment, fitted on the tuning rows.

The hand-mapped fusions read the text through a fixed sentiment → emotion mapping and take the speech argmax as
it comes; this one learns both from labelled tuning rows: how much each sentiment says about each class, and how
the speech model's classes trade off (a fine-tuned model's argmax is not the best macro-F1 decision for the
speakers it has not seen). Rows are weighted so that each class counts equally where the objective averages over
classes (UA, macro-F1) and each tuning group counts equally where it averages over groups (``fold-mean``). Its
many coefficients put it at the highest complexity level, so ``levels`` keeps it only where its inner estimate
leads the simpler fusions by a standard error (``ser.tuning.choice``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from ser.data.arrays import ScoreArrays
from ser.data.labels import SENTIMENTS, LabelSet
from ser.fusion.rules import Decision, register_rule
from ser.fusion.text import EPS
from ser.measures.objective import Objective, group_codes
from ser._util.io import InputError

CLASS_AVERAGED = ("ua", "macro_f1")
"""Objectives that weight every class equally: the fit weights rows by inverse class frequency for them."""
C = 1.0
"""Inverse L2 strength (scikit-learn's default); with thousands of tuning rows and a few dozen coefficients it
barely matters (0.1 and 1.0 gave the same folds within 0.05 points on the calibrated generator)."""
ABSENT = -1e6
"""Intercept of a class no tuning row has: never predicted (finite, so the configuration stays valid JSON)."""


def features(a: ScoreArrays, paths: list[str]) -> np.ndarray:
    """(n, K + 3·P): the speech log-probabilities, then each path's log-sentiment (neg, neu, pos), floored at EPS."""
    return np.log(np.maximum(np.hstack([a.p, *(a.text(path) for path in paths)]), EPS))


def row_weights(a: ScoreArrays, objective: Objective) -> np.ndarray:
    """Sample weights that make the fit follow ``objective``: classes equal for class-averaged metrics, tuning
    groups equal for ``fold-mean``; they sum to the number of rows."""
    w = np.ones(len(a))
    if objective.metric in CLASS_AVERAGED:
        counts = np.bincount(a.y, minlength=a.labels.k).astype(float)
        w *= len(a) / (np.count_nonzero(counts) * counts[a.y])
    if objective.aggregate == "fold-mean":
        n_groups, codes = group_codes(a.group)
        w *= len(a) / (n_groups * np.bincount(codes)[codes])
    return w * len(a) / w.sum()


def fit_logistic(a: ScoreArrays, objective: Objective = Objective(), paths: list[str] | None = None
                 ) -> "LogisticRule":
    """The rule fitted on arrays ``a`` (labelled tuning rows) over text ``paths`` (every path ``a`` carries if
    None)."""
    from sklearn.linear_model import LogisticRegression   # imported here: scikit-learn takes ~0.5 s to import

    k, paths = a.labels.k, list(a.paths if paths is None else paths)
    x = features(a, paths)
    present = np.flatnonzero(np.bincount(a.y, minlength=k))
    coef, intercept = np.zeros((k, x.shape[1])), np.full(k, ABSENT)
    if len(present) == 1:                 # one class among the tuning rows: predict it
        intercept[present] = 0.0
        return LogisticRule(tuple(paths), coef, intercept)
    model = LogisticRegression(C=C, solver="newton-cholesky", max_iter=100)   # ~15 ms on 5,000 rows (lbfgs ~150)
    model.fit(x, a.y, sample_weight=row_weights(a, objective))
    if len(present) == 2:                 # scikit-learn's binary form: one row for the second class
        model.coef_ = np.vstack([-model.coef_ / 2, model.coef_ / 2])
        model.intercept_ = np.r_[-model.intercept_ / 2, model.intercept_ / 2]
    coef[present], intercept[present] = model.coef_, model.intercept_
    return LogisticRule(tuple(paths), np.round(coef, 6), np.round(intercept, 6))


@register_rule
@dataclass(frozen=True)
class LogisticRule:
    """argmax over classes of coef · features + intercept (:func:`features`), for the text paths ``paths`` (none:
    speech recalibrated, the reference the search holds a logistic fusion's text against)."""

    paths: tuple[str, ...]
    coef: np.ndarray          # (K, K + 3·P)
    intercept: np.ndarray     # (K,)
    kind: ClassVar[str] = "logistic"
    keys: ClassVar[frozenset[str]] = frozenset({"paths", "coef", "intercept"})

    @classmethod
    def from_config(cls, raw: Mapping[str, Any], labels: LabelSet) -> "LogisticRule":
        paths = raw["paths"]
        if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) for p in paths):
            raise InputError(f"paths must be a list of text path names (empty: speech alone), got {paths!r}")
        coef = np.asarray(raw["coef"], dtype=float)
        intercept = np.asarray(raw["intercept"], dtype=float)
        width = labels.k + len(SENTIMENTS) * len(paths)
        if coef.shape != (labels.k, width) or intercept.shape != (labels.k,):
            raise InputError(f"a logistic fusion over {len(paths)} text path(s) needs coef {labels.k}×{width} and "
                             f"intercept of {labels.k} values, got {coef.shape} and {intercept.shape}")
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise InputError("coef and intercept must be finite numbers")
        return cls(tuple(paths), coef, intercept)

    def to_config(self) -> dict:
        return {"kind": self.kind, "paths": list(self.paths), "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist()}

    @staticmethod
    def free_parameters(config: Mapping[str, Any]) -> int:
        """Identifiable coefficients: (K − 1) · (features + 1)."""
        k = len(config["intercept"])
        return (k - 1) * (k + len(SENTIMENTS) * len(config["paths"]) + 1)

    @staticmethod
    def describe(config: Mapping[str, Any]) -> str:
        if not config["paths"]:
            return "logistic regression on speech alone (a recalibration, no text)"
        return f"logistic regression on speech and {', '.join(config['paths'])} text"

    def decide(self, a: ScoreArrays) -> Decision:
        pred = np.argmax(features(a, list(self.paths)) @ self.coef.T + self.intercept, axis=1)
        return Decision(pred, pred != a.speech)
