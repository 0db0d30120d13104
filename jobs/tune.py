"""Ray Tune engine for ``ser tune``: one Tune experiment, one seeded OptunaSearch (TPE) per fold.

:class:`PerFoldSearcher` routes trials round-robin to independent per-fold OptunaSearch
instances, so folds stay independent (no fold's test labels can steer another search that
chooses for it) while Tune pays its experiment set-up once and runs folds in parallel. Each
trial runs :func:`ser.search.run_trial` — a vectorized optimization evaluating hundreds to
thousands of configurations — so Tune's per-trial overhead (~40 ms here) is amortized.
``ConcurrencyLimiter(batch=True)`` plus round-robin routing means a fold's sampler always sees
its previous trial's result before suggesting again, so a seed gives the same trials whatever
order concurrent trials finish in. (OptunaSearch draws differently from plain ask/tell after the
first trial, so the Ray and in-process engines are each deterministic, not trial-for-trial equal.)
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from functools import partial
from typing import Any

from ser.arrays import ScoreArrays
from ser.search import run_trial, suggest
from ser.tuning import TrialRecord

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def _define_by_run(trial: Any, space: dict) -> None:
    """OptunaSearch's space: sample the structure; Tune passes the sampled values as the config."""
    suggest(trial, space)


def _trainable(config: dict, tuning: dict[str, ScoreArrays], space: dict, objective: str) -> dict[str, Any]:
    params = dict(config)
    fold, _ = params.pop("fold"), params.pop("number")
    result = run_trial(params, tuning[fold], space, objective)
    return {"score": result.score, "n_configs": result.n_configs, "chosen": json.dumps(result.config)}


def _per_fold_searcher_class():
    from ray.tune.search import Searcher

    class PerFoldSearcher(Searcher):
        """Round-robin over per-fold searchers; each sees only its own fold's trials."""

        def __init__(self, searchers: dict[str, Searcher]):
            super().__init__(metric="score", mode="max")
            self.searchers, self.folds, self.turn, self.owner = searchers, list(searchers), 0, {}
            self.numbers = dict.fromkeys(searchers, 0)

        def suggest(self, trial_id: str) -> dict | None:
            fold = self.folds[self.turn % len(self.folds)]
            config = self.searchers[fold].suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            self.turn += 1
            self.owner[trial_id] = fold
            self.numbers[fold] += 1
            return {**config, "fold": fold, "number": self.numbers[fold] - 1}

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            self.searchers[self.owner.pop(trial_id)].on_trial_complete(trial_id, result, error)

        def save(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "wb") as f:
                pickle.dump(self.__dict__, f)

        def restore(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "rb") as f:
                self.__dict__.update(pickle.load(f))

    return PerFoldSearcher


def ray_engine(tuning: dict[str, ScoreArrays], seeds: dict[str, int], space: dict, objective: str, trials: int,
               concurrency: int) -> dict[str, list[TrialRecord]]:
    """Search every fold's tuning arrays in one Tune experiment, each fold with its own seeded TPE."""
    import optuna
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from jobs.ray_env import ensure_ray

    ensure_ray()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = list(tuning)
    searchers = {f: OptunaSearch(space=partial(_define_by_run, space=space), metric="score", mode="max",
                                 sampler=optuna.samplers.TPESampler(seed=seeds[f])) for f in folds}
    concurrency = min(concurrency, len(folds))
    searcher = ConcurrencyLimiter(_per_fold_searcher_class()(searchers), max_concurrent=concurrency, batch=True)
    with tempfile.TemporaryDirectory(prefix="ser-tune-") as storage:
        tuner = tune.Tuner(
            tune.with_parameters(_trainable, tuning=tuning, space=space, objective=objective),
            tune_config=tune.TuneConfig(search_alg=searcher, metric="score", mode="max",
                                        num_samples=trials * len(folds), reuse_actors=True),
            run_config=tune.RunConfig(storage_path=storage, name="ser-tune", verbose=0),
        )
        grid = tuner.fit()
    if grid.errors:
        raise RuntimeError(f"{len(grid.errors)} Tune trial(s) failed; first: {grid.errors[0]}")
    out: dict[str, list[TrialRecord]] = {f: [] for f in folds}
    for r in sorted(grid, key=lambda r: (r.config["fold"], r.config["number"])):
        params = dict(r.config)
        fold, number = params.pop("fold"), params.pop("number")
        out[fold].append(TrialRecord(number, params, json.loads(r.metrics["chosen"]),
                                     float(r.metrics["score"]), int(r.metrics["n_configs"])))
    return out
