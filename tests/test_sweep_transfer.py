import json

import numpy as np
import pandas as pd
import pytest

from ser.data.arrays import ScoreArrays
from ser.cli import main
from ser.config import ConfigError, load_config
from ser.fusion.rules import rule_from_config
from ser.measures.metrics import summary
from ser.data.schema import validate
from ser.config import SweepConfig
from ser.data.labels import DEFAULT_LABELS
from ser.tuning.sensitivity import sweep
from ser.data.synthetic import synthetic_scores

SMALL = SweepConfig(tau_h={"range": [0.0, 1.4], "steps": 8}, tau_v={"range": [0.0, 1.2], "steps": 7})


@pytest.fixture(scope="module")
def table():
    return validate(synthetic_scores(n_folds=4, per_fold=250, seed=9, profile="text-strong"))


def test_sweep_surfaces_match_direct_rule_and_mean_is_fold_average(table):
    surfaces, chosen, stats = sweep(table, SMALL, DEFAULT_LABELS, "oof", "macro_f1")
    assert set(surfaces["scope"]) == {"global", "ang", "hap", "neu", "sad"}
    assert len(surfaces) == (4 + 1) * 5 * 8 * 7
    fold = sorted(table["fold"].unique())[1]
    row = surfaces[(surfaces["fold"] == fold) & (surfaces["scope"] == "global")].iloc[13]
    test = ScoreArrays.from_table(table[table["fold"] == fold])
    pred = rule_from_config({"kind": "select", "gate": "hv", "tau_h": row["tau_h"], "tau_v": row["tau_v"]},
                            test.labels).decide(test).pred
    assert row["macro_f1"] == pytest.approx(summary(test.y, pred, 4)["macro_f1"])
    glob = surfaces[surfaces["scope"] == "global"]
    per_fold = glob[glob["fold"] != "mean"].groupby(["tau_h", "tau_v"])["ua"].mean()
    mean = glob[glob["fold"] == "mean"].set_index(["tau_h", "tau_v"])["ua"]
    np.testing.assert_allclose(mean.sort_index().to_numpy(), per_fold.sort_index().to_numpy())
    assert len(chosen) == 4 and (chosen["best_test_score"] >= chosen["test_score"]).all()
    assert (chosen["oracle_score"] > chosen["best_test_score"]).all()
    assert stats["gap_to_oracle"] == pytest.approx((chosen["oracle_score"] - chosen["test_score"]).mean())


def test_sweep_chosen_thresholds_ignore_test_labels(table):
    _, before, _ = sweep(table, SMALL, DEFAULT_LABELS, "oof", "macro_f1")
    k = before["fold"].iloc[0]
    changed = table.copy()
    changed.loc[changed["fold"] == k, "label"] = "sad"
    _, after, _ = sweep(changed, SMALL, DEFAULT_LABELS, "oof", "macro_f1")
    assert after.iloc[0][["tau_h", "tau_v"]].tolist() == before.iloc[0][["tau_h", "tau_v"]].tolist()


def test_sweep_config_errors(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sweep: {tau_h: {quantiles: [0.1, 0.9]}}")
    with pytest.raises(ConfigError, match="sweep.tau_h needs an absolute range"):
        load_config(path)
    path.write_text("sweep: {gate: hh}")
    with pytest.raises(ConfigError, match="sweep.gate: 'hh' is not one of"):
        load_config(path)


def test_cli_sweep_writes_outputs(tmp_path, table):
    table.to_parquet(tmp_path / "s.parquet")
    assert main(["sweep", "--scores", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "o")]) == 0
    assert pd.read_parquet(tmp_path / "o" / "sweep.parquet")["fold"].nunique() == 5
    assert json.loads((tmp_path / "o" / "sweep.json").read_text())["gate"] == "hv"


def test_cross_dataset_matrix(tmp_path):
    a = synthetic_scores(3, 200, seed=1, corpus="demo-a", profile="text-strong")
    b = synthetic_scores(3, 200, seed=2, corpus="demo-b", profile="iemocap-like")
    pd.concat([a, b]).to_parquet(tmp_path / "two.parquet")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tune: {engine: optuna, trials: 6}\nevaluate: {bootstrap: 50}\n")
    assert main(["cross", "--scores", str(tmp_path / "two.parquet"), "--config", str(cfg),
                 "--out", str(tmp_path / "o")]) == 0
    r = json.loads((tmp_path / "o" / "cross.json").read_text())
    assert set(r["pairs"]) == {"demo-a->demo-a", "demo-a->demo-b", "demo-b->demo-a", "demo-b->demo-b"}
    transfer = r["pairs"]["demo-a->demo-b"]
    # one configuration chosen on A is applied to every fold of B
    assert len({json.dumps(f["best"]["config"]) for f in transfer["folds"]}) == 1
    assert {f["fold"] for f in transfer["folds"]} == set(b["fold"])
    cell = r["matrix"]["demo-a"]["demo-b"]
    assert cell["gain"] == pytest.approx(cell["tuned"] - cell["speech"])


def test_cross_needs_two_corpora(tmp_path, table, capsys):
    table.to_parquet(tmp_path / "one.parquet")
    assert main(["cross", "--scores", str(tmp_path / "one.parquet"), "--out", str(tmp_path)]) == 2
    assert "needs at least two corpora" in capsys.readouterr().err
