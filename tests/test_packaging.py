"""What `pip install .` gives a newcomer: a wheel with the configs, a `ser` that names missing extras."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory):
    """The project's wheel installed, without extras, into a new virtual environment (dependencies from the
    package registry)."""
    d = tmp_path_factory.mktemp("pip")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(d / "dist"), str(REPO)], check=True, timeout=300)
    wheel = next((d / "dist").glob("entropy_ser-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(d / "venv")], check=True, timeout=120)
    subprocess.run([str(d / "venv" / "bin" / "pip"), "install", "-q", str(wheel)], check=True, timeout=600,
                   capture_output=True)
    return d, wheel


def _ser(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "venv" / "bin" / "ser"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_the_wheel_ships_the_configs_and_type_marker(clean_venv):
    names = zipfile.ZipFile(clean_venv[1]).namelist()
    assert {"ser/configs/demo.yaml", "ser/configs/presets/published.yaml", "ser/py.typed",
            "ser/__main__.py"} <= set(names)


def test_pip_install_without_extras_evaluates_and_names_the_missing_extra(clean_venv, tmp_path):
    d, _ = clean_venv
    assert _ser(d, "--version", cwd=tmp_path).stdout.startswith("ser (entropy-ser) ")
    assert _ser(d, "synth", "--out", "s.parquet", "--folds", "3", "--per-fold", "50", cwd=tmp_path).returncode == 0
    done = _ser(d, "evaluate", "--scores", "s.parquet", "--out", "ev", "-q", cwd=tmp_path)
    assert done.returncode == 0 and "macro_f1" in done.stdout, done.stderr
    done = _ser(d, "tune", "--scores", "s.parquet", "--out", "t", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ('ser tune: error: this command needs optuna, which is not installed: '
                                   'pip install "entropy-ser[ray]"')
    shown = _ser(d, "config", "show", "demo", cwd=tmp_path)                # the shipped demo config, found by name
    assert shown.returncode == 0 and shown.stdout.startswith("name: demo")
