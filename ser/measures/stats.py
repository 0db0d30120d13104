"""Significance of a difference between two systems: paired bootstrap and paired tests over folds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ser.measures.metrics import cell_codes, count_cells, metric_from_confusion


# The most index entries one bootstrap chunk may hold (int64: 128 MB per array of this size); every
# resampling function draws its resamples in chunks below it, so memory is linear in the rows, not in
# rows × resamples, and the resamples (one generator, drawn in order) are the same whatever the chunk size.
CHUNK_ELEMENTS = 1 << 24


def resample_chunks(n_boot: int, per_resample: int) -> list[int]:
    """Sizes of consecutive chunks of ``n_boot`` resamples, each holding at most :data:`CHUNK_ELEMENTS` index
    entries when one resample costs ``per_resample`` (at least one resample per chunk)."""
    step = max(1, CHUNK_ELEMENTS // max(1, per_resample))
    return [min(step, n_boot - start) for start in range(0, n_boot, step)]


def paired_bootstrap(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, k: int, *, metric: str = "ua",
                     n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                     strata: np.ndarray | None = None) -> dict[str, float]:
    """Percentile CI of metric(b) - metric(a), resampling utterances (within ``strata`` if given).

    ``p_value`` is the two-sided bootstrap share of resamples whose difference crosses zero.
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    layout = None if strata is None else StrataLayout.of(np.asarray(strata))
    codes = cell_codes(y, np.stack([pred_a, pred_b]), k)
    diffs = []
    for size in resample_chunks(n_boot, 3 * n):            # index and two cell-code arrays per resample
        idx = rng.integers(0, n, size=(size, n)) if layout is None else layout.draw(rng, size)
        values = metric_from_confusion(count_cells(codes[:, idx], k * k).reshape(2, size, k, k), metric)
        diffs.append(values[1] - values[0])
    diffs = np.concatenate(diffs)
    observed = metric_from_confusion(count_cells(codes, k * k).reshape(2, k, k), metric)
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    p = 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())
    return {"metric": metric, "diff": float(observed[1] - observed[0]), "ci_low": float(lo),
            "ci_high": float(hi), "p_value": float(min(p, 1.0)), "n_boot": n_boot, "alpha": alpha}


def bootstrap_ci(y: np.ndarray, preds: np.ndarray, k: int, *, metric: str = "ua", n_boot: int = 300, seed: int = 0,
                 alpha: float = 0.05) -> np.ndarray:
    """Percentile CIs of ``metric`` for S prediction vectors of the same rows: (S, n) → (S, 2)."""
    rng = np.random.default_rng(seed)
    preds = np.atleast_2d(preds)
    s, n = preds.shape
    codes = cell_codes(y, preds, k)
    values = []
    for size in resample_chunks(n_boot, (s + 1) * n):
        idx = rng.integers(0, n, size=(size, n))
        values.append(metric_from_confusion(count_cells(codes[:, idx], k * k).reshape(s, size, k, k), metric))
    return np.quantile(np.hstack(values), [alpha / 2, 1 - alpha / 2], axis=1).T


@dataclass(frozen=True)
class StrataLayout:
    """Rows grouped by stratum (e.g. fold), computed once per bootstrap rather than once per chunk of resamples:
    each row's position in the sorted order, its stratum's first position and its stratum's size."""

    order: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray

    @classmethod
    def of(cls, strata: np.ndarray) -> "StrataLayout":
        order = np.argsort(strata, kind="stable")
        _, starts, counts = np.unique(strata[order], return_index=True, return_counts=True)
        return cls(order, np.repeat(starts, counts), np.repeat(counts, counts))

    def draw(self, rng: np.random.Generator, n_boot: int) -> np.ndarray:
        """Bootstrap index matrix (n_boot, n) resampling each stratum with replacement within itself."""
        draws = (rng.random((n_boot, len(self.order))) * self.sizes).astype(np.int64)
        return self.order[self.offsets + draws]


def _stratified_indices(rng: np.random.Generator, strata: np.ndarray, n_boot: int) -> np.ndarray:
    """Bootstrap index matrix resampling each stratum (e.g. fold) with replacement within itself."""
    return StrataLayout.of(strata).draw(rng, n_boot)


