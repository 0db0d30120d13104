"""What `pip install .` gives a newcomer: a wheel with the configs, a `ser` that names missing extras."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from jobs.submit import runtime_env

REPO = Path(__file__).resolve().parent.parent
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "runs", "site", "*.egg-info", "__pycache__",
                                    ".pytest_cache")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a copy of the source files (a stale ``build/`` would leak into it)."""
    d = tmp_path_factory.mktemp("wheel")
    shutil.copytree(REPO, d / "src", symlinks=True, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(d / "dist"), str(d / "src")], check=True, timeout=300)
    return next((d / "dist").glob("entropy_ser-*.whl"))


def _venv(d: Path, requirement: str) -> Path:
    """A new virtual environment with ``requirement`` pip-installed (dependencies from the package registry)."""
    subprocess.run([sys.executable, "-m", "venv", str(d / "venv")], check=True, timeout=120)
    subprocess.run([str(d / "venv" / "bin" / "pip"), "install", "-q", requirement], check=True, timeout=900,
                   capture_output=True)
    return d


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory, wheel):
    """The wheel installed without extras."""
    return _venv(tmp_path_factory.mktemp("pip"), str(wheel)), wheel


@pytest.fixture(scope="module")
def ray_venv(clean_venv):
    """The wheel installed with the ``ray`` extra: the clean environment with the extra added (once the tests without
    extras, which come first in this file, have used it), so the base dependencies are installed once."""
    venv, wheel = clean_venv
    subprocess.run([str(venv / "venv" / "bin" / "pip"), "install", "-q", f"{wheel}[ray]"], check=True, timeout=900,
                   capture_output=True)
    return venv


def _ser(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "venv" / "bin" / "ser"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_the_wheel_ships_the_configs_and_type_marker_and_the_ray_layer_under_ser(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {"ser/configs/demo.yaml", "ser/configs/presets/published.yaml", "ser/py.typed",
            "ser/__main__.py", "ser/jobs/tune.py", "ser/jobs/infer.py"} <= set(names)
    assert sorted({n.split("/")[0] for n in names if not n.startswith("entropy_ser-")}) == ["ser"]


def test_the_packages_pyproject_lists_are_every_package_of_the_source_tree():
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    in_tree = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "ser").rglob("__init__.py")
               if "configs" not in p.parts}
    assert set(listed) == in_tree | {"ser.jobs"}


def test_a_submission_uploads_ser_itself_unless_the_working_directory_is_a_source_tree(tmp_path):
    assert "py_modules" not in runtime_env(str(REPO), None)
    assert runtime_env(str(tmp_path), None)["py_modules"] == [str(REPO / "ser"), str(REPO / "jobs")]


def test_pip_install_without_extras_evaluates_and_names_the_missing_extra(clean_venv, tmp_path):
    d, _ = clean_venv
    assert _ser(d, "--version", cwd=tmp_path).stdout.startswith("ser (entropy-ser) ")
    assert _ser(d, "synth", "--out", "s.parquet", "--folds", "3", "--per-fold", "50", cwd=tmp_path).returncode == 0
    done = _ser(d, "evaluate", "--scores", "s.parquet", "--out", "ev", "-q", cwd=tmp_path)
    assert done.returncode == 0 and "macro_f1" in done.stdout, done.stderr
    done = _ser(d, "tune", "--scores", "s.parquet", "--out", "t", "--engine", "ray", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ('ser tune: error: this command needs ray, which is not installed: '
                                   'pip install "entropy-ser[ray]"')
    done = _ser(d, "tune", "--scores", "s.parquet", "--out", "t", cwd=tmp_path)     # auto: in-process on 150 rows
    assert done.returncode == 2 and done.stderr.strip() == ('ser tune: error: this command needs optuna, which is not '
                                                            'installed: pip install "entropy-ser[ray]"')
    shown = _ser(d, "config", "show", "demo", cwd=tmp_path)                # the shipped demo config, found by name
    assert shown.returncode == 0 and shown.stdout.startswith("name: demo")


def test_pip_install_with_the_ray_extra_tunes_with_ray_tune(ray_venv, tmp_path):
    """`pip install "entropy-ser[ray]"`, then the default `ser tune` (the Ray engine, from the wheel's ser.jobs)."""
    bare = subprocess.run([str(ray_venv / "venv" / "bin" / "python"), "-c", "import jobs"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert "No module named 'jobs'" in bare.stderr
    assert _ser(ray_venv, "synth", "--out", "s.parquet", "--folds", "3", "--per-fold", "50", cwd=tmp_path
                ).returncode == 0
    (tmp_path / "c.yaml").write_text("tune: {trials: 4, engine: ray}\nevaluate: {bootstrap: 50}\n")
    done = _ser(ray_venv, "tune", "--scores", "s.parquet", "--config", "c.yaml", "--out", "t", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tuning: 12/12 trials" in done.stdout + done.stderr and (tmp_path / "t" / "results.json").is_file()
