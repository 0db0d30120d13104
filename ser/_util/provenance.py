"""What produced a run: package versions, git commit, Python, platform."""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ser.config import StudyConfig

PACKAGES = ("entropy-ser", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "ray", "optuna", "torch",
            "transformers", "faster-whisper", "ctranslate2")


def package_versions() -> dict[str, str | None]:
    """Installed versions (None when absent), read from metadata without importing anything."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def code_version() -> str:
    """ser's version plus a digest of its source, signed by every fusion stage and saved search: work done by other
    code (an upgrade, or an edit in a checkout) is redone rather than reused. Inference does not sign it."""
    import ser

    return f"{ser.__version__}+{source_digest(Path(ser.__file__).parent)}"


@functools.lru_cache(maxsize=None)
def source_digest(root: Path) -> str:
    """A short hash of every ``*.py`` file under ``root``, names included (read once per process)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def git_commit(path: Path | None = None) -> str | None:
    """HEAD of the project checkout, with '+dirty' when it has uncommitted changes; None outside git."""
    cwd = path or Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run_record(command: str, cfg: "StudyConfig", **fields: Any) -> dict:
    """The one layout of ``run.json``: the command, its resolved config and seed, what ran it (:func:`provenance`),
    then the command's own fields (timings, warnings, models, stages)."""
    return {"command": command, "config": cfg.to_dict(), "seed": cfg.seed, **fields, **provenance()}


def provenance() -> dict:
    return {"created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "python": sys.version.split()[0],
            "platform": platform.platform(), "git_commit": git_commit(),
            "ser_code": code_version(), "packages": package_versions()}
