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
    """The engine that runs: ``tune.engine``, with ``auto`` resolved for a table of ``rows`` rows."""
    from ser.config import AUTO_RAY_ROWS

    if tune.engine != "auto":
        return tune.engine
    return "ray" if not ray_layer("ray_env").local_ray() or rows >= AUTO_RAY_ROWS else "optuna"


def search_engine(tune: "TuneConfig", rows: int, experiment_dir: str | Path | None = None, resume: bool = False
                  ) -> "SearchEngine":
    """The engine for ``tune.engine`` on ``rows`` rows: Ray Tune (a Tune trial per fold) or in-process Optuna."""
    from ser.config import AUTO_RAY_ROWS, AUTO_TASK_WORK
    from ser.tuning.per_fold import optuna_engine

    name = engine_for(tune, rows)
    tasks = (tune.engine == "auto" and name == "optuna" and rows * tune.trials >= AUTO_TASK_WORK
             and ray_layer("ray_env").ray_running())
    if tune.engine == "auto":
        chosen = "Ray Tune" if name == "ray" else "Ray tasks on the Ray already running" if tasks else "in-process Optuna"
        log.debug(f"tune.engine auto: {chosen} for {rows:,} rows (Ray Tune on a cluster or from {AUTO_RAY_ROWS:,} rows; "
                  f"below, Ray tasks when Ray already runs here and rows x trials >= {AUTO_TASK_WORK:,})")
    if name == "ray":
        return partial(ray_layer("tune").ray_engine, experiment_dir=str(experiment_dir) if experiment_dir else None,
                       resume=resume)
    return ray_layer("tune").task_engine if tasks else optuna_engine


def run_inference(manifest: pd.DataFrame, infer: "InferConfig", labels: "LabelSet", out: Path
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a manifest with the Ray Data pipeline into ``out`` (scores.parquet, errors.parquet)."""
    return ray_layer("infer").run_infer(manifest, infer, labels, out)
