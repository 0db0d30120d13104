"""Failure behaviour: every bad input a one-line error with a documented exit code, nothing lost, no leftovers."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser.cli import main
from ser._util.io import output_lock, safe_name, unsafe_name
from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores

FAST_TUNE = "tune: {engine: optuna, trials: 4}\nevaluate: {bootstrap: 20}\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small valid score table, a 3-class config, a manifest, and broken files of every kind."""
    d = tmp_path_factory.mktemp("inputs")
    table = validate(synthetic_scores(n_folds=4, per_fold=60, seed=3, profile="text-strong"))
    table.to_parquet(d / "scores.parquet")
    table.assign(label="neu").to_parquet(d / "one_class.parquet")
    (d / "garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    (d / "empty.csv").write_text("")
    (d / "bad.yaml").write_text("tune: [oof, val\nseed: 1\n")
    (d / "tabs.yaml").write_text("tune:\n\ttrials: 4\n")
    (d / "dupe.yaml").write_text("seed: 1\nseed: 2\n")
    (d / "mapping.yaml").write_text("columns: {a: b\n")
    (d / "cfgdir").mkdir()
    (d / "a_file").write_text("not a directory")
    (d / "labels3.yaml").write_text("labels: {classes: [ang, hap, neu], negative: [ang]}\n")
    pd.DataFrame({"utt_id": ["u1", "u2"], "path": ["a.wav", "b.wav"], "label": ["fru", "neu"],
                  "speaker": ["s1", "s2"]}).to_csv(d / "manifest.csv", index=False)
    for name, text in {"seed": "seed: abc\n", "metric": "evaluate: {metric: auc}\n",
                       "bootstrap": "evaluate: {bootstrap: -1}\n", "baseline": "evaluate: {baseline: nosuch}\n",
                       "trials": "tune: {trials: true}\n"}.items():
        (d / f"{name}.yaml").write_text(text)
    return d


BAD = [
    # (argv with {d} for the inputs folder, exit code, text the one line must contain)
    ("evaluate --scores {d}/scores.parquet --config {d}/bad.yaml", 2, "invalid YAML at line 2"),
    ("evaluate --scores {d}/scores.parquet --config {d}/tabs.yaml", 2, "not tabs"),
    ("evaluate --scores {d}/scores.parquet --config {d}/dupe.yaml", 2, "duplicate key 'seed'"),
    ("evaluate --scores {d}/scores.parquet --config {d}/seed.yaml", 2, "seed must be a non-negative integer, got 'abc'"),
    ("evaluate --scores {d}/scores.parquet --config {d}/metric.yaml", 2, "evaluate.metric: 'auc' is not one of"),
    ("evaluate --scores {d}/scores.parquet --config {d}/bootstrap.yaml", 2, "evaluate.bootstrap must be"),
    ("evaluate --scores {d}/scores.parquet --config {d}/baseline.yaml", 2, "evaluate.baseline: 'nosuch'"),
    ("tune --scores {d}/scores.parquet --config {d}/trials.yaml", 2, "tune.trials must be a positive integer, got True"),
    ("evaluate --scores {d}/scores.parquet --config {d}/cfgdir", 2, "is a directory"),
    ("evaluate --scores {d}/garbage.parquet", 2, "is not a readable Parquet file"),
    ("evaluate --scores {d}/empty.csv", 2, "empty.csv is empty"),
    ("evaluate --scores {d}/missing.parquet", 2, "does not exist"),
    ("evaluate --scores {d}/one_class.parquet", 2, "every row has the label 'neu'"),
    ("evaluate --scores {d}/scores.parquet --config {d}/labels3.yaml", 2, "['speech_sad'] are not in the label set"),
    ("tune --scores {d}/scores.parquet --out {d}/a_file", 2, "a_file is a file, not a directory"),
    ("tune --scores {d}/scores.parquet --out {d}/a_file/sub", 2, "cannot create it"),
    ("infer --manifest {d}/scores.parquet", 2, "looks like a score table"),
    ("import --input {d}/scores.parquet --mapping {d}/mapping.yaml --out {d}/x.parquet", 2,
     "import mapping {d}/mapping.yaml: invalid YAML"),
    ("prepare --corpus manifest --table {d}/manifest.csv --out {d}/m.parquet", 2, "label(s) ['fru']"),
]


@pytest.mark.parametrize("argv, code, text", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_input_is_one_line_with_its_exit_code(files, tmp_path, capsys, argv, code, text):
    args = argv.format(d=files).split()
    if "--out" not in args and args[0] in ("evaluate", "tune", "infer"):
        args += ["--out", str(tmp_path / "out")]
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"ser {args[0]}: error: "), err
    assert text.format(d=files) in err
    assert "Traceback" not in err


def test_read_only_out_is_refused_before_any_work(files, tmp_path, capsys, monkeypatch):
    real_open = os.open

    def read_only(path, flags, *rest):
        if str(path).endswith(".ser.lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *rest)

    monkeypatch.setattr("ser._util.io.os.open", read_only)
    assert main(["tune", "--scores", str(files / "scores.parquet"), "--out", str(tmp_path / "ro")]) == 2
    assert "is not writable (Read-only file system)" in capsys.readouterr().err


def test_debug_shows_the_traceback(files, tmp_path):
    with pytest.raises(ValueError, match="evaluate.metric"):
        main(["--debug", "evaluate", "--scores", str(files / "scores.parquet"), "--config",
              str(files / "metric.yaml"), "--out", str(tmp_path)])


def test_fold_ids_never_escape_the_output_directory(tmp_path):
    df = synthetic_scores(n_folds=3, per_fold=60, seed=1, profile="text-strong")
    evil = "/../../../ESCAPED"
    df["fold"] = df["fold"].replace({df["fold"].iloc[0]: evil})
    validate(df).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text(FAST_TUNE)
    out = tmp_path / "deep" / "er" / "out"
    assert main(["tune", "--scores", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.yaml"),
                 "--out", str(out)]) == 0
    assert not list(Path("/").glob("ESCAPED*")) and not list(tmp_path.rglob("ESCAPED.json"))
    states = sorted(p.name for p in (out / "folds").iterdir())
    assert f"fold-{safe_name(evil)}.json" in states
    assert {json.loads((out / "folds" / s).read_text())["fold"] for s in states} >= {evil}
    assert evil in {f["fold"] for f in json.loads((out / "results.json").read_text())["folds"]}


@pytest.mark.parametrize("value", ["Ses01F", "/../x", "..", ".", "a b\\c", "fold:1?"])
def test_safe_names_round_trip_and_stay_one_component(value):
    name = safe_name(value)
    assert unsafe_name(name) == value and "/" not in name and name not in (".", "..")


def test_a_second_run_on_the_same_out_is_refused_naming_the_holder(files, tmp_path, capsys):
    out = tmp_path / "shared"
    with output_lock(out, "tune"):
        assert main(["evaluate", "--scores", str(files / "scores.parquet"), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert f"is in use by pid {os.getpid()}" in err and "(ser tune, started " in err
    assert not (out / "evaluation.json").exists()
    assert main(["evaluate", "--scores", str(files / "scores.parquet"), "--out", str(out)]) == 0   # released


def test_a_stale_lock_from_a_killed_run_is_taken_over(files, tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    out = tmp_path / "stale"
    out.mkdir()
    import socket

    (out / ".ser.lock").write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "command": "tune",
                                               "started": "yesterday"}))
    assert main(["evaluate", "--scores", str(files / "scores.parquet"), "--out", str(out)]) == 0
    assert not (out / ".ser.lock").exists()


def test_disk_full_on_rerun_keeps_what_the_first_run_wrote(files, tmp_path, capsys, monkeypatch):
    (tmp_path / "c.yaml").write_text(FAST_TUNE)
    args = ["tune", "--scores", str(files / "scores.parquet"), "--config", str(tmp_path / "c.yaml"),
            "--out", str(tmp_path / "o")]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "o" / "folds").iterdir()}
    results = (tmp_path / "o" / "results.json").read_bytes()

    def full(*_, **__):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o" / "folds" / "x.json"))

    monkeypatch.setattr("ser.tuning.per_fold.write_json", full)
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]     # progress lines may come before it
    assert len(errors) == 1 and errors[0].startswith("ser tune: error: disk full while writing"), err
    assert {p.name: p.read_bytes() for p in (tmp_path / "o" / "folds").iterdir()} == before
    assert (tmp_path / "o" / "results.json").read_bytes() == results


