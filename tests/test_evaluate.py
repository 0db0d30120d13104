import json
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest

from ser.arrays import ScoreArrays
from ser.cli import main
from ser.config import ConfigError, load_config
from ser.scoring import evaluate_systems
from ser.metrics import METRICS, summary


def test_evaluate_per_fold_equals_direct_computation(synth_table):
    cfg = load_config(None)
    r = evaluate_systems(synth_table, cfg.rules(), cfg.labels, n_boot=50)
    assert [f["fold"] for f in r["folds"]] == sorted(synth_table["fold"].unique())
    f3 = r["folds"][3]
    rows = synth_table[synth_table["fold"] == f3["fold"]]
    a = ScoreArrays.from_table(rows)
    assert f3["n"] == len(rows)
    speech = f3["systems"]["speech"]
    assert {m: speech[m] for m in METRICS} == pytest.approx(summary(a.y, a.speech, 4))
    assert speech["ci"]["metric"] == "ua" and speech["ci"]["low"] < speech["ua"] < speech["ci"]["high"]
    uas = [f["systems"]["text"]["ua"] for f in r["folds"]]
    assert r["mean"]["text"]["ua"] == pytest.approx(np.mean(uas))
    assert r["std"]["text"]["ua"] == pytest.approx(np.std(uas, ddof=1))
    full = ScoreArrays.from_table(synth_table)
    assert r["pooled"]["speech"]["ua"] == pytest.approx(summary(full.y, full.speech, 4)["ua"])
    assert r["mean"]["oracle"]["ua"] > max(r["mean"]["speech"]["ua"], r["mean"]["text"]["ua"])


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


def test_pure_core_imports_neither_ray_nor_torch():
    code = ("import sys; import ser.schema, ser.uncertainty, ser.fusion, ser.metrics, ser.folds, ser.grid, "
            "ser.stats, ser.scoring, ser.config, ser.importers, ser.arrays, ser.objective, ser.search, ser.choice, "
            "ser.baselines, ser.table_stats, "
            "ser.tuning, ser.sensitivity, "
            "ser.transfer, ser.published, ser.pipeline, ser.synthetic, ser.api, ser.study, ser.results, ser.engine; "
            "bad = [m for m in ('ray', 'torch', 'transformers', 'optuna') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.name
