"""The published procedure: its steps on crafted data, and the preset end to end."""

import json

import numpy as np
import pytest

from ser.data.arrays import ScoreArrays
from ser.cli import main
from ser.fusion.rules import rule_from_config
from ser.data.labels import DEFAULT_LABELS as L
from ser.fusion.rules import NEVER, learned_exclusions
from ser.fusion.published import class_thresholds, negative_options, published_procedure, threshold_candidates
from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores, with_model_folds


def test_negative_options_order_and_grid():
    """Tie order: score-split with flip for t = 0 … 0.70, then without flip, then refer."""
    opts = negative_options()
    assert len(opts) == 2 * 15 + 1 and opts[-1] == "refer"
    assert opts[0] == {"mode": "score-split", "t": 0.0, "flip": True}
    assert opts[14] == {"mode": "score-split", "t": 0.7, "flip": True}
    assert opts[15] == {"mode": "score-split", "t": 0.0, "flip": False}


def test_candidates_are_evenly_spaced_between_quantiles_not_quantiles_at_levels():
    values = np.array([0.0, 0.1, 0.2, 0.3, 5.0, 9.0, 9.5, 10.0])
    lo, hi = np.quantile(values, [0.65, 0.85])
    got = threshold_candidates(values, (0.65, 0.85), 0.65)
    np.testing.assert_allclose(got, np.linspace(lo, hi, 200))
    assert not np.allclose(got, np.quantile(values, np.linspace(0.65, 0.85, 200)))   # the old construction


def test_single_candidate_when_upper_bound_is_not_above_lower():
    flat = np.array([0.4] * 9 + [0.9])              # 0.15 … 0.85 quantiles all 0.4
    np.testing.assert_allclose(threshold_candidates(flat, (0.65, 0.85), 0.65), [np.quantile(flat, 0.65)])
    np.testing.assert_allclose(threshold_candidates(flat, (0.15, 0.35), 0.35), [np.quantile(flat, 0.35)])


def _brute_force_pair(a, c):
    """The rule written plainly: candidates in (τ_H asc, τ_V asc) order, skip empty gates, first maximum share."""
    rows, wrong = a.speech == c, (a.speech == c) & (a.y != c)
    th = threshold_candidates(a.h[wrong], (0.65, 0.85), 0.65)
    tv = threshold_candidates(a.v[wrong], (0.15, 0.35), 0.35)
    best, pair = -1.0, (NEVER["ge"], NEVER["le"])
    for x in th:
        for z in tv:
            gate = rows & (a.h >= x) & (a.v <= z)
            if gate.any() and (a.y[gate] != c).mean() > best:
                best, pair = (a.y[gate] != c).mean(), (x, z)
    return pair


@pytest.mark.parametrize("seed", range(4))
def test_threshold_pair_ties_go_to_the_first_in_ascending_order(seed):
    """Few rows per class make many pairs tie on the wrong share: the first in (τ_H, τ_V) order must win."""
    df = validate(synthetic_scores(n_folds=2, per_fold=14, seed=seed, profile="text-strong"))
    a = ScoreArrays.from_table(df)
    for c in range(4):
        if ((a.speech == c) & (a.y != c)).any():
            got = class_thresholds(a, c)[:2]
            assert got == pytest.approx(_brute_force_pair(a, c)), (seed, c)


def _crafted(y, p, q):
    return ScoreArrays.from_probs(L, np.array(y), np.array(p, float), np.array(q, float))


UNCERTAIN_ANG = [0.32, 0.3, 0.2, 0.18]


def test_negative_mapping_ties_go_to_flip_then_no_flip_then_refer():
    # every gated row's sentiment is positive: all 31 negative options give the same accuracy → the first (flip, t=0)
    a = _crafted([1, 1, 0], [UNCERTAIN_ANG, UNCERTAIN_ANG, [0.9, 0.04, 0.03, 0.03]], [[0.1, 0.1, 0.8]] * 3)
    config, *_ = published_procedure(a)
    assert config["negative"]["ang"] == {"mode": "score-split", "t": 0.0, "flip": True}


def test_exclusion_needs_fewer_fixes_than_breaks():
    a = _crafted([1, 0, 0], [UNCERTAIN_ANG] * 3, [[0.1, 0.1, 0.8]] * 3)
    pred = np.array([1, 1, 0])                  # ang→hap: one wrong→right, one right→wrong
    assert learned_exclusions(a, pred) == []     # equal counts: kept
    pred = np.array([1, 1, 1])                  # ang→hap: one fix, two breaks
    assert learned_exclusions(a, pred) == ["ang->hap"]


def test_thresholds_come_from_misclassified_quantiles_and_maximize_wrong_share():
    df = validate(synthetic_scores(n_folds=3, per_fold=400, seed=5, profile="text-strong"))
    a = ScoreArrays.from_table(df)
    config, score, n = published_procedure(a, "ua")
    assert config["gate"] == "hv" and config["merge"] == "exclude"
    for c, name in enumerate(L.classes):
        wrong = (a.speech == c) & (a.y != c)
        lo, hi = np.quantile(a.h[wrong], [0.65, 0.85])
        assert lo - 1e-12 <= config["tau_h"][name] <= hi + 1e-12
        lo, hi = np.quantile(a.v[wrong], [0.15, 0.35])
        assert lo - 1e-12 <= config["tau_v"][name] <= hi + 1e-12
        # no candidate pair admits a higher share of misclassified rows
        rows = a.speech == c
        th = np.quantile(a.h[wrong], np.linspace(0.65, 0.85, 200))
        tv = np.quantile(a.v[wrong], np.linspace(0.15, 0.35, 200))
        chosen = rows & (a.h >= config["tau_h"][name]) & (a.v <= config["tau_v"][name])
        best_share = (a.y[chosen] != c).mean()
        for x in th[::20]:
            for z in tv[::20]:
                g = rows & (a.h >= x) & (a.v <= z)
                if g.any():
                    assert (a.y[g] != c).mean() <= best_share + 1e-12
    assert n == 4 * 200 * 200 + 31 * 4 + 1
    pred = rule_from_config(config, L).decide(a).pred
    assert score == pytest.approx((np.bincount(a.y[pred == a.y], minlength=4) / np.bincount(a.y, minlength=4)).mean())


def test_exclusion_list_removes_net_harmful_transitions():
    df = validate(synthetic_scores(n_folds=3, per_fold=400, seed=6, profile="text-strong"))
    a = ScoreArrays.from_table(df)
    config, *_ = published_procedure(a)
    without = rule_from_config({**config, "merge": "replace", "exclude": []}, L).decide(a).pred
    for transition in config["exclude"]:
        src, dst = (L.index(x) for x in transition.split("->"))
        moved = (a.speech == src) & (without == dst)
        assert ((a.speech[moved] == a.y[moved]).sum() > (without[moved] == a.y[moved]).sum())


def test_published_preset_end_to_end(tmp_path):
    df = validate(with_model_folds(synthetic_scores(n_folds=4, per_fold=200, seed=2, profile="text-strong")))
    df.to_parquet(tmp_path / "s.parquet")
    assert main(["tune", "--config", "configs/presets/published.yaml", "--scores", str(tmp_path / "s.parquet"),
                 "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert {k: r["tuning"][k] for k in ("protocol", "objective", "method")} == \
        {"protocol": "trainval", "objective": "ua", "method": "published"}
    assert all(f["best"]["config"]["merge"] == "exclude" for f in r["folds"])
    assert len(r["folds"]) == 4 and {"speech", "tuned"} <= set(r["folds"][0]["systems"])
