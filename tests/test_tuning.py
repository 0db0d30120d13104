"""Per-fold tuning: leakage, determinism, gains where text carries valence, config errors, resume."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ser
from ser.cli import main
from ser.config import ConfigError, EvaluateConfig, TuneConfig, load_config
from ser._util.provenance import source_digest
from ser.evaluation.result_types import TunedSystems
from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores
from ser.tuning.choice import choose_trial
from ser.tuning.per_fold import make_fold_search, tune_folds, tuned_results

FAST = TuneConfig(engine="optuna", trials=12, max_concurrent_trials=1,
                  space={"select": {"tau_h": {"quantiles": [0.05, 0.95], "steps": 12},
                                    "tau_v": {"quantiles": [0.05, 0.95], "steps": 12}},
                         "soft": {"w": {"range": [0, 1], "steps": 21}}})


@pytest.fixture(scope="module")
def table():
    return validate(synthetic_scores(n_folds=5, per_fold=240, seed=3, profile="text-strong"))


def chosen(df, tune_cfg=FAST, seed=0):
    labels = load_config(None).label_set
    searches = tune_folds(df, labels, tune_cfg, make_fold_search(tune_cfg), seed)
    return searches, {f: choose_trial(r, tune_cfg.choice).config for f, r in searches.items()}


def test_changing_a_folds_test_labels_never_changes_its_choice(table):
    _, before = chosen(table)
    k = sorted(table["fold"].unique())[2]
    changed = table.copy()
    rows = changed["fold"] == k
    changed.loc[rows, "label"] = np.random.default_rng(0).permutation(changed.loc[rows, "label"].to_numpy())
    _, after = chosen(changed)
    assert after[k] == before[k]
    # under oof the other folds tune on fold k's rows, so their choices may (and here do) move
    assert any(after[f] != before[f] for f in before if f != k)


def test_leakage_val_protocol_no_fold_moves(table):
    """Each fold's model scored its own val rows (other speakers); test labels feed no tuning set."""
    folds = sorted(table["fold"].unique())
    val = table.copy()
    val["model_fold"] = [folds[(folds.index(f) + 1) % len(folds)] for f in val["fold"]]
    val["split"] = "val"
    val["utt_id"] = val["utt_id"] + "_v"
    both = validate(pd.concat([table, val], ignore_index=True))
    cfg = replace(FAST, protocol="val")
    _, before = chosen(both, cfg)
    changed = both.copy()
    test_rows = changed["split"] == "test"
    changed.loc[test_rows, "label"] = "neu"
    _, after = chosen(changed, cfg)
    assert after == before


def test_same_seed_same_results_and_tuned_beats_speech_in_every_fold(table):
    labels = load_config(None).label_set
    s1, c1 = chosen(table)
    s2, c2 = chosen(table)
    r1 = tuned_results(table, labels, s1, FAST, EvaluateConfig(bootstrap=100), 0)
    r2 = tuned_results(table, labels, s2, FAST, EvaluateConfig(bootstrap=100), 0)
    assert json.dumps(r1.to_dict()) == json.dumps(r2.to_dict())
    for fold in r1.folds:
        assert fold.systems["tuned"]["macro_f1"] > fold.systems["speech"]["macro_f1"], fold.fold
        best, kept = fold.best, choose_trial(s1[fold.fold])
        assert best.config == kept.config and best.tuning_score == kept.score
        assert best.test_score == fold.systems["tuned"]["macro_f1"]
        assert best.optimism == pytest.approx(kept.score - best.test_score)
        assert best.inner_score == pytest.approx(np.mean(kept.inner)) and len(kept.inner) == 4   # 4 other folds
    assert r1.tuning.mean_optimism == pytest.approx(np.mean([f.best.optimism for f in r1.folds]))
    assert TunedSystems.from_dict(json.loads(json.dumps(r1.to_dict()))) == r1     # results.json reads back whole
    assert r1.comparisons["tuned"].folds.improved == 5
    assert r1.comparisons["tuned"].bootstrap.ci_low > 0


@pytest.mark.parametrize("yaml_text, message", [
    ("tune: {protocl: oof}", "tune: unknown key 'protocl'; did you mean 'protocol'?"),
    ("tune: {protocol: loso}", "tune.protocol: 'loso' is not one of"),
    ("tune: {trials: 0}", "tune.trials must be a positive integer"),
    ("tune: {space: {select: {gate: [hv, hx]}}}", "tune.space.select.gate: unknown choice(s) ['hx']"),
    ("tune: {space: {select: {tau_h: {quantiles: [0.9, 0.1]}}}}", "tune.space.select.tau_h.quantiles must be"),
    ("tune: {space: {soft: {w: {range: [0, 1], stpes: 3}}}}",
     "tune.space.soft.w: unknown key 'stpes'; did you mean 'steps'?"),
    ("tune: {space: {varients: [select]}}", "tune.space: unknown key 'varients'; did you mean 'variants'?"),
])
def test_bad_tune_config_names_the_key(tmp_path, yaml_text, message):
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)


