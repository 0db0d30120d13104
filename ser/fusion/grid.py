"""Exhaustive threshold grids for select gates, with no Python loop over threshold pairs.

Each row is gated for a rectangle of (τ_H, τ_V) index pairs (e.g. H ≥ τ_H holds for every
τ_H up to H). Adding every row's per-class count changes at the rectangle corners of a 2D
difference array and taking cumulative sums gives, for all pairs at once, the confusion
counts of the fused labels; metrics then follow from :func:`ser.measures.metrics.scores_from_counts`.
A 200×200 surface costs about as much as one pass over the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ser.data.arrays import ScoreArrays
from ser.fusion.rules import GATES
from ser.fusion.text import NegativeMapping, text_labels
from ser.measures.metrics import scores_from_counts
from ser.measures.objective import group_codes


def _index_range(x: np.ndarray, taus: np.ndarray, op: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the half-open range [lo, hi) of sorted-threshold indices for which ``x op τ`` holds."""
    n, m = len(x), len(taus)
    zeros, full = np.zeros(n, dtype=np.int64), np.full(n, m, dtype=np.int64)
    if op is None:
        return zeros, full
    if op == "ge":
        return zeros, np.searchsorted(taus, x, side="right")
    if op == "gt":
        return zeros, np.searchsorted(taus, x, side="left")
    if op == "le":
        return np.searchsorted(taus, x, side="left"), full
    if op == "lt":
        return np.searchsorted(taus, x, side="right"), full
    raise ValueError(f"unknown comparison '{op}'")


def gated_sums(h: np.ndarray, v: np.ndarray, tau_h: np.ndarray, tau_v: np.ndarray, weights: np.ndarray,
               h_op: str | None, v_op: str | None) -> np.ndarray:
    """For every (τ_H[a], τ_V[b]), the column sums of ``weights`` over rows the gate admits.

    ``weights`` is (n, C); returns (len(tau_h), len(tau_v), C) in the order of the given lists.
    """
    tau_h, tau_v = np.asarray(tau_h, dtype=float), np.asarray(tau_v, dtype=float)
    oh, ov = np.argsort(tau_h, kind="stable"), np.argsort(tau_v, kind="stable")
    a0, a1 = _index_range(h, tau_h[oh], h_op)
    b0, b1 = _index_range(v, tau_v[ov], v_op)
    na, nb, c = len(tau_h) + 1, len(tau_v) + 1, weights.shape[1]
    keep = (a0 < a1) & (b0 < b1)
    a0, a1, b0, b1, w = a0[keep], a1[keep], b0[keep], b1[keep], weights[keep]
    corners = np.concatenate([a0 * nb + b0, a1 * nb + b0, a0 * nb + b1, a1 * nb + b1])
    signs = np.concatenate([w, -w, -w, w])
    flat = (corners[:, None] * c + np.arange(c)).ravel()
    diff = np.bincount(flat, weights=signs.ravel(), minlength=na * nb * c).reshape(na, nb, c)
    sums = diff.cumsum(axis=0).cumsum(axis=1)[:-1, :-1]
    inv_h, inv_v = np.argsort(oh), np.argsort(ov)
    return sums[inv_h][:, inv_v]


