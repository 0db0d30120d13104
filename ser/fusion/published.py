"""The published selection procedure (arXiv 2508.20796) as a deterministic per-fold tuner.

On a fold's tuning set, for each speech-predicted class c (rows predicted c only):
1. τ_H candidates: 200 values evenly spaced between the 0.65 and 0.85 quantiles of H over the
   rows misclassified as c; τ_V likewise between the 0.15 and 0.35 quantiles of V. Where the
   upper bound is not above the lower, one candidate (τ_H = the 0.65, τ_V = the 0.35 quantile).
   Pairs whose gate (H ≥ τ_H and V ≤ τ_V) admits no row are skipped; the pair with the highest
   share of misclassified rows among admitted rows wins, ties to the first in (τ_H ascending,
   then τ_V ascending) order. A class with no misclassified rows, or no admitting pair, never switches.
2. The negative mapping: candidates score-split with flip for t = 0, 0.05, …, 0.70, then without
   flip for the same t, then refer; the first that maximizes the accuracy of c's rows wins.
3. Exclusions: transitions (speech label → new label, over all gated rows whose label changes)
   whose wrong→right count is below their right→wrong count.
"""

from __future__ import annotations

import numpy as np

from ser.data.arrays import ScoreArrays
from ser.fusion.rules import NEVER, learned_exclusions, rule_from_config
from ser.fusion.text import NegativeMapping, text_labels
from ser.fusion.grid import threshold_surface
from ser.measures.metrics import summary

H_QUANTILES = (0.65, 0.85)
V_QUANTILES = (0.15, 0.35)
STEPS = 200
SPLIT_TS = np.round(np.arange(0.0, 0.7 + 1e-9, 0.05), 2)


def negative_options(n_negative: int = 2) -> list:
    """Candidates in tie order: score-split with flip for every t, then without flip, then ``refer`` (only
    ``refer`` where the label set has other than two negative classes: score-split needs two)."""
    splits = [{"mode": "score-split", "t": float(t), "flip": flip} for flip in (True, False) for t in SPLIT_TS]
    return (splits if n_negative == 2 else []) + ["refer"]


def threshold_candidates(values: np.ndarray, quantiles: tuple[float, float], fallback: float) -> np.ndarray:
    """``linspace(q_lo, q_hi, 200)`` of ``values``, or the single ``fallback`` quantile when q_hi ≤ q_lo."""
    lo, hi = np.quantile(values, quantiles)
    if hi <= lo:
        return np.array([np.quantile(values, fallback)])
    return np.linspace(lo, hi, STEPS)


def class_thresholds(a: ScoreArrays, c: int) -> tuple[float, float, int]:
    """(τ_H, τ_V, pairs evaluated) for speech-predicted class ``c`` by the wrong-share criterion."""
    rows = a.speech == c
    wrong = rows & (a.y != c)
    if not wrong.any():
        return NEVER["ge"], NEVER["le"], 0
    th = threshold_candidates(a.h[wrong], H_QUANTILES, H_QUANTILES[0])
    tv = threshold_candidates(a.v[wrong], V_QUANTILES, V_QUANTILES[1])
    surf = threshold_surface(a, th, tv, "hv", NegativeMapping.from_config("refer", a.labels), rows=rows)
    share = np.where(surf.gate_rate > 0, surf.gate_wrong_share, -1.0)
    if share.max() < 0:
        return NEVER["ge"], NEVER["le"], share.size
    i, j = np.unravel_index(np.argmax(share), share.shape)     # first maximum in (τ_H, τ_V) ascending order
    return float(th[i]), float(tv[j]), share.size


def published_procedure(a: ScoreArrays, objective: str = "macro_f1") -> tuple[dict, float, int]:
    """(config, tuning score, configurations evaluated) for one fold's tuning arrays."""
    labels, k = a.labels, a.labels.k
    tau_h, tau_v, n_configs = {}, {}, 0
    for c, name in enumerate(labels.classes):
        tau_h[name], tau_v[name], n = class_thresholds(a, c)
        n_configs += n

    gated = rule_from_config({"kind": "select", "gate": "hv", "tau_h": tau_h, "tau_v": tau_v}, labels).gate_mask(a)
    options = negative_options(len(labels.negative))
    correct = np.stack([np.where(gated, text_labels(a, NegativeMapping.from_config(o, labels)), a.speech) == a.y
                        for o in options])                                    # (options, n)
    per_class_acc = np.stack([correct[:, a.speech == c].sum(axis=1) for c in range(k)])   # (K, options)
    negative = {name: options[int(np.argmax(per_class_acc[c]))] for c, name in enumerate(labels.classes)}
    n_configs += len(options) * k

    config = {"kind": "select", "gate": "hv", "tau_h": tau_h, "tau_v": tau_v, "negative": negative}
    exclude = learned_exclusions(a, rule_from_config(config, labels).decide(a).pred)
    config.update(merge="exclude", exclude=exclude)
    score = summary(a.y, rule_from_config(config, labels).decide(a).pred, k)[objective]
    return config, score, n_configs + 1
