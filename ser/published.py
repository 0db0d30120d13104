"""The published selection procedure (arXiv 2508.20796) as a deterministic per-fold tuner.

On a fold's tuning set, for each speech-predicted class c:
1. candidate τ_H = the 0.65–0.85 quantiles and τ_V = the 0.15–0.35 quantiles (200 steps each)
   of the entropies / varentropies of the tuning rows misclassified as c; choose the pair that
   maximizes the share of misclassified rows among the rows the gate H ≥ τ_H and V ≤ τ_V admits;
2. choose the negative mapping (``refer``, or ``score-split`` with t in 0…0.7 step 0.05, without
   and with flip) that maximizes the accuracy of c's rows, keeping labels where text agrees;
3. exclude the transitions whose right→wrong count exceeds wrong→right on the tuning set.
Ties go to the first candidate in the order above (ascending quantiles; refer before splits).
"""

from __future__ import annotations

import numpy as np

from ser.arrays import ScoreArrays
from ser.fusion import NegativeMapping, rule_from_config, text_labels
from ser.grid import threshold_surface
from ser.search import NEVER, learned_exclusions, objective_value

H_QUANTILES = (0.65, 0.85)
V_QUANTILES = (0.15, 0.35)
STEPS = 200
SPLIT_TS = np.round(np.arange(0.0, 0.7 + 1e-9, 0.05), 2)


def negative_options() -> list:
    """``refer`` then every score-split threshold without flip, then with flip."""
    return ["refer"] + [{"mode": "score-split", "t": float(t), "flip": flip}
                        for flip in (False, True) for t in SPLIT_TS]


def published_procedure(a: ScoreArrays, objective: str = "macro_f1") -> tuple[dict, float, int]:
    """(config, tuning score, configurations evaluated) for one fold's tuning arrays."""
    labels, k = a.labels, a.labels.k
    refer = NegativeMapping.from_config("refer", labels)
    tau_h, tau_v, n_configs = {}, {}, 0
    for c, name in enumerate(labels.classes):
        rows = a.speech == c
        wrong = rows & (a.y != c)
        if not wrong.any():
            tau_h[name], tau_v[name] = NEVER["ge"], NEVER["le"]
            continue
        th = np.quantile(a.h[wrong], np.linspace(*H_QUANTILES, STEPS))
        tv = np.quantile(a.v[wrong], np.linspace(*V_QUANTILES, STEPS))
        surf = threshold_surface(a, th, tv, "hv", refer, rows=rows)
        share = np.where(surf.gate_rate > 0, surf.gate_wrong_share, -1.0)
        i, j = np.unravel_index(np.argmax(share), share.shape)
        tau_h[name], tau_v[name] = float(th[i]), float(tv[j])
        n_configs += th.size * tv.size

    gate_rule = rule_from_config({"kind": "select", "gate": "hv", "tau_h": tau_h, "tau_v": tau_v}, labels)
    gated = gate_rule.gate_mask(a)
    options = negative_options()
    correct = np.stack([np.where(gated, text_labels(a, NegativeMapping.from_config(o, labels)), a.speech) == a.y
                        for o in options])                                    # (options, n)
    per_class_acc = np.stack([correct[:, a.speech == c].sum(axis=1) for c in range(k)])   # (K, options)
    negative = {name: options[int(np.argmax(per_class_acc[c]))] for c, name in enumerate(labels.classes)}
    n_configs += len(options) * k

    config = {"kind": "select", "gate": "hv", "tau_h": tau_h, "tau_v": tau_v, "negative": negative}
    exclude = learned_exclusions(a, rule_from_config(config, labels).decide(a).pred)
    config.update(merge="exclude", exclude=exclude)
    score = objective_value(a, rule_from_config(config, labels).decide(a).pred, objective)
    return config, score, n_configs + 1