def base_counts(a: ScoreArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class true positives, predicted counts and support of the speech labels alone."""
    k = a.labels.k
    return (np.bincount(a.y[a.speech == a.y], minlength=k), np.bincount(a.speech, minlength=k),
            np.bincount(a.y, minlength=k))


@dataclass(frozen=True)
class GridSurface:
    """Metrics over a τ_H × τ_V grid; arrays are (len(tau_h), len(tau_v)).

    ``switch_rate``: share of rows whose label changes; ``gate_rate``: share of rows the gate
    admits; ``gate_wrong_share``: share of misclassified speech rows among admitted rows (the
    published selection criterion; 0 where the gate admits nothing).
    """

    tau_h: np.ndarray
    tau_v: np.ndarray
    metrics: dict[str, np.ndarray]
    switch_rate: np.ndarray
    gate_rate: np.ndarray
    gate_wrong_share: np.ndarray
    delta_tp: np.ndarray      # (A, B, K) change of true positives vs speech
    delta_pred: np.ndarray    # (A, B, K) change of predicted counts vs speech


def threshold_surface(a: ScoreArrays, tau_h: np.ndarray, tau_v: np.ndarray, gate: str = "hv",
                      negative: NegativeMapping | None = None, rows: np.ndarray | None = None) -> GridSurface:
    """Grid of a select rule with one global threshold pair, gating only ``rows`` (default all).

    Rows outside ``rows`` keep their speech label, so with ``rows`` = the rows predicted as
    class c this is the per-class surface of c's thresholds with other classes unswitched.
    Rates are relative to the gated rows.
    """
    k = a.labels.k
    negative = negative or NegativeMapping.from_config("refer", a.labels)
    text = text_labels(a, negative)
    base_tp, base_pred, support = base_counts(a)
    sel = np.ones(len(a), dtype=bool) if rows is None else np.asarray(rows)
    y, s, t = a.y[sel], a.speech[sel], text[sel]
    n_sel = len(y)
    # channels: Δtp (K) | Δpred (K) | gated | gated & speech wrong | label changed
    w = np.concatenate([_count_changes(y, s, t, np.zeros(n_sel, dtype=np.int64), 1, k).reshape(n_sel, 2 * k),
                        np.stack([np.ones(n_sel), s != y, t != s], axis=1)], axis=1)
    h_op, v_op = GATES[gate]
    sums = gated_sums(a.h[sel], a.v[sel], tau_h, tau_v, w, h_op, v_op)
    d_tp, d_pred = sums[..., :k], sums[..., k:2 * k]
    gated, gated_wrong, n_changed = sums[..., 2 * k], sums[..., 2 * k + 1], sums[..., 2 * k + 2]
    metrics = scores_from_counts(base_tp + d_tp, base_pred + d_pred, np.broadcast_to(support, d_tp.shape))
    denom = max(n_sel, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        wrong_share = np.where(gated > 0, gated_wrong / gated, 0.0)
    return GridSurface(np.asarray(tau_h, float), np.asarray(tau_v, float), metrics, n_changed / denom,
                       gated / denom, wrong_share, d_tp, d_pred)


def class_surfaces(a: ScoreArrays, tau_h: np.ndarray, tau_v: np.ndarray, gate: str = "hv",
                   negative: NegativeMapping | None = None) -> list[GridSurface]:
    """One surface per speech-predicted class; ``tau_h``/``tau_v`` are shared lists or (K, m) arrays."""
    k = a.labels.k
    th, tv = np.asarray(tau_h, float), np.asarray(tau_v, float)
    th = np.broadcast_to(th, (k, th.shape[-1])) if th.ndim == 1 else th
    tv = np.broadcast_to(tv, (k, tv.shape[-1])) if tv.ndim == 1 else tv
    return [threshold_surface(a, th[c], tv[c], gate, negative, rows=a.speech == c) for c in range(k)]


def group_base_counts(a: ScoreArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`base_counts` per tuning-set group: three (G, K) arrays in sorted group order."""
    k = a.labels.k
    n_groups, codes = group_codes(a.group)
    right = a.speech == a.y

    def count(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        keep = slice(None) if mask is None else mask
        return np.bincount(codes[keep] * k + values[keep], minlength=n_groups * k).reshape(n_groups, k)
    return count(a.y, right), count(a.speech), count(a.y)


def _count_changes(y: np.ndarray, s: np.ndarray, t: np.ndarray, g: np.ndarray, n_groups: int, k: int
                   ) -> np.ndarray:
    """Per row, what switching it from its speech label ``s`` to its text label ``t`` changes, in its group ``g``'s
    channels: (n, G, 2, K) weights, [..., 0, :] true positives and [..., 1, :] predicted counts per class."""
    idx = np.arange(len(y))
    w = np.zeros((len(y), n_groups, 2, k))
    w[idx, g, 0, y] = (t == y).astype(float) - (s == y)
    changed = t != s
    w[idx[changed], g[changed], 1, t[changed]] += 1
    w[idx[changed], g[changed], 1, s[changed]] -= 1
    return w


def group_deltas(a: ScoreArrays, tau_h: np.ndarray, tau_v: np.ndarray, gate: str, negative: NegativeMapping,
                 rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per tuning-set group, the change of true positives and of predicted counts against speech for every
    (τ_H, τ_V) of a select rule gating only ``rows``: two (G, len(tau_h), len(tau_v), K) arrays from one pass
    (each group's counts are channels of the same difference array)."""
    k = a.labels.k
    n_groups, codes = group_codes(a.group)
    sel = np.ones(len(a), dtype=bool) if rows is None else np.asarray(rows)
    y, s, t, g = a.y[sel], a.speech[sel], text_labels(a, negative)[sel], codes[sel]
    w = _count_changes(y, s, t, g, n_groups, k)
    h_op, v_op = GATES[gate]
    sums = gated_sums(a.h[sel], a.v[sel], tau_h, tau_v, w.reshape(len(y), -1), h_op, v_op)
    sums = np.moveaxis(sums.reshape(len(tau_h), len(tau_v), n_groups, 2, k), 2, 0)
    return sums[..., 0, :], sums[..., 1, :]