def test_ctrl_c_is_exit_130_with_one_line_and_resume_keeps_the_finished_folds(tmp_path):
    validate(synthetic_scores(n_folds=10, per_fold=200, seed=2,
                              profile="text-strong")).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text("tune: {engine: optuna, trials: 50}\n")
    cmd = [sys.executable, "-m", "ser.cli", "tune", "--scores", str(tmp_path / "s.parquet"), "--config",
           str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")]
    # as from a terminal: a shell starts background jobs (`make test &`) with SIGINT ignored, and children inherit it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not list((tmp_path / "o" / "folds").glob("fold-*.json")) and time.time() < deadline:
        time.sleep(0.02)                                         # interrupt mid-search: one fold saved, more to do
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().count("\n") == 0 and "ser tune: interrupted; rerun with --resume" in err
    assert not (tmp_path / "o" / ".ser.lock").exists()
    kept = sorted(p.name for p in (tmp_path / "o" / "folds").glob("fold-*.json"))
    assert 1 <= len(kept) < 10 and not list((tmp_path / "o" / "folds").glob(".*.tmp"))
    resumed = subprocess.run(cmd + ["--resume", "-v"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {len(kept)} finished search(es)" in resumed.stderr
    assert len(json.loads((tmp_path / "o" / "results.json").read_text())["folds"]) == 10


def test_small_folds_are_warned_about_and_recorded(files, tmp_path, capsys):
    df = validate(synthetic_scores(n_folds=4, per_fold=60, seed=3, profile="text-strong"))
    df = df[(df["fold"] != df["fold"].iloc[0]) | (np.arange(len(df)) < 5)]
    df.to_parquet(tmp_path / "s.parquet")
    assert main(["evaluate", "--scores", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "ser evaluate: warning: 1 fold(s) have fewer than 20 test rows: synthetic_S00 (5)" in err
    assert json.loads((tmp_path / "o" / "evaluation.json").read_text())["warnings"][0].startswith("1 fold(s)")


def test_a_damaged_output_of_an_up_to_date_stage_is_recomputed(files, tmp_path):
    (tmp_path / "c.yaml").write_text(f"scores: {files / 'scores.parquet'}\n" + FAST_TUNE
                                     + "sweep: {tau_h: {range: [0, 1.4], steps: 5}, tau_v: {range: [0, 1], steps: 5}}\n")
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(out)]) == 0
    good = json.loads((out / "results.json").read_text())
    (out / "results.json").write_text('{"folds": [')              # truncated
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["mean"] == good["mean"]


@pytest.mark.parametrize("change", ["version", "source"])
def test_other_code_recomputes_the_fusion_stages(files, tmp_path, monkeypatch, capsys, change):
    """Tune and sweep sign ser's code (version and source digest): results written by an upgraded or edited ser
    are not kept as up to date, and the tune stage searches its folds again instead of reusing saved searches."""
    import ser
    from ser._util import provenance

    (tmp_path / "c.yaml").write_text(f"scores: {files / 'scores.parquet'}\n" + FAST_TUNE
                                     + "sweep: {tau_h: {range: [0, 1.4], steps: 5}, tau_v: {range: [0, 1], steps: 5}}\n")
    out = tmp_path / "run"
    run = ["run", str(tmp_path / "c.yaml"), "--out", str(out)]
    assert main(run) == 0 and main(run) == 0
    assert capsys.readouterr().err.count("up to date, skipped") == 2
    n_folds = len(list((out / "folds").glob("fold-*.json")))
    if change == "version":
        monkeypatch.setattr(ser, "__version__", "99.0")
    else:
        monkeypatch.setattr(provenance, "source_digest", lambda root: "edited")
    assert main(run) == 0
    err = capsys.readouterr().err
    assert "up to date, skipped" not in err and "== tune\n" in err and "== sweep\n" in err
    assert (out / "ser.log").read_text().split("== tune")[-1].count(f"{n_folds} search(es) in") == 1


def test_the_source_digest_changes_with_any_file_content_or_name(tmp_path):
    from ser._util.provenance import source_digest

    def digest(files: dict[str, str]) -> str:
        root = tmp_path / str(len(list(tmp_path.iterdir())))
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        return source_digest(root)

    base = digest({"a.py": "x = 1\n", "sub/b.py": "y = 2\n", "notes.md": "not code"})
    assert digest({"a.py": "x = 1\n", "sub/b.py": "y = 2\n", "notes.md": "other"}) == base     # only *.py counts
    assert digest({"a.py": "x = 1\n", "sub/b.py": "y = 3\n"}) != base
    assert digest({"a.py": "x = 1\n", "sub/c.py": "y = 2\n"}) != base


def test_unreadable_audio_names_the_reason(tmp_path, monkeypatch):
    import soundfile as sf

    from ser.inference.audio import AudioError, load_audio

    sf.write(str(tmp_path / "a.wav"), np.zeros(1600, dtype=np.float32), 16000)

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(AudioError, match=r"cannot open .*a.wav: Permission denied"):
        load_audio(tmp_path / "a.wav")


def test_short_and_silent_clips_are_scored_but_flagged(tmp_path):
    import soundfile as sf

    from ser.inference.backends.audio_stage import load_batch

    rng = np.random.default_rng(0)
    clips = {"short": 0.1 * rng.normal(size=800), "silent": np.zeros(16000), "fine": 0.1 * rng.normal(size=16000)}
    for name, x in clips.items():
        sf.write(str(tmp_path / f"{name}.wav"), x.astype(np.float32), 16000)
    b = load_batch({"path": np.array([str(tmp_path / f"{n}.wav") for n in clips], dtype=object)})
    assert list(b["audio_error"]) == ["", "", ""]
    assert b["audio_warning"][0].startswith("shorter than 0.25 s (0.050 s)")
    assert b["audio_warning"][1].startswith("silent") and b["audio_warning"][2] == ""


def test_the_one_json_reader_tells_missing_from_damaged(tmp_path):
    from ser._util.io import DamagedFile, read_json

    assert read_json(tmp_path / "absent.json") is None
    (tmp_path / "cut.json").write_text('{"folds": [1, 2')                 # a write cut short
    with pytest.raises(DamagedFile, match=r"cut.json is not valid JSON .*rerun the command"):
        read_json(tmp_path / "cut.json")
    (tmp_path / "ok.json").write_text('{"a": 1}')
    assert read_json(tmp_path / "ok.json") == {"a": 1}


def test_every_run_record_has_one_layout():
    from ser.config import load_config
    from ser._util.provenance import run_record

    record = run_record("infer", load_config({"seed": 3}), models={"f1": "local:abc"})
    assert list(record)[:4] == ["command", "config", "seed", "models"] and record["seed"] == 3
    assert {"created", "git_commit", "packages", "python", "ser_code"} <= set(record)
