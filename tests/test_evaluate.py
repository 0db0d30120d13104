import json
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest

import ser
from ser.data.arrays import ScoreArrays
from ser.cli import main
from ser.config import ConfigError, EvaluateConfig, load_config
from ser.evaluation.scoring import evaluate_systems
from ser.measures.metrics import METRICS, summary
from ser.reporting.plots import RunOutputs, label_codes
from ser.evaluation.result_types import ScoredSystems
from ser.measures.stats import bootstrap_ci, paired_bootstrap
from ser.data.synthetic import synthetic_scores


def test_evaluate_per_fold_equals_direct_computation(synth_table):
    cfg = load_config(None)
    r = evaluate_systems(synth_table, cfg.rules(), cfg.label_set, EvaluateConfig(bootstrap=50))
    assert [f.fold for f in r.folds] == sorted(synth_table["fold"].unique())
    f3 = r.folds[3]
    rows = synth_table[synth_table["fold"] == f3.fold]
    a = ScoreArrays.from_table(rows)
    assert f3.n == len(rows)
    speech = f3.systems["speech"]
    assert {m: speech[m] for m in METRICS} == pytest.approx(summary(a.y, a.speech, 4))
    assert speech.ci.metric == "ua" and speech.ci.low < speech["ua"] < speech.ci.high
    uas = r.fold_values("text", "ua")
    assert r.mean["text"]["ua"] == pytest.approx(np.mean(uas))
    assert r.std["text"]["ua"] == pytest.approx(np.std(uas, ddof=1))
    full = ScoreArrays.from_table(synth_table)
    assert r.pooled["speech"]["ua"] == pytest.approx(summary(full.y, full.speech, 4)["ua"])
    assert r.mean["oracle"]["ua"] > max(r.mean["speech"]["ua"], r.mean["text"]["ua"])
    assert ScoredSystems.from_dict(json.loads(json.dumps(r.to_dict()))) == r      # the file reads back as written


def test_cli_evaluate_writes_json_with_config_systems(tmp_path, synth_table, capsys):
    scores = tmp_path / "s.parquet"
    synth_table.to_parquet(scores)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("systems:\n  ll: {kind: loglinear, w: 0.4}\n  sel: {kind: select, tau_h: 1.0, tau_v: 0.4}\n"
                   "evaluate: {bootstrap: 100}\n")
    assert main(["evaluate", "--scores", str(scores), "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0
    out = json.loads((tmp_path / "o" / "evaluation.json").read_text())
    assert set(out["folds"][0]["systems"]) == {"speech", "text", "oracle", "ll", "sel"}
    assert set(out["mean"]["ll"]) == {"ua", "wa", "macro_f1", "weighted_f1"}
    assert out["comparisons"]["ll"]["bootstrap"]["n_boot"] == 100
    printed = capsys.readouterr().out
    assert "ll" in printed and "95% CI" in printed


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluate: {botstrap: 10}\n")
    with pytest.raises(ConfigError, match=r"evaluate: unknown key 'botstrap'; did you mean 'bootstrap'\?"):
        load_config(bad)
    bad.write_text("sistems: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'sistems'; did you mean 'systems'\?"):
        load_config(bad)
    bad.write_text("systems:\n  s: {kind: select, tau_h: 1}\n")
    with pytest.raises(ConfigError, match=r"systems\.s: missing key 'tau_v'"):
        load_config(bad)


def test_cli_reports_bad_table_without_traceback(tmp_path, synth_table, capsys):
    df = synth_table.copy()
    df.loc[4, "speech_ang"] = np.nan
    df.to_parquet(tmp_path / "s.parquet")
    assert main(["evaluate", "--scores", str(tmp_path / "s.parquet"), "--out", str(tmp_path)]) == 2
    assert "column 'speech_ang' has NaN in 1 row(s): row 4" in capsys.readouterr().err


def test_no_module_of_ser_imports_ray_or_torch_when_imported():
    """Every module under ser/ (found by walking the package, the model backends and CLI included) imports Ray,
    torch, transformers and Optuna only inside the functions that use them."""
    code = ("import pkgutil, importlib, sys, ser; "
            "names = [m.name for m in pkgutil.walk_packages(ser.__path__, 'ser.') if not m.name.endswith('__main__')]; "
            "[importlib.import_module(n) for n in names]; "
            "assert len(names) > 50, names; "
            "bad = [m for m in ('ray', 'torch', 'transformers', 'optuna', 'ctranslate2') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name


# evaluate.bootstrap and evaluate.min_fold_rows reach every figure they govern (each was lost somewhere before)

def test_per_fold_confidence_intervals_use_evaluate_bootstrap(synth_table):
    cfg = load_config({"evaluate": {"bootstrap": 37}})
    r = evaluate_systems(synth_table, cfg.rules(), cfg.label_set, cfg.evaluate, seed=5)
    fold = r.folds[2]
    a = ScoreArrays.from_table(synth_table[synth_table["fold"] == fold.fold])
    (low, high), = bootstrap_ci(a.y, a.speech[None], 4, metric="ua", n_boot=37, seed=5 + 2)
    assert (fold.systems["speech"].ci.low, fold.systems["speech"].ci.high) == (low, high)


def test_report_fold_gains_resample_as_often_as_the_run(synth_table):
    run = ser.evaluate(synth_table, {"systems": {"ll": {"kind": "loglinear", "w": 0.4}},
                                     "evaluate": {"bootstrap": 37}})
    gains = RunOutputs.of("run", evaluation=run).gains
    pred, labels = run.predictions, run.result.labels
    part = pred[pred["fold"] == run.result.folds[1].fold]
    b = paired_bootstrap(label_codes(part, labels, "label"), label_codes(part, labels, "pred_speech"),
                         label_codes(part, labels, "pred_ll"), 4, metric="ua", n_boot=37, seed=1)
    assert gains.loc[1, ["low", "high"]].tolist() == [100 * b["ci_low"], 100 * b["ci_high"]]


def test_cross_dataset_warns_about_folds_below_evaluate_min_fold_rows():
    a = synthetic_scores(3, 60, seed=1, corpus="demo-a", profile="text-strong")
    b = synthetic_scores(3, 60, seed=2, corpus="demo-b", profile="iemocap-like")
    r = ser.cross({"demo-a": a, "demo-b": b}, {"tune": {"engine": "optuna", "trials": 4},
                                             "evaluate": {"bootstrap": 20, "min_fold_rows": 500}}).result
    assert all("3 fold(s) have fewer than 500 test rows" in pair.warnings[0] for pair in r.pairs.values())
