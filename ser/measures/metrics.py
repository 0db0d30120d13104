"""Classification metrics from confusion counts, vectorized over any leading batch axes.

Definitions follow scikit-learn's defaults: UA = balanced accuracy (mean recall over classes
present in the gold labels); macro/weighted F1 over classes present in gold or predictions.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ser._util.io import InputError
from ser.data.labels import LabelSet

METRICS = ("ua", "wa", "macro_f1", "weighted_f1")
REPORTED_METRICS = ("ua", "wa", "macro_f1")
"""The metrics a leaderboard and a transfer matrix show side by side (the field's usual three)."""


def confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """K×K confusion counts, rows = gold, columns = predicted."""
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def cell_codes(y: np.ndarray, pred: np.ndarray, k: int, fold_index: np.ndarray | None = None) -> np.ndarray:
    """Each row's confusion cell as one integer, (fold · K + gold) · K + predicted (broadcast over leading axes):
    a bootstrap gathers these once per resample instead of the gold, predicted and fold arrays apart."""
    codes = np.asarray(y) * k + np.asarray(pred)
    return codes if fold_index is None else np.asarray(fold_index) * (k * k) + codes


def count_cells(codes: np.ndarray, cells: int) -> np.ndarray:
    """Cell codes (..., n) → counts (..., ``cells``), every leading batch in one bincount."""
    lead = codes.shape[:-1]
    batches = int(np.prod(lead))
    flat = codes.reshape(batches, -1) + (np.arange(batches) * cells)[:, None]
    return np.bincount(flat.ravel(), minlength=batches * cells).reshape(lead + (cells,))


def batched_confusion(y: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """Confusions of B prediction vectors against the same or per-batch gold: (B, n) → (B, K, K)."""
    preds = np.atleast_2d(preds)
    return count_cells(cell_codes(y, preds, k), k * k).reshape(-1, k, k)


def fold_confusions(y: np.ndarray, pred: np.ndarray, fold_index: np.ndarray, n_folds: int, k: int) -> np.ndarray:
    """Per-fold confusion matrices in one bincount: ``y``, ``pred`` and ``fold_index`` broadcast to (..., n),
    the result is (..., n_folds, K, K)."""
    codes = cell_codes(y, pred, k, fold_index)
    return count_cells(codes, n_folds * k * k).reshape(codes.shape[:-1] + (n_folds, k, k))


def metric_from_counts(tp: np.ndarray, n_pred: np.ndarray, support: np.ndarray, metric: str) -> np.ndarray:
    """One metric from per-class counts (last axis = class): what a search needs thousands of times, without the
    other three (``ua``: mean recall over classes present in gold; ``wa``: accuracy; ``macro_f1``, ``weighted_f1``:
    F1 over classes present in gold or predictions, unweighted or weighted by support)."""
    tp, n_pred, support = (np.asarray(x, dtype=np.float64) for x in (tp, n_pred, support))
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "wa":
            return tp.sum(axis=-1) / support.sum(axis=-1)
        present = support > 0
        if metric == "ua":
            return np.where(present, tp / support, 0.0).sum(axis=-1) / present.sum(axis=-1)
        denom = support + n_pred
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
        if metric == "macro_f1":
            return f1.sum(axis=-1) / (present | (n_pred > 0)).sum(axis=-1)
        if metric == "weighted_f1":
            return (f1 * support).sum(axis=-1) / support.sum(axis=-1)
    raise InputError(f"unknown metric '{metric}' (one of {list(METRICS)})")


def scores_from_counts(tp: np.ndarray, n_pred: np.ndarray, support: np.ndarray) -> dict[str, np.ndarray]:
    """UA, WA, macro-F1 and weighted-F1 from per-class counts (last axis = class)."""
    # converted once, not once per metric
    tp, n_pred, support = (np.asarray(x, dtype=np.float64) for x in (tp, n_pred, support))
    return {m: metric_from_counts(tp, n_pred, support, m) for m in METRICS}


def metric_from_confusion(c: np.ndarray, metric: str) -> np.ndarray:
    """One metric of one (K, K) or many (..., K, K) confusion matrices."""
    return metric_from_counts(np.diagonal(c, axis1=-2, axis2=-1), c.sum(axis=-2), c.sum(axis=-1), metric)


def scores_from_confusion(c: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of one (K, K) or many (..., K, K) confusion matrices."""
    return scores_from_counts(np.diagonal(c, axis1=-2, axis2=-1), c.sum(axis=-2), c.sum(axis=-1))


def fold_scores(y: np.ndarray, pred: np.ndarray, fold_index: np.ndarray, n_folds: int, k: int) -> dict[str, np.ndarray]:
    """Every metric per fold (arrays of length ``n_folds``, or (..., n_folds) for batched predictions)."""
    return scores_from_confusion(fold_confusions(y, pred, fold_index, n_folds, k))


def summary(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, float]:
    """The four headline metrics as plain floats."""
    return {m: float(v) for m, v in scores_from_confusion(confusion(y, pred, k)).items()}


def per_class(c: np.ndarray, labels: LabelSet) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    tp = np.diagonal(c).astype(float)
    n_pred, support = c.sum(axis=0), c.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(n_pred > 0, tp / n_pred, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(support + n_pred > 0, 2 * tp / (support + n_pred), 0.0)
    return {cls: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                  "support": int(support[i])} for i, cls in enumerate(labels.classes)}


def switch_stats(y: np.ndarray, speech: np.ndarray, fused: np.ndarray, labels: LabelSet) -> dict:
    """How the fused labels differ from speech: rate, wrong→right, right→wrong, wrong→wrong, per transition."""
    k = labels.k
    switched = fused != speech
    was_right, now_right = speech == y, fused == y
    w2r = switched & ~was_right & now_right
    r2w = switched & was_right & ~now_right
    w2w = switched & ~was_right & ~now_right
    pair = speech * k + fused
    per = {name: np.bincount(pair[m], minlength=k * k) for name, m in
           (("n", switched), ("wrong_to_right", w2r), ("right_to_wrong", r2w), ("wrong_to_wrong", w2w))}
    transitions = {
        f"{labels.classes[i // k]}->{labels.classes[i % k]}": {name: int(v[i]) for name, v in per.items()}
        for i in np.flatnonzero(per["n"])
    }
    n = len(y)
    return {"n": int(n), "switched": int(switched.sum()), "rate": float(switched.sum() / n) if n else 0.0,
            "wrong_to_right": int(w2r.sum()), "right_to_wrong": int(r2w.sum()),
            "wrong_to_wrong": int(w2w.sum()), "transitions": transitions}


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    v = np.asarray(list(values), dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
