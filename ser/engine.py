"""The one hook from ``ser/`` to the Ray layer in ``jobs/``: the Tune search engine and the Ray Data pipeline.

Everything else in ``ser/`` is pure (no Ray, no torch); these functions import ``jobs`` only when called.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from ser.config import InferConfig, TuneConfig
    from ser.labels import LabelSet
    from ser.tuning import SearchEngine


def search_engine(tune: "TuneConfig", experiment_dir: str | Path | None = None, resume: bool = False
                  ) -> "SearchEngine":
    """The engine ``tune.engine`` names: Ray Tune (one experiment for all folds) or in-process Optuna."""
    from ser.tuning import optuna_engine

    if tune.engine == "ray":
        from jobs.tune import ray_engine

        return partial(ray_engine, experiment_dir=str(experiment_dir) if experiment_dir else None, resume=resume)
    return optuna_engine


def run_inference(manifest: pd.DataFrame, infer: "InferConfig", labels: "LabelSet", out: Path
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a manifest with the Ray Data pipeline into ``out`` (scores.parquet, errors.parquet)."""
    from jobs.infer import run_infer

    return run_infer(manifest, infer, labels, out)
