"""The terminal: -q / default / -v levels, warnings as one prefixed line, progress without a TTY, ser.log."""

import json
import logging

from ser.cli import main
from ser._util.progress import progress

FAST = {"tune": {"engine": "optuna", "trials": 3}, "evaluate": {"bootstrap": 20}}


def test_verbosity_levels_and_the_log_file(tmp_path, capsys, synth_table):
    synth_table.to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text(json.dumps(FAST))
    args = ["tune", "--scores", str(tmp_path / "s.parquet"), "--config", str(tmp_path / "c.yaml")]
    assert main(args + ["--out", str(tmp_path / "q"), "-q"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and "search vs simple leakage-free baselines" in quiet.out   # results still printed
    assert main(args + ["--out", str(tmp_path / "d")]) == 0
    default = capsys.readouterr().err
    assert "tuning: 30/30 trials" in default and "fold synthetic_S00: 3 trials" not in default
    assert main(args + ["--out", str(tmp_path / "v"), "-v"]) == 0
    verbose = capsys.readouterr().err
    assert "fold synthetic_S00: 3 trials" in verbose and len(verbose.splitlines()) > len(default.splitlines())
    log = (tmp_path / "q" / "ser.log").read_text()                    # the file has everything, even with -q
    assert " DEBUG ser.tuning.per_fold: fold synthetic_S00: 3 trials" in log and " INFO ser._util.progress: tuning: 30/30" in log


def test_progress_without_a_terminal_logs_a_closing_line(caplog):
    with caplog.at_level(logging.INFO, logger="ser._util.progress"):
        with progress(5, "scored", "rows") as advance:
            for _ in range(5):
                advance(1)
    assert len(caplog.records) == 1 and caplog.records[0].getMessage().startswith("scored: 5/5 rows in ")


def test_a_progress_inside_another_shows_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="ser._util.progress"):
        with progress(2, "cross", "corpora") as outer:
            for _ in range(2):
                with progress(5, "tuning", "trials") as inner:
                    inner(5)
                outer(1)
        with progress(1, "sweep", "folds") as after:                # a later one speaks again
            after(1)
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == ["cross: 2/2 corpora", "sweep: 1/1 folds"]


def test_slow_units_are_reported_as_seconds_each(caplog, monkeypatch):
    clock = iter([0.0, 0.0, 0.0])             # start, last line, the check in advance(); then 30 s later
    monkeypatch.setattr("ser._util.progress.time.perf_counter", lambda: next(clock, 30.0))
    with caplog.at_level(logging.INFO, logger="ser._util.progress"):
        with progress(2, "cross", "corpora") as advance:
            advance(2)
    assert caplog.records[-1].getMessage() == "cross: 2/2 corpora in 30.0 s (15.0 s each)"
