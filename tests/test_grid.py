"""The exhaustive grid must equal evaluating the select rule pair by pair."""

import numpy as np
import pytest

from ser.data.arrays import ScoreArrays
from ser.fusion.rules import SelectRule
from ser.fusion.text import NegativeMapping
from ser.fusion.grid import class_surfaces, gated_sums, threshold_surface
from ser.data.labels import DEFAULT_LABELS as L
from ser.measures.metrics import summary


@pytest.fixture(scope="module")
def arrays(synth_table):
    return ScoreArrays.from_table(synth_table.iloc[:800])


def brute(a, gate, th, tv, rows=None):
    neg = NegativeMapping.from_config("refer", L)
    out = {"ua": np.zeros((len(th), len(tv))), "macro_f1": np.zeros((len(th), len(tv))),
           "switch": np.zeros((len(th), len(tv)))}
    for i, x in enumerate(th):
        for j, z in enumerate(tv):
            rule = SelectRule(gate, np.full(4, x), np.full(4, z), neg)
            d = rule.decide(a)
            pred = d.pred if rows is None else np.where(rows, d.pred, a.speech)
            s = summary(a.y, pred, 4)
            out["ua"][i, j], out["macro_f1"][i, j] = s["ua"], s["macro_f1"]
            out["switch"][i, j] = (pred != a.speech).sum()
    return out


@pytest.mark.parametrize("gate", ["hv", "h", "v", "low"])
def test_global_surface_equals_brute_force(arrays, gate):
    th = np.r_[np.quantile(arrays.h, [0.9, 0.1, 0.5, 0.3]), arrays.h[5]]   # unsorted, one exact tie
    tv = np.r_[np.quantile(arrays.v, [0.2, 0.8, 0.05]), arrays.v[7]]
    surf = threshold_surface(arrays, th, tv, gate)
    ref = brute(arrays, gate, th, tv)
    np.testing.assert_allclose(surf.metrics["ua"], ref["ua"])
    np.testing.assert_allclose(surf.metrics["macro_f1"], ref["macro_f1"])
    np.testing.assert_allclose(surf.switch_rate * len(arrays), ref["switch"])


def test_class_surfaces_equal_brute_force_and_wrong_share(arrays):
    th, tv = np.linspace(0.5, 1.3, 6), np.linspace(0.05, 0.6, 5)
    surfs = class_surfaces(arrays, th, tv)
    for c, surf in enumerate(surfs):
        rows = arrays.speech == c
        ref = brute(arrays, "hv", th, tv, rows=rows)
        np.testing.assert_allclose(surf.metrics["ua"], ref["ua"])
        i, j = 2, 3
        gated = rows & (arrays.h >= th[i]) & (arrays.v <= tv[j])
        assert surf.gate_rate[i, j] == pytest.approx(gated.sum() / rows.sum())
        assert surf.gate_wrong_share[i, j] == pytest.approx((arrays.speech[gated] != arrays.y[gated]).mean())


def test_gated_sums_counts_rectangles():
    h, v = np.array([0.5, 1.0]), np.array([0.2, 0.4])
    s = gated_sums(h, v, [0.4, 0.9, 1.1], [0.1, 0.3, 0.5], np.ones((2, 1)), "ge", "le")[..., 0]
    # row 0 passes τ_H ≤ .5 and τ_V ≥ .2; row 1 passes τ_H ≤ 1.0 and τ_V ≥ .4
    np.testing.assert_array_equal(s, [[0, 1, 2], [0, 0, 1], [0, 0, 0]])
