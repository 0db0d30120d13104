"""The README a newcomer reads and the documentation site: short, true, building without warnings."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


from ser.cli import main

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_the_readme_is_short_and_its_links_resolve():
    assert len(README.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links and all((REPO / link).exists() for link in links), [l for l in links if not (REPO / l).exists()]


def test_the_docs_site_builds_with_warnings_as_errors(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    done = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("index.html", "guide/tuning/index.html", "config/index.html", "api/index.html"):
        assert (tmp_path / "site" / page).stat().st_size > 2000
    assert "ser.api.tune" in (tmp_path / "site" / "api" / "index.html").read_text()   # from the docstrings


def test_your_own_data_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's "Your own data" block, command by command, on the sample in examples/."""
    block = README.split("## Your own data", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.startswith("ser ")]
    assert [c[1] for c in commands] == ["import", "tune", "sweep", "report"]
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for command in commands:
        extra = ["--set", "tune.engine=optuna", "--set", "tune.trials=8"] if command[1] == "tune" else []
        assert main(command[1:] + extra) == 0, capsys.readouterr().err
    assert (tmp_path / "runs" / "mine" / "report.html").exists()
    assert (tmp_path / "runs" / "mine" / "scores.parquet").exists()      # not replaced by a second write
