"""Finished fold searches as Optuna studies (``tune.storage``), so ``optuna-dashboard`` and
``optuna.visualization`` open a ser run.

The search itself runs on an in-memory study (fast, picklable, the same on both engines); once a stage's folds are
finished, each fold's trials are written to the storage as one study named after the fold (``FOLD``, or
``PATH/FOLD`` for a further text path's search), every trial with its sampled structure as Optuna parameters (the
search space's own distributions), the value the sampler maximized, and test-free attributes. A study of that name
from an earlier run is replaced, so a resumed or repeated run leaves exactly one complete study per fold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ser._util.io import InputError
from ser.tuning.search import suggest
from ser.config.space import SearchSpace

OUT_PLACEHOLDER = "{out}"
"""``tune.storage`` may name the run's output directory this way: ``sqlite:///{out}/optuna.db``."""


def storage_url(storage: str, out: Path) -> str:
    """``tune.storage`` with ``{out}`` replaced by the run directory's absolute path."""
    return storage.replace(OUT_PLACEHOLDER, str(Path(out).resolve()))


def study_name(fold: str, text_path: str | None) -> str:
    """The study of one fold's search: the fold, prefixed by the further text path it read."""
    return fold if not text_path else f"{text_path}/{fold}"


def save_studies(trials: pd.DataFrame, space: SearchSpace, storage: str, *, objective: str,
                 kept: dict[str, int] | None = None) -> list[str]:
    """Write every (text path, fold) search of ``trials`` (``trials.parquet``'s layout) to ``storage`` as one
    Optuna study each; ``kept`` ({fold: trial}) marks the primary search's kept trial. Returns the study names."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        store = optuna.storages.get_storage(storage)
    except Exception as exc:      # SQLAlchemy and Optuna raise many kinds for a bad URL; all mean the same here
        raise InputError(f"tune.storage: cannot open {storage!r} ({' '.join(str(exc).split())})") from None
    names, existing = [], set(optuna.get_all_study_names(store))
    for (path, fold), rows in trials.groupby([trials["text_path"].fillna(""), "fold"], sort=True):
        name = study_name(fold, path)
        if name in existing:
            optuna.delete_study(study_name=name, storage=store)
        study = optuna.create_study(study_name=name, storage=store, direction="maximize")
        study.set_user_attr("fold", fold)
        study.set_user_attr("text_path", path or None)
        study.set_user_attr("objective", objective)
        if not path and kept and fold in kept:
            study.set_user_attr("kept_trial", int(kept[fold]))
        study.add_trials([_frozen(row, space) for row in rows.sort_values("trial").itertuples()])
        names.append(name)
    return names


def _frozen(row, space: SearchSpace):
    """One trial of trials.parquet as a finished Optuna trial: the structure replayed through the space's own
    sampling (so each parameter carries its distribution), valued by what the sampler maximized."""
    import optuna

    fixed = optuna.trial.FixedTrial(json.loads(row.params))
    suggest(fixed, space)
    inner = None if pd.isna(row.inner_score) else float(row.inner_score)
    return optuna.trial.create_trial(
        params=fixed.params, distributions=fixed.distributions,
        value=float(row.tuning_score) if inner is None else inner,
        user_attrs={"tuning_score": float(row.tuning_score), "inner_score": inner, "n_configs": int(row.n_configs),
                    "variant": row.variant, "config": row.config})
