"""The one hook from ``ser/`` to the Ray layer in ``jobs/``: the Tune search engine, the Ray Data pipeline, job
submission.

Everything else in ``ser/`` is pure (no Ray, no torch); these functions import the Ray layer only when called.
In a source tree it is the top-level ``jobs`` package; an installed wheel carries the same folder as ``ser.jobs``
(pyproject's ``package-dir``), so ``pip install`` adds no bare top-level ``jobs`` beside a user's own.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ser.config import InferConfig, TuneConfig
    from ser.data.labels import LabelSet
    from ser.tuning.per_fold import SearchEngine


log = logging.getLogger(__name__)

SOURCE_TREE_JOBS = Path(__file__).resolve().parent.parent / "jobs"


def ray_layer(module: str) -> ModuleType:
    """``jobs.<module>`` where the ``jobs`` on the path is this source tree's, else the wheel's ``ser.jobs.<module>``."""
    spec = importlib.util.find_spec("jobs")
    in_tree = spec is not None and spec.origin is not None and Path(spec.origin).resolve().parent == SOURCE_TREE_JOBS
    return importlib.import_module(f"{'jobs' if in_tree else 'ser.jobs'}.{module}")


def engine_for(tune: "TuneConfig", rows: int) -> str:
    """The engine that runs, ``ray`` (Ray Tune), ``tasks`` (a Ray task per fold) or ``optuna`` (in process):
    ``tune.engine``, or for ``auto`` on a table of ``rows`` rows: Ray Tune on a cluster (``RAY_ADDRESS``); on this
    machine a Ray task per fold from ``AUTO_RAY_ROWS`` rows, or where this process already runs Ray and rows × trials
    reach ``AUTO_TASK_WORK``; else in process."""
    from ser.config import AUTO_RAY_ROWS, AUTO_TASK_WORK

    if tune.engine != "auto":
        return tune.engine
    ray_env = ray_layer("ray_env")
    if not ray_env.local_ray():
        return "ray"
    if rows >= AUTO_RAY_ROWS or (rows * tune.trials >= AUTO_TASK_WORK and ray_env.ray_running()):
        return "tasks"
    return "optuna"


ENGINE_NAMES = {"ray": "Ray Tune", "tasks": "a Ray task per fold", "optuna": "in-process Optuna"}


def search_engine(tune: "TuneConfig", rows: int, experiment_dir: str | Path | None = None, resume: bool = False
                  ) -> "SearchEngine":
    """The engine :func:`engine_for` names for ``tune`` on ``rows`` rows, ready to search."""
    from ser.config import AUTO_RAY_ROWS, AUTO_TASK_WORK
    from ser.tuning.per_fold import optuna_engine

    name = engine_for(tune, rows)
    if tune.engine == "auto":
        log.debug(f"tune.engine auto: {ENGINE_NAMES[name]} for {rows:,} rows (Ray Tune on a cluster; here Ray tasks "
                  f"from {AUTO_RAY_ROWS:,} rows, or when Ray already runs and rows x trials >= {AUTO_TASK_WORK:,})")
    if name == "ray":
        return partial(ray_layer("tune").ray_engine, experiment_dir=str(experiment_dir) if experiment_dir else None,
                       resume=resume)
    return ray_layer("tune").task_engine if name == "tasks" else optuna_engine


def run_inference(manifest: pd.DataFrame, infer: "InferConfig", labels: "LabelSet", out: Path
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a manifest with the Ray Data pipeline into ``out`` (scores.parquet, errors.parquet)."""
    return ray_layer("infer").run_infer(manifest, infer, labels, out)