def _fold_means(y: np.ndarray, preds: np.ndarray, fold_index: np.ndarray, k: int, metric: str,
                idx: np.ndarray) -> np.ndarray:
    """Mean over folds of ``metric`` for S prediction vectors (S, n) on B row draws ``idx`` (B, n): (B, S)."""
    n_folds = int(fold_index.max()) + 1
    counts = count_cells(cell_codes(y, preds, k, fold_index)[:, idx], n_folds * k * k)     # (S, B, folds · K²)
    return metric_from_confusion(counts.reshape(counts.shape[:2] + (n_folds, k, k)), metric).mean(axis=2).T


def fold_mean_bootstrap(y: np.ndarray, preds: np.ndarray, fold_index: np.ndarray, k: int, *, metric: str = "ua",
                        n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """The mean over folds of ``metric`` for S prediction vectors of the same rows, on ``n_boot`` resamples
    that draw utterances with replacement within each fold: (S, n) → (S, n_boot), in bounded chunks."""
    rng = np.random.default_rng(seed)
    preds = np.atleast_2d(preds)
    per_resample = (2 * preds.shape[0] + 3) * len(y)        # indices, draws, gold, folds and S·2 predictions
    layout = StrataLayout.of(fold_index)
    return np.hstack([_fold_means(y, preds, fold_index, k, metric, layout.draw(rng, size)).T
                      for size in resample_chunks(n_boot, per_resample)])


def versus_best(y: np.ndarray, preds: np.ndarray, candidates: np.ndarray, fold_index: np.ndarray, k: int, *,
                metric: str = "ua", n_boot: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """One system against the best of several ``candidates`` (C, n), each scored as its mean over folds.

    The best candidate is the one with the highest observed score: it was picked on these very rows,
    which flatters it. ``selection_bias`` estimates by how much: the mean over resamples of the best
    candidate's score minus that one candidate's score (≥ 0; ≈ 0 when one candidate is clearly best).
    ``ci_low``/``ci_high``: percentile CI of the paired difference against that one candidate.
    """
    systems = np.vstack([preds[None], candidates])
    observed = _fold_means(y, systems, fold_index, k, metric, np.arange(len(y))[None])[0]
    values = fold_mean_bootstrap(y, systems, fold_index, k, metric=metric, n_boot=n_boot, seed=seed)
    best = int(np.argmax(observed[1:]))
    lo, hi = np.quantile(values[0] - values[1 + best], [alpha / 2, 1 - alpha / 2])
    return {"metric": metric, "best": best, "diff": float(observed[0] - observed[1 + best]), "ci_low": float(lo),
            "ci_high": float(hi), "selection_bias": float((values[1:].max(axis=0) - values[1 + best]).mean()),
            "n_boot": n_boot, "alpha": alpha}


def paired_fold_test(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    """Per-fold comparison of b against a: folds improved, mean gain, Wilcoxon and paired-t p-values (None where
    undefined)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = b - a
    out = {"n_folds": int(len(d)), "improved": int((d > 0).sum()), "worse": int((d < 0).sum()),
           "mean_gain": float(d.mean()) if len(d) else 0.0, "wilcoxon_p": None, "ttest_p": None}
    if len(d) >= 2 and np.any(d != 0):
        out["wilcoxon_p"] = signed_rank_p(d)
        out["ttest_p"] = float(sps.ttest_rel(b, a).pvalue)
    return out


EXACT_SIGNED_RANK_MAX = 13
"""Up to this many differences, scipy's Wilcoxon test is exact: every one of the 2ⁿ sign flips."""


def signed_rank_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of differences ``d`` (zeros dropped), as ``scipy.stats.wilcoxon``.

    For ≤ 13 differences with ties or zeros scipy runs a permutation test over all 2ⁿ sign flips, ~50 ms a call
    (a second for one evaluation's twenty systems); the same exact null distribution is one matrix product here.
    """
    d = np.asarray(d, dtype=float)
    nonzero = d[d != 0]
    if len(d) > EXACT_SIGNED_RANK_MAX or len(nonzero) == 0:
        return float(sps.wilcoxon(d).pvalue)
    ranks = sps.rankdata(np.abs(nonzero))
    flips = (np.arange(2 ** len(nonzero))[:, None] >> np.arange(len(nonzero))) & 1     # every sign pattern
    null = flips @ ranks                                        # the rank sum of the positive differences
    observed = ranks[nonzero > 0].sum()
    tolerance = abs(observed) * np.finfo(float).eps * 100       # scipy's, for sums that differ only by rounding
    p = 2 * min((null <= observed + tolerance).mean(), (null >= observed - tolerance).mean())
    return float(min(p, 1.0))
