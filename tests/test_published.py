"""The published procedure: its steps on crafted data, and the preset end to end."""

import json

import numpy as np
import pytest

from ser.arrays import ScoreArrays
from ser.cli import main
from ser.fusion import rule_from_config
from ser.labels import DEFAULT_LABELS as L
from ser.published import negative_options, published_procedure
from ser.schema import validate
from ser.synthetic import synthetic_scores, with_model_folds


def test_negative_options_order_and_grid():
    opts = negative_options()
    assert opts[0] == "refer" and len(opts) == 1 + 2 * 15
    assert opts[1] == {"mode": "score-split", "t": 0.0, "flip": False}
    assert opts[15]["t"] == 0.7 and opts[16]["flip"] is True


def test_thresholds_come_from_misclassified_quantiles_and_maximize_wrong_share():
    df = validate(synthetic_scores(n_folds=3, per_fold=400, seed=5))
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
    df = validate(synthetic_scores(n_folds=3, per_fold=400, seed=6))
    a = ScoreArrays.from_table(df)
    config, *_ = published_procedure(a)
    without = rule_from_config({**config, "merge": "replace", "exclude": []}, L).decide(a).pred
    for transition in config["exclude"]:
        src, dst = (L.index(x) for x in transition.split("->"))
        moved = (a.speech == src) & (without == dst)
        assert ((a.speech[moved] == a.y[moved]).sum() > (without[moved] == a.y[moved]).sum())


def test_published_preset_end_to_end(tmp_path):
    df = validate(with_model_folds(synthetic_scores(n_folds=4, per_fold=200, seed=2)))
    df.to_parquet(tmp_path / "s.parquet")
    assert main(["tune", "--config", "configs/presets/published.yaml", "--scores", str(tmp_path / "s.parquet"),
                 "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["tuning"] == {"protocol": "trainval", "objective": "ua", "method": "published",
                           "configurations_evaluated": r["tuning"]["configurations_evaluated"]}
    assert all(f["best"]["config"]["merge"] == "exclude" for f in r["folds"])
    assert len(r["folds"]) == 4 and {"speech", "tuned"} <= set(r["folds"][0]["systems"])