def test_cli_tune_writes_outputs_and_resumes(tmp_path, table, capsys):
    scores = tmp_path / "s.parquet"
    table.to_parquet(scores)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tune: {engine: optuna, trials: 6, space: {select: {tau_h: {quantiles: [0.05, 0.95], steps: 8},"
                   " tau_v: {quantiles: [0.05, 0.95], steps: 8}}}}\nevaluate: {bootstrap: 50}\n")
    out = tmp_path / "run"
    args = ["tune", "--scores", str(scores), "--config", str(cfg), "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "results.json").read_text())
    trials = pd.read_parquet(out / "trials.parquet")
    run = json.loads((out / "run.json").read_text())
    assert len(trials) == 5 * 6 and set(trials["fold"]) == {f["fold"] for f in result["folds"]}
    assert run["config"]["tune"]["trials"] == 6 and run["packages"]["numpy"] and run["seed"] == 0
    assert run["ser_code"] == f"{ser.__version__}+{source_digest(Path(ser.__file__).parent)}"
    # simulate a run killed after 2 folds: drop 3 fold states, resume, and get the same results
    states = sorted((out / "folds").glob("fold-*.json"))
    kept = {p.name: p.read_text() for p in states[:2]}
    for p in states[2:]:
        p.unlink()
    capsys.readouterr()
    assert main(args + ["--resume"]) == 0
    assert f"resumed 2 finished search(es): {sorted(f['fold'] for f in result['folds'])[:2]}" in capsys.readouterr().err
    assert {p.name: p.read_text() for p in sorted((out / "folds").glob("fold-*.json"))[:2]} == kept
    assert json.loads((out / "results.json").read_text()) == result


@pytest.mark.ray
def test_ray_tune_engine_gives_the_in_process_engines_trials(table, ray_session):
    """A Tune trial per fold steps the same seeded study as the in-process engine: the same trials, trial for
    trial, whatever order the folds run in."""
    from jobs.tune import ray_engine

    cfg = replace(FAST, engine="ray", trials=5, max_concurrent_trials=2)
    labels = load_config(None).label_set
    ray_run = tune_folds(table, labels, cfg, make_fold_search(cfg, ray_engine), 7)
    assert {f: len(r) for f, r in ray_run.items()} == {f: 5 for f in sorted(table["fold"].unique())}
    assert all(r.n_configs > 1 for rs in ray_run.values() for r in rs)
    assert ray_run == tune_folds(table, labels, replace(cfg, engine="optuna"), make_fold_search(cfg), 7)


def test_folds_as_ray_tasks_give_the_in_process_trials_and_auto_takes_them_where_ray_runs(table, ray_session,
                                                                                          tmp_path):
    """With Ray already running here (ser run after inference), auto searches a large enough table's folds as Ray
    tasks side by side: the same trials as one after another, every fold saved as it finishes. Small searches, and
    explicit engines, stay where they were."""
    from jobs.tune import task_engine
    from ser.config import AUTO_TASK_WORK
    from ser.engine import search_engine
    from ser.tuning.per_fold import optuna_engine

    cfg = replace(FAST, engine="auto", trials=4)
    labels = load_config(None).label_set
    as_tasks = tune_folds(table, labels, cfg, make_fold_search(cfg, task_engine), 7, state_dir=tmp_path)
    assert as_tasks == tune_folds(table, labels, cfg, make_fold_search(cfg, optuna_engine), 7)
    assert len(list(tmp_path.glob("fold-*.json"))) == len(as_tasks) == 5       # each fold saved as it finished
    big = AUTO_TASK_WORK // cfg.trials
    assert search_engine(cfg, big) is task_engine
    assert search_engine(cfg, big - 1) is optuna_engine
    assert search_engine(replace(cfg, engine="optuna"), big) is optuna_engine


AUTO_ON_A_LARGE_TABLE = """
import json, sys
import ray
import ser, ser.config
from ser.data.synthetic import synthetic_scores
ser.config.AUTO_RAY_ROWS = 1000                                # this table counts as large
table = synthetic_scores(n_folds=5, per_fold=240, seed=3, profile="text-strong")
space = {"select": {"tau_h": {"quantiles": [0.05, 0.95], "steps": 8}, "tau_v": {"quantiles": [0.05, 0.95], "steps": 8}}}
trials = {}
for engine in ("optuna", "auto"):
    result = ser.tune(table, {"tune": {"engine": engine, "trials": 4, "space": space}, "evaluate": {"bootstrap": 20}})
    trials[engine] = result.trials.drop(columns=["seconds"], errors="ignore").to_json()
    trials[engine + " started ray"] = ray.is_initialized()
print(json.dumps(trials))
"""


@pytest.mark.ray
def test_auto_searches_a_large_tables_folds_as_ray_tasks_starting_ray_with_the_in_process_trials():
    """In a fresh process, ``auto`` on a table of AUTO_RAY_ROWS rows or more starts a local Ray and searches the folds
    as Ray tasks (the fastest engine on one machine), with the same trials as the in-process engine."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", AUTO_ON_A_LARGE_TABLE], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert not out["optuna started ray"] and out["auto started ray"]
    assert out["auto"] == out["optuna"]


@pytest.mark.ray
def test_interrupted_ray_search_resumes_exactly(tmp_path):
    """SIGKILL `ser tune` once its folds have checkpointed their searches; `--resume` restores the Tune experiment,
    continues each fold from its checkpoint, reports its progress to the resumed process (Tune restores its
    callbacks from the killed run's pickled state), and gives exactly the trials of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    validate(synthetic_scores(n_folds=3, per_fold=400, seed=8,
                              profile="text-strong")).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text("tune: {engine: ray, trials: 40, storage: 'sqlite:///{out}/optuna.db',"
                                     " space: {select: {tau_h: {quantiles: [0.01, 0.99], steps: 90},"
                                     " tau_v: {quantiles: [0.01, 0.99], steps: 90}, rounds: 3}}}\n"
                                     "evaluate: {bootstrap: 50}\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ser.cli", "tune", "--scores", str(tmp_path / "s.parquet"), "--config",
           str(tmp_path / "c.yaml"), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def checkpoints() -> int:
        """Fold searches Tune has checkpointed so far."""
        return len(list((out / "tune_experiment").rglob("checkpoint_*"))) if (out / "tune_experiment").exists() else 0

    deadline = time.time() + 180
    while time.time() < deadline and checkpoints() < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoints() >= 2 and not (out / "results.json").exists(), "not interrupted mid-way"
    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "restoring the interrupted Tune experiment" in resumed.stderr
    assert "tuning: 120/120 trials in " in resumed.stderr      # the trials checkpointed before the kill count too
    trials = pd.read_parquet(out / "trials.parquet")
    assert trials.groupby("fold").size().tolist() == [40, 40, 40]
    uninterrupted = subprocess.run(cmd[:-1] + [str(tmp_path / "whole"), "--engine", "optuna"], env=env,
                                   capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    pd.testing.assert_frame_equal(trials, pd.read_parquet(tmp_path / "whole" / "trials.parquet"))
    assert (json.loads((out / "results.json").read_text())["folds"]
            == json.loads((tmp_path / "whole" / "results.json").read_text())["folds"])
    # the Optuna storage holds one complete study per fold (written once the folds were finished)
    import optuna
    url = f"sqlite:///{out.resolve()}/optuna.db"
    assert {n: len(optuna.load_study(study_name=n, storage=url).trials) for n in optuna.get_all_study_names(url)} \
        == dict.fromkeys(trials["fold"].unique(), 40)
    # finished: Tune's experiment folder (trial dirs, checkpoints) is gone, the fold states remain
    assert not (out / "tune_experiment").exists() and len(list((out / "folds").iterdir())) == 3


def test_a_killed_task_engine_search_resumes_from_its_finished_folds_with_the_uninterrupted_trials(tmp_path):
    """SIGKILL `ser tune --engine tasks` (driver, its Ray and the fold tasks) once a fold is saved: `--resume` keeps
    the saved folds, searches the rest, and gives the trials and results of an uninterrupted in-process run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    validate(synthetic_scores(n_folds=4, per_fold=300, seed=5, profile="text-strong")).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text("tune: {trials: 30}\nevaluate: {bootstrap: 50}\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ser.cli", "tune", "--scores", str(tmp_path / "s.parquet"), "--config",
           str(tmp_path / "c.yaml"), "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(cmd + ["--engine", "tasks"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not list((out / "folds").glob("fold-*.json")):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = sorted(p.name for p in (out / "folds").glob("fold-*.json"))
    assert 1 <= len(kept) < 4 and not (out / "results.json").exists(), "not interrupted mid-way"
    resumed = subprocess.run(cmd + ["--engine", "tasks", "--resume", "-v"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed {len(kept)} finished search(es)" in resumed.stderr
    uninterrupted = subprocess.run(cmd[:-1] + [str(tmp_path / "whole"), "--engine", "optuna"], env=env,
                                   capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "trials.parquet"),
                                  pd.read_parquet(tmp_path / "whole" / "trials.parquet"))
    assert (json.loads((out / "results.json").read_text())["folds"]
            == json.loads((tmp_path / "whole" / "results.json").read_text())["folds"])


@pytest.mark.ray
def test_ctrl_c_on_the_ray_engine_exits_130_without_a_traceback(tmp_path):
    """Tune stops on SIGINT after saving its state; ser reports the interrupt (it once died in KeyError: 'chosen')."""
    import signal
    import subprocess
    import sys
    import time

    validate(synthetic_scores(n_folds=10, per_fold=300, seed=2,
                              profile="text-strong")).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text("tune: {engine: ray, trials: 200}\n")
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "ser.cli", "tune", "--scores", str(tmp_path / "s.parquet"),
                             "--config", str(tmp_path / "c.yaml"), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((out / "tune_experiment").rglob("experiment_state-*.json")) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "ser tune: interrupted; rerun with --resume to continue"
    assert "Traceback" not in err and "KeyError" not in err and not (out / "results.json").exists()
