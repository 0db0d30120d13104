"""The outer surface of the ``ser`` command: version, ``python -m ser``, pipes, and missing extras."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import ser
from ser.cli import main
from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores


def test_version_from_the_command_and_python_dash_m():
    for cmd in (["ser", "--version"], [sys.executable, "-m", "ser", "--version"]):
        if cmd[0] == "ser":
            cmd[0] = os.path.join(os.path.dirname(sys.executable), "ser")
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.strip() == f"ser (entropy-ser) {ser.__version__}"


def test_a_shipped_config_is_found_by_name_from_any_directory(tmp_path, monkeypatch, capsys):
    """``ser config show demo`` away from a checkout reads ser's own configs; an unknown name lists them."""
    monkeypatch.chdir(tmp_path)
    assert main(["config", "show", "demo"]) == 0 and capsys.readouterr().out.startswith("name: demo")
    assert main(["config", "show", "nosuch"]) == 2
    assert "nor is it one of ser's own configs: cross_dataset, demo, demo_published" in capsys.readouterr().err


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "s.parquet"
    validate(synthetic_scores(n_folds=3, per_fold=40, seed=1, profile="text-strong")).to_parquet(path)
    return path


def test_a_closed_pipe_ends_the_command_quietly_with_exit_0(table, tmp_path, monkeypatch, capsys):
    read_end, write_end = os.pipe()
    os.close(read_end)                               # `| head` that has already exited
    monkeypatch.setattr(sys, "stdout", os.fdopen(write_end, "w", buffering=1))
    assert main(["evaluate", "--scores", str(table), "--out", str(tmp_path / "e")]) == 0
    assert "Broken pipe" not in capsys.readouterr().err


@pytest.mark.parametrize("module,extra", [("optuna", "ray"), ("ray", "ray")])
def test_a_missing_extra_is_one_line_naming_it(table, tmp_path, monkeypatch, capsys, module, extra):
    monkeypatch.setitem(sys.modules, module, None)   # what `pip install .` without extras leaves
    assert main(["tune", "--scores", str(table), "--out", str(tmp_path / "t"), "--engine",
                 "optuna" if module == "optuna" else "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"ser tune: error: this command needs {module}, which is not installed: "
                   f"pip install \"entropy-ser[{extra}]\"")


def test_a_bug_is_not_reported_as_bad_input(table, tmp_path, capsys, monkeypatch):
    """A ValueError that ser did not raise about the input (here from inside a stage) exits 1 with the exception's
    name and a hint; --debug shows the traceback. Bad input stays exit 2."""
    import ser.study

    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")

    monkeypatch.setattr(ser.study, "evaluate_stage", broken)
    assert main(["evaluate", "--scores", str(table), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("ser evaluate: internal error: ValueError: operands could not be broadcast together with shapes "
                   "(3,) (4,) (rerun with --debug for the traceback, and please report it)")
    with pytest.raises(ValueError, match="broadcast"):
        main(["--debug", "evaluate", "--scores", str(table), "--out", str(tmp_path / "o")])
    assert main(["evaluate", "--scores", str(tmp_path / "missing.parquet")]) == 2
