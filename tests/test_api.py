"""The public API (``import ser``): typed results, label sets from the table, no printing, the README examples."""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ser
from ser.config import ConfigError
from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores

FAST = {"tune": {"engine": "optuna", "trials": 4,
                 "space": {"select": {"tau_h": {"quantiles": [0.05, 0.95], "steps": 8},
                                      "tau_v": {"quantiles": [0.05, 0.95], "steps": 8}},
                           "soft": {"w": {"range": [0, 1], "steps": 11}}}},
        "sweep": {"tau_h": {"range": [0, 1.2], "steps": 7}, "tau_v": {"range": [0, 1.2], "steps": 7}},
        "evaluate": {"bootstrap": 50}}

THREE_CLASS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np, pandas as pd
    import ser

    rng = np.random.default_rng(0)
    rows = []
    for fold in ("f0", "f1", "f2"):
        for i in range(60):
            label = ("ang", "hap", "neu")[i % 3]
            p = rng.dirichlet([1, 1, 1]); p[("ang", "hap", "neu").index(label)] += 1.0; p /= p.sum()
            q = rng.dirichlet([1, 1, 1])
            rows.append({"utt_id": f"{fold}-{i}", "corpus": "c", "fold": fold, "label": label,
                         "speech_ang": p[0], "speech_hap": p[1], "speech_neu": p[2],
                         "text_neg": q[0], "text_neu": q[1], "text_pos": q[2]})
    scores = pd.DataFrame(rows)
    config = json.loads(sys.argv[1])
    ev = ser.evaluate(scores, config)
    tuned = ser.tune(scores, config)
    swept = ser.sweep(scores, config)
    print(json.dumps({"labels": ev.to_dict()["labels"], "eval_systems": sorted(ev.table()["system"].unique()),
                      "tuned_folds": sorted(tuned.table().query("system == 'tuned'")["fold"]),
                      "sweep_folds": len(swept.table()), "tune_keys": sorted(tuned.to_dict())}),
          file=sys.stderr)
