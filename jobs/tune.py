"""Ray Tune engine for ``ser tune``: one Tune experiment, one seeded OptunaSearch (TPE) per fold.

:class:`PerFoldSearcher` routes trials round-robin to independent per-fold OptunaSearch
instances, so folds stay independent (no fold's test labels can steer another search that
chooses for it) while Tune pays its experiment set-up once and runs folds in parallel. Each
trial runs :func:`ser.search.run_trial` — a vectorized optimization evaluating hundreds to
thousands of configurations — so Tune's per-trial overhead (~40 ms here) is amortized.
Round-robin routing with at most one live trial per fold means a fold's sampler always sees
its previous trial's result before suggesting again, so a seed gives the same trials whatever
order concurrent trials finish in; parallelism is across folds. (OptunaSearch draws differently from plain ask/tell after the
first trial, so the Ray and in-process engines are each deterministic, not trial-for-trial equal.)
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import tempfile
import uuid
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, Iterator

from ser.arrays import ScoreArrays
from ser.objective import Objective
from ser.space import SearchSpace
from ser.search import anchor_trials, run_trial, suggest
from ser.choice import TrialRecord
from ser.tuning import Advance, FoldDone, no_progress, nothing_kept

log = logging.getLogger(__name__)

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")   # experiment state every 2 s: a kill loses little
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")   # no per-trial event files nobody reads


_PROGRESS: list[Advance] = [no_progress]
"""The running experiment's progress callback. Tune pickles its callbacks into the experiment state and a restored
experiment runs that copy, so the callback looks this up when it runs: a resumed search reports to this process
(it reported to a stale copy of the killed run's progress: "tuning: 0/120 trials" after finishing all 120)."""


def _progress_callback():
    """A Tune callback counting finished trials, those a restored experiment had finished included (runs in the
    driver)."""
    from ray.tune import Callback

    class TrialsDone(Callback):
        def setup(self, **info: Any) -> None:
            self.reported = 0

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            import sys                 # this process's module, also in a callback unpickled from a restored state

            done = sum(t.status == "TERMINATED" for t in trials)
            if done > self.reported:
                sys.modules[__name__]._PROGRESS[0](done - self.reported)
                self.reported = done

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            self.on_step_end(0, trials)

    return TrialsDone()


def _define_by_run(trial: Any, space: SearchSpace) -> None:
    """OptunaSearch's space: sample the structure; Tune passes the sampled values as the config."""
    suggest(trial, space)


_RESULTS: dict[tuple[str, str, str], Any] = {}
"""Per worker process: trial results by (experiment, fold, structure). TPE samples the same discrete
structure many times and its result is deterministic, so a repeat costs a dictionary lookup."""


def _trainable(config: dict, tuning: dict[str, ScoreArrays], space: SearchSpace, objective: Objective,
               experiment: str) -> dict[str, Any]:
    params = dict(config)
    fold, _ = params.pop("fold"), params.pop("number")
    key = (experiment, fold, json.dumps(params, sort_keys=True))
    if key not in _RESULTS:
        _RESULTS[key] = run_trial(params, tuning[fold], space, objective)
    result = _RESULTS[key]
    return {"score": result.selection_score, "tuning_score": result.score, "n_configs": result.n_configs,
            "chosen": json.dumps(result.config), "inner": json.dumps(result.inner)}


def _per_fold_searcher_class():
    from ray.tune.search import Searcher

    class PerFoldSearcher(Searcher):
        """Round-robin over per-fold searchers; each sees only its own fold's trials.

        A fold never has two live trials: its sampler always sees its previous trial's result before
        suggesting again, so a seed gives the same trials whatever order concurrent trials finish in.
        """

        def __init__(self, searchers: dict[str, Searcher]):
            super().__init__(metric="score", mode="max")
            self.searchers, self.folds, self.turn = searchers, list(searchers), 0
            self.live: dict[str, str] = {}
            self.numbers = dict.fromkeys(searchers, 0)

        def suggest(self, trial_id: str) -> dict | None:
            fold = self.folds[self.turn % len(self.folds)]
            if fold in self.live.values():
                return None                         # Tune asks again once a trial finishes
            config = self.searchers[fold].suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            self.turn += 1
            self.live[trial_id] = fold
            self.numbers[fold] += 1
            return {**config, "fold": fold, "number": self.numbers[fold] - 1}

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            # trials rerun after a restore complete under ids this searcher may no longer hold as live
            fold = self.live.pop(trial_id, None) or ((result or {}).get("config") or {}).get("fold")
            if fold is not None:
                self.searchers[fold].on_trial_complete(trial_id, result, error)

        def save(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "wb") as f:
                pickle.dump(self.__dict__, f)

        def restore(self, checkpoint_path: str) -> None:
            with open(checkpoint_path, "rb") as f:
                self.__dict__.update(pickle.load(f))

    return PerFoldSearcher


def ray_engine(tuning: dict[str, ScoreArrays], seeds: dict[str, int], space: SearchSpace, objective: Objective,
               trials: int, concurrency: int, advance: Advance = no_progress, *, finished: FoldDone = nothing_kept,
               experiment_dir: str | None = None, resume: bool = False) -> dict[str, list[TrialRecord]]:
    """Search every fold's tuning arrays in one Tune experiment, each fold with its own seeded TPE.

    With ``experiment_dir`` Tune checkpoints the experiment there; ``resume`` restores an interrupted one
    (finished trials kept, unfinished ones rerun) instead of starting afresh. Folds run side by side, so
    ``finished`` is called for each when the experiment ends.
    """
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from .ray_env import ensure_ray

    ensure_ray()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # without per-trial logger files (TUNE_DISABLE_AUTO_CALLBACK_LOGGERS) Tune warns that it cannot read each
    # trial's progress file; the metrics themselves come from memory, so the warning is noise
    for name in ("ray.tune.result_grid", "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).setLevel(logging.ERROR)
    folds = list(tuning)
    searchers = {f: OptunaSearch(space=partial(_define_by_run, space=space), metric="score", mode="max",
                                 sampler=optuna.samplers.TPESampler(seed=seeds[f]),
                                 points_to_evaluate=anchor_trials(space) or None) for f in folds}
    searcher = _per_fold_searcher_class()(searchers)
    trainable = tune.with_parameters(_trainable, tuning=tuning, space=space, objective=objective,
                                     experiment=uuid.uuid4().hex)
    with _storage(experiment_dir) as storage:
        path = str(Path(storage) / "ser-tune")
        if resume and tune.Tuner.can_restore(path):
            log.info(f"restoring the interrupted Tune experiment in {path}")
            tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(search_alg=searcher, metric="score", mode="max",
                                            num_samples=trials * len(folds), reuse_actors=True,
                                            max_concurrent_trials=min(concurrency, len(folds))),
                run_config=tune.RunConfig(storage_path=storage, name="ser-tune", verbose=0,
                                          callbacks=[_progress_callback()]),
            )
        _PROGRESS[0] = advance
        try:
            grid = tuner.fit()
        finally:
            _PROGRESS[0] = no_progress
        if grid.errors:
            raise RuntimeError(f"{len(grid.errors)} Tune trial(s) failed; first: {grid.errors[0]}")
        if len(grid) < trials * len(folds) or any("chosen" not in (r.metrics or {}) for r in grid):
            # Tune stops early on SIGINT after saving its state: nothing to report, `--resume` continues
            raise KeyboardInterrupt
        shutil.rmtree(path, ignore_errors=True)      # finished: the fold states hold what --resume would need
    out: dict[str, list[TrialRecord]] = {f: [] for f in folds}
    for r in sorted(grid, key=lambda r: (r.config["fold"], r.config["number"])):
        params = dict(r.config)
        fold, number = params.pop("fold"), params.pop("number")
        out[fold].append(TrialRecord(number, params, json.loads(r.metrics["chosen"]),
                                     float(r.metrics["tuning_score"]), int(r.metrics["n_configs"]),
                                     json.loads(r.metrics["inner"])))
    for fold, records in out.items():
        finished(fold, records)
    return out


@contextmanager
def _storage(experiment_dir: str | None) -> Iterator[str]:
    """Where Tune keeps the experiment: ``experiment_dir``, or a temporary folder removed afterwards."""
    if experiment_dir:
        yield str(Path(experiment_dir).resolve())
        with suppress(OSError):              # finished: an emptied folder is not left behind (interrupted: kept)
            Path(experiment_dir).rmdir()
        return
    with tempfile.TemporaryDirectory(prefix="ser-tune-") as tmp:
        yield tmp
