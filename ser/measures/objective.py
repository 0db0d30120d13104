"""What a search maximizes on its tuning rows: a metric aggregated over the tuning set's groups.

Every figure ser reports is the mean over folds of per-fold scores, so by default a search fits and ranks on
the same aggregation of its tuning set: the mean over the tuning rows' groups (folds) of each group's score
(``fold-mean``), which weights every speaker equally. ``pooled`` scores all tuning rows as one set, which
favours what helps the larger groups' classes. Both work on per-group confusion counts, so any search that
counts per group (soft weights, threshold grids, the per-class ascent) aggregates either way in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ser.measures.metrics import METRICS, confusion, fold_confusions, metric_from_confusion, metric_from_counts
from ser._util.io import InputError

AGGREGATES = ("fold-mean", "pooled")


@dataclass(frozen=True)
class Objective:
    """``metric`` (one of ``METRICS``) aggregated over groups as ``aggregate`` (one of ``AGGREGATES``)."""

    metric: str = "macro_f1"
    aggregate: str = "fold-mean"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise InputError(f"objective '{self.metric}' is not one of {list(METRICS)}")
        if self.aggregate not in AGGREGATES:
            raise InputError(f"aggregate '{self.aggregate}' is not one of {list(AGGREGATES)}")

    def of_confusions(self, per_group: np.ndarray) -> np.ndarray:
        """Per-group confusions (G, ..., K, K) → the aggregated objective (...)."""
        if self.aggregate == "pooled":
            return metric_from_confusion(per_group.sum(axis=0), self.metric)
        return metric_from_confusion(per_group, self.metric).mean(axis=0)

    def of_counts(self, tp: np.ndarray, n_pred: np.ndarray, support: np.ndarray) -> np.ndarray:
        """Per-group class counts (G, ..., K) → the aggregated objective (...)."""
        if self.aggregate == "pooled":
            return metric_from_counts(tp.sum(axis=0), n_pred.sum(axis=0), support.sum(axis=0), self.metric)
        return metric_from_counts(tp, n_pred, support, self.metric).mean(axis=0)

    def without_each(self, per_group: np.ndarray) -> np.ndarray:
        """(G, ..., K, K) → (G, ...): for each group g, the objective of the other groups alone (a refit without g
        sees exactly these), from the same counts."""
        if self.aggregate == "pooled":
            return metric_from_confusion(per_group.sum(axis=0)[None] - per_group, self.metric)
        scores = metric_from_confusion(per_group, self.metric)
        return (scores.sum(axis=0)[None] - scores) / max(len(scores) - 1, 1)

    def score(self, y: np.ndarray, pred: np.ndarray, group: np.ndarray, k: int) -> float:
        """The aggregated objective of one labelling of the tuning rows (``group``: any integer codes)."""
        if self.aggregate == "pooled":
            return float(metric_from_confusion(confusion(y, pred, k), self.metric))
        n_groups, codes = group_codes(group)
        return float(self.of_confusions(fold_confusions(y, pred, codes, n_groups, k)))


def group_codes(group: np.ndarray) -> tuple[int, np.ndarray]:
    """(number of groups, 0-based code per row) of any integer group labels."""
    values, codes = np.unique(group, return_inverse=True)
    return len(values), codes