""")


def test_three_class_study_through_the_public_api_prints_nothing(tmp_path):
    """A fresh interpreter: evaluate, tune (Optuna) and sweep a 3-class table through ``ser`` only; stdout stays
    empty (the script reports on stderr) and the label set comes from the table's columns."""
    done = subprocess.run([sys.executable, "-c", THREE_CLASS_SCRIPT, json.dumps(FAST)], capture_output=True,
                          text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["labels"] == ["ang", "hap", "neu"]
    assert report["eval_systems"] == ["oracle", "speech", "text"]
    assert report["tuned_folds"] == ["f0", "f1", "f2"] and report["sweep_folds"] == 3
    assert {"folds", "mean", "baselines", "tuning"} <= set(report["tune_keys"])


@pytest.fixture(scope="module")
def table():
    return validate(synthetic_scores(n_folds=4, per_fold=120, seed=5, profile="text-strong"))


def test_results_are_typed_with_a_fold_by_system_table(table, tmp_path):
    ev = ser.evaluate(table, FAST)
    t = ev.table()
    assert list(t.columns[:3]) == ["fold", "system", "n"] and len(t) == 4 * 3
    f0 = ev.to_dict()["folds"][0]
    assert t.query("system == 'text'").iloc[0]["ua"] == f0["systems"]["text"]["ua"]
    tuned = ser.tune(table, FAST)
    assert set(tuned.table()["system"]) >= {"speech", "tuned", "published-rule"}
    assert list(tuned.chosen()["fold"]) == sorted(table["fold"].unique())
    assert len(tuned.trials) == 4 * 4 and set(tuned.predictions.columns) >= {"utt_id", "pred_tuned"}
    r = tuned.to_dict()
    versus = tuned.baselines().set_index("system")
    assert list(versus.index) == ["tuned", *r["baselines"]["systems"]]
    best = r["baselines"]["best"]
    assert versus.loc[best, "mean"] == r["mean"][best]["macro_f1"]
    assert versus.loc[best, "vs_tuned"] == pytest.approx(-r["baselines"]["tuned_minus_best"])
    assert versus.loc["tuned", "folds_better"] == r["comparisons"]["tuned"]["folds"]["improved"]
    summary = tuned.summary().splitlines()
    assert summary[0] == "search vs simple leakage-free baselines (macro_f1, mean over folds, %):"
    assert summary[2].split()[:2] == ["tuned", f"{100 * versus.loc['tuned', 'mean']:.2f}"]
    assert summary[-1].startswith("kept configurations: tuning score")


def test_config_may_be_a_path_a_mapping_or_the_dataclass(table, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(FAST))                                # JSON is YAML
    from_path = ser.evaluate(table, path).to_dict()
    from_dict = ser.evaluate(table, FAST).to_dict()
    from_object = ser.evaluate(table, ser.load_config(FAST)).to_dict()
    assert from_path == from_dict == from_object
    with pytest.raises(ConfigError, match="did you mean 'trials'"):
        ser.tune(table, {"tune": {"trails": 3}})


def test_auto_engine_searches_folds_side_by_side_on_a_large_table_with_ray_tune_only_on_a_cluster(monkeypatch):
    """auto: in process for a small table; a Ray task per fold from AUTO_RAY_ROWS rows on this machine, or sooner
    where Ray already runs and rows x trials reach AUTO_TASK_WORK; Ray Tune when joining a cluster. Named engines
    run as named."""
    import jobs.ray_env
    from ser.config import AUTO_RAY_ROWS, AUTO_TASK_WORK, TuneConfig
    from ser.engine import engine_for

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(jobs.ray_env, "ray_running", lambda: False)
    auto = TuneConfig()
    assert auto.engine == "auto" and AUTO_TASK_WORK // auto.trials < AUTO_RAY_ROWS
    assert engine_for(auto, AUTO_RAY_ROWS - 1) == "optuna" and engine_for(auto, AUTO_RAY_ROWS) == "tasks"
    monkeypatch.setattr(jobs.ray_env, "ray_running", lambda: True)        # `ser run` after inference
    assert engine_for(auto, AUTO_TASK_WORK // auto.trials) == "tasks"
    assert engine_for(auto, AUTO_TASK_WORK // auto.trials - 1) == "optuna"
    for named in ("ray", "tasks", "optuna"):
        assert engine_for(TuneConfig(engine=named), 10 * AUTO_RAY_ROWS) == named
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")            # joining a cluster: its nodes search the folds
    assert engine_for(auto, 10) == "ray"


def test_the_engine_named_in_the_config_is_the_one_that_runs(monkeypatch, table):
    """``tune.engine: ray`` and ``tasks`` reach their engines through the one hook (a library call once ran Optuna)."""
    import jobs.tune

    from ser.tuning.per_fold import optuna_engine

    calls = []

    def recording(name):
        """An engine that records its name and folds, then searches in process."""
        def engine(tuning, seeds, space, objective, trials, concurrency, advance, **kwargs):
            calls.append((name, sorted(tuning)))
            return optuna_engine(tuning, seeds, space, objective, trials, concurrency, advance)
        return engine

    monkeypatch.setattr(jobs.tune, "ray_engine", recording("ray"))
    monkeypatch.setattr(jobs.tune, "task_engine", recording("tasks"))
    for name in ("ray", "tasks"):
        ser.tune(table, {**FAST, "tune": {**FAST["tune"], "engine": name}})
        assert calls == [(name, sorted(table["fold"].unique()))]
        calls.clear()
    ser.tune(table, FAST)                                             # engine: optuna → no Ray
    assert calls == []


def test_labels_the_table_cannot_name_need_a_config(table):
    odd = table.rename(columns={"speech_hap": "speech_joy"}).assign(label=table["label"].replace("hap", "joy"))
    with pytest.raises(ValueError, match="give `labels: "):
        ser.evaluate(odd)
    labels = {"classes": ["ang", "joy", "neu", "sad"], "positive": "joy", "neutral": "neu", "negative": ["ang", "sad"]}
    assert ser.evaluate(odd, {**FAST, "labels": labels}).to_dict()["labels"] == labels["classes"]
    assert ser.evaluate(odd, ser.load_config({**FAST, "labels": labels})).to_dict()["labels"] == labels["classes"]


def test_a_config_object_without_labels_takes_them_from_the_table(table):
    """A StudyConfig can say "labels unset": a 3-class table is then evaluated as 3-class, as with a dict or a path."""
    three = table[table["label"] != "sad"].drop(columns="speech_sad")
    speech = ["speech_ang", "speech_hap", "speech_neu"]
    three = three.assign(**(three[speech].div(three[speech].sum(axis=1), axis=0)))
    cfg = ser.load_config(FAST)
    assert cfg.labels is None and cfg.label_set.classes == ("ang", "hap", "neu", "sad")
    assert ser.evaluate(three, cfg).to_dict()["labels"] == ["ang", "hap", "neu"]


def test_load_run_reads_back_what_the_cli_wrote(table, tmp_path):
    scores = tmp_path / "scores.parquet"
    table.to_parquet(scores)
    (tmp_path / "c.yaml").write_text(json.dumps(FAST))
    from ser.cli import main

    assert main(["tune", "--scores", str(scores), "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r")]) == 0
    run = ser.load_run(tmp_path / "r")
    assert run.tune.to_dict() == json.loads((tmp_path / "r" / "results.json").read_text())
    assert run.record["command"] == "tune" and run.table().equals(run.tune.table())
    with pytest.raises(ser.InputError, match="does not exist"):
        ser.load_run(tmp_path / "nothing")


def test_readme_examples_run(tmp_path, table):
    """Every ```python block of the README's API section runs as written (on a table the test writes)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks
    (tmp_path / "runs" / "demo" / "infer").mkdir(parents=True)
    table.to_parquet(tmp_path / "runs" / "demo" / "infer" / "scores.parquet")
    for block in blocks:
        done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, block + done.stderr


def test_notebook_results_save_reload_and_report_like_a_run_directory(table, tmp_path):
    tuned, swept, ev = ser.tune(table, FAST), ser.sweep(table, FAST), ser.evaluate(table, FAST)
    assert tuned.save(tmp_path / "nb") == tmp_path / "nb"
    swept.save(tmp_path / "nb")
    ev.save(tmp_path / "ev")
    run = ser.load_run(tmp_path / "nb")
    assert run.tune.to_dict() == tuned.to_dict() and run.table().equals(tuned.table())
    assert run.tune.summary() == tuned.summary()
    assert run.tune.predictions.equals(tuned.predictions) and len(run.tune.trials) == len(tuned.trials)
    assert run.sweep.table().equals(swept.table()) and run.sweep.to_dict() == swept.to_dict()
    assert ser.load_run(tmp_path / "ev").evaluation.table().equals(ev.table())
    assert not list((tmp_path / "nb").glob(".*.tmp"))                    # written under temporary names, renamed
    md, page = ser.write_report(tmp_path / "nb")
    html = page.read_text()
    assert (md, page) == (tmp_path / "nb" / "report.md", tmp_path / "nb" / "report.html")
    assert "Search vs simple baselines" in html and "Hindsight ceiling" in html
    assert (tmp_path / "nb" / "figures" / "sensitivity.png").exists()    # the sweep saved beside it is reported
    with pytest.raises(FileNotFoundError, match="neither results.json nor evaluation.json"):
        ser.write_report(tmp_path / "empty")


def test_results_show_a_one_line_summary_in_a_notebook_not_their_whole_contents(table, tmp_path):
    tuned, swept, ev = ser.tune(table, FAST), ser.sweep(table, FAST), ser.evaluate(table, FAST)
    r = tuned.to_dict()
    speech, fused = (100 * r["mean"][s]["macro_f1"] for s in ("speech", "tuned"))
    assert repr(tuned) == (f"<TuneResult: 4 folds, 16 trials; macro_f1 mean over folds: speech {speech:.2f}, tuned "
                           f"{fused:.2f} (better in {r['comparisons']['tuned']['folds']['improved']}/4 folds); the search "
                           f"{r['baselines']['verdict']} the best simple baseline>")
    metric = ev.to_dict()["comparisons"]["text"]["bootstrap"]["metric"]
    assert repr(ev).startswith(f"<Evaluation: 4 folds; {metric} mean over folds: speech "
                               f"{100 * ev.to_dict()['mean']['speech'][metric]:.2f}, text ")
    assert repr(swept).startswith(f"<SweepResult: 4 folds, {len(swept.surfaces):,} surface rows; chosen τ_H ")
    tuned.save(tmp_path / "r")
    assert repr(ser.load_run(tmp_path / "r")) == f"<Run {tmp_path / 'r'}: tune>"
    assert all(len(repr(x)) < 300 and "\n" not in repr(x) for x in (tuned, swept, ev))
    html = tuned._repr_html_()                                         # what Jupyter shows for the result
    assert html.startswith("<pre>&lt;TuneResult: 4 folds") and "The search " in html and "&lt;" in html
    assert html.count("\n") == tuned.summary().count("\n") + 2


def test_synthetic_scores_match_ser_synth(tmp_path):
    from ser.cli import main

    assert main(["synth", "--out", str(tmp_path / "s.parquet"), "--folds", "3", "--per-fold", "50"]) == 0
    written = ser.read_scores(tmp_path / "s.parquet")
    assert written.equals(validate(ser.synthetic_scores(n_folds=3, per_fold=50)))      # same default profile
