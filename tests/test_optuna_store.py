"""tune.storage: each fold's finished search as an Optuna study that plain Optuna opens."""

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

import ser
from ser.cli import main
from ser.config import TuneConfig
from ser._util.io import InputError
from ser.data.schema import validate
from ser.data.synthetic import SecondPath, synthetic_scores

CONFIG = ("tune: {engine: optuna, trials: 5, text: all, space: {select: {tau_h: {quantiles: [0.05, 0.95], steps: 6},"
          " tau_v: {quantiles: [0.05, 0.95], steps: 6}}}}\nevaluate: {bootstrap: 20}\n")


def _run(tmp_path, *extra: str) -> tuple[list[str], Path]:
    table = validate(synthetic_scores(n_folds=3, per_fold=150, seed=3, second=SecondPath("llm", 0.6, 0.0)))
    table.to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text(CONFIG)
    out = tmp_path / "run"
    args = ["tune", "--scores", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.yaml"), "--out", str(out),
            "--set", "tune.storage=sqlite:///{out}/optuna.db", *extra]
    assert main(args) == 0
    return args, out


@pytest.mark.filterwarnings("ignore:Some regimes for parameter")     # five trials are few for importances
def test_each_fold_search_is_a_study_plain_optuna_opens(tmp_path):
    args, out = _run(tmp_path)
    url = f"sqlite:///{out.resolve()}/optuna.db"
    trials = pd.read_parquet(out / "trials.parquet")
    result = json.loads((out / "results.json").read_text())
    kept = {f["fold"]: f["best"]["trial"] for f in result["folds"]}
    names = sorted(optuna.get_all_study_names(url))
    folds = sorted(kept)
    assert names == sorted(folds + [f"llm/{f}" for f in folds])
    for name in names:
        path, fold = name.split("/") if "/" in name else ("", name)
        study = optuna.load_study(study_name=name, storage=url)
        rows = trials[(trials["fold"] == fold) & (trials["text_path"].fillna("") == path)].sort_values("trial")
        assert len(study.trials) == len(rows) == 5
        for t, row in zip(study.trials, rows.itertuples()):
            assert t.number == row.trial and t.params == json.loads(row.params)
            assert t.value == pytest.approx(row.inner_score if pd.notna(row.inner_score) else row.tuning_score)
            assert t.user_attrs["tuning_score"] == pytest.approx(row.tuning_score)
            assert json.loads(t.user_attrs["config"]) == json.loads(row.config)
        assert study.user_attrs["fold"] == fold and study.user_attrs["objective"] == "macro_f1"
        assert study.user_attrs.get("kept_trial") == (None if path else kept[fold])
    # the structure is real Optuna parameters: importances are computed from them
    importances = optuna.importance.get_param_importances(optuna.load_study(study_name=folds[0], storage=url))
    assert "variant" in importances
    # a resumed (or repeated) run replaces each study: still one complete study per fold
    assert main(args + ["--resume"]) == 0
    assert sorted(optuna.get_all_study_names(url)) == names
    assert all(len(optuna.load_study(study_name=n, storage=url).trials) == 5 for n in names)


def test_a_bad_storage_is_named(tmp_path):
    with pytest.raises(InputError, match="tune.storage: 'optuna.db' is not a storage URL"):
        TuneConfig(storage="optuna.db")
    table = validate(synthetic_scores(n_folds=3, per_fold=100, seed=1))
    with pytest.raises(InputError, match="names the run directory, and this run has none"):
        ser.tune(table, {"tune": {"engine": "optuna", "trials": 2, "storage": "sqlite:///{out}/optuna.db"}})
    with pytest.raises(InputError, match="tune.storage: cannot open 'nosuchdialect://x'"):
        ser.tune(table, {"tune": {"engine": "optuna", "trials": 2, "storage": "nosuchdialect://x"}})
