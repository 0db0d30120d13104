"""Ray engines for ``ser tune``: one Tune experiment with a Tune trial per fold, or (``task_engine``) a plain Ray task
per fold, on the Ray the process runs or one started for it.

Each fold's trial runs that fold's whole seeded TPE search (:class:`ser.tuning.per_fold.FoldStudy`, the code the
in-process engine runs), so folds stay independent (no fold's test labels can steer another search that chooses for
it), a seed gives the same trials as the in-process engine, and Tune's per-trial overhead is paid once per fold
instead of once per sampled structure; a finished fold's actor takes the next fold. Folds run side by side, one per
CPU Tune grants (``tune.max_concurrent_trials``), on a laptop or across a cluster. A fold's trial reports its
progress every ``REPORT_S`` seconds with a checkpoint of its search (the Optuna study, sampler state included), so a
killed experiment restored with ``--resume`` continues each fold exactly where its last checkpoint left it.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator

from ser.data.arrays import ScoreArrays
from ser.tuning.choice import TrialRecord
from ser.measures.objective import Objective
from ser.config.space import SearchSpace
from ser.tuning.per_fold import Advance, FoldDone, FoldStudy, no_progress, nothing_kept, search_fold

from .ray_env import ensure_ray

log = logging.getLogger(__name__)

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")   # experiment state every 2 s: a kill loses little
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")   # no per-trial event files nobody reads

REPORT_S = 2.0
"""How often (seconds) a fold's trial reports its progress and checkpoints its search (and when it finishes). Every
checkpoint is kept until the experiment ends (a bounded number keeps Tune snapshotting its state at each one)."""
STATE_FILE = "fold_search.pkl"

_PROGRESS: list[Advance] = [no_progress]
"""The running experiment's progress callback. Tune pickles its callbacks into the experiment state and a restored
experiment runs that copy, so the callback looks this up when it runs: a resumed search reports to this process
(it reported to a stale copy of the killed run's progress: "tuning: 0/120 trials" after finishing all 120)."""


def _progress_callback():
    """A Tune callback counting the search trials every fold has reported, those a restored experiment had
    checkpointed included (runs in the driver)."""
    from ray.tune import Callback

    class TrialsDone(Callback):
        def setup(self, **info: Any) -> None:
            self.reported = 0

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            import sys                 # this process's module, also in a callback unpickled from a restored state

            done = sum(int((t.last_result or {}).get("trials_done", 0)) for t in trials)
            if done > self.reported:
                sys.modules[__name__]._PROGRESS[0](done - self.reported)
                self.reported = done

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            self.on_step_end(0, trials)

    return TrialsDone()


def _fold_trainable(config: dict, tuning: dict[str, ScoreArrays], seeds: dict[str, int], space: SearchSpace,
                    objective: Objective, trials: int) -> None:
    """One fold's whole search as a Tune trial, continued from its last checkpoint when Tune restores one."""
    from ray import tune

    fold = config["fold"]
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            search: FoldStudy = pickle.loads((Path(folder) / STATE_FILE).read_bytes())
    else:
        search = FoldStudy.start(seeds[fold], space)
    last = time.monotonic()
    while len(search.records) < trials:
        search.step(tuning[fold], space, objective)
        finished = len(search.records) == trials
        if finished or time.monotonic() - last >= REPORT_S:
            _report(search, finished)
            last = time.monotonic()


def _report(search: FoldStudy, finished: bool) -> None:
    """Progress and a checkpoint of the search; the trials themselves (as JSON) once the fold is finished."""
    from ray import tune

    with tempfile.TemporaryDirectory(prefix="ser-fold-") as folder:
        (Path(folder) / STATE_FILE).write_bytes(pickle.dumps(search))
        metrics = {"trials_done": len(search.records),
                   "records": json.dumps([asdict(r) for r in search.records]) if finished else ""}
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def ray_engine(tuning: dict[str, ScoreArrays], seeds: dict[str, int], space: SearchSpace, objective: Objective,
               trials: int, concurrency: int, advance: Advance = no_progress, *, finished: FoldDone = nothing_kept,
               experiment_dir: str | None = None, resume: bool = False) -> dict[str, list[TrialRecord]]:
    """Search every fold's tuning arrays in one Tune experiment, a Tune trial per fold, each with its own seeded TPE.

    With ``experiment_dir`` Tune checkpoints the experiment there; ``resume`` restores an interrupted one
    (finished folds kept, unfinished ones continued from their last checkpoint) instead of starting afresh.
    ``finished`` is called for each fold when the experiment ends.
    """
    from ray import tune

    ensure_ray()
    # without per-trial logger files (TUNE_DISABLE_AUTO_CALLBACK_LOGGERS) Tune warns that it cannot read each
    # trial's progress file; the metrics themselves come from memory, so the warning is noise
    for name in ("ray.tune.result_grid", "ray.tune.analysis.experiment_analysis"):
        logging.getLogger(name).setLevel(logging.ERROR)
    folds = list(tuning)
    trainable = tune.with_parameters(_fold_trainable, tuning=tuning, seeds=seeds, space=space, objective=objective,
                                     trials=trials)
    with _storage(experiment_dir) as storage:
        path = str(Path(storage) / "ser-tune")
        if resume and tune.Tuner.can_restore(path):
            log.info(f"restoring the interrupted Tune experiment in {path}")
            tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
            tuner = tune.Tuner(
                trainable,
                param_space={"fold": tune.grid_search(folds)},
                # a fold's trial reuses the finished one's actor: a new worker process per fold (imports, the
                # tuning arrays fetched again) cost more than the search itself at 5.5k rows (0.63x in-process)
                tune_config=tune.TuneConfig(max_concurrent_trials=max(1, min(concurrency, len(folds))),
                                            reuse_actors=True),
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
        results = {(r.config or {}).get("fold"): (r.metrics or {}).get("records") for r in grid}
        if not all(results.get(f) for f in folds):
            # Tune stops early on SIGINT after saving its state: nothing to report, `--resume` continues
            raise KeyboardInterrupt
        shutil.rmtree(path, ignore_errors=True)      # finished: the fold states hold what --resume would need
    out = {f: [TrialRecord(**r) for r in json.loads(results[f])] for f in folds}
    for fold, records in out.items():
        finished(fold, records)
    return out


def task_engine(tuning: dict[str, ScoreArrays], seeds: dict[str, int], space: SearchSpace, objective: Objective,
                trials: int, concurrency: int, advance: Advance = no_progress, *, finished: FoldDone = nothing_kept
                ) -> dict[str, list[TrialRecord]]:
    """Every fold's whole search (:func:`ser.tuning.per_fold.search_fold`) as a plain Ray task, on the Ray this process
    runs (``ser run`` after inference) or one started for it: folds side by side on its CPUs without a Tune
    experiment's set-up, each fold reported (``finished``, so it is saved) as it ends, the same trials as the other
    engines. Resumable by finished fold, like the in-process engine; ``concurrency`` is Ray's to decide (one task per
    CPU)."""
    import ray

    ensure_ray()
    search = ray.remote(num_cpus=1)(search_fold)
    pending = {search.remote(seeds[fold], a, space, objective, trials): fold for fold, a in tuning.items()}
    out = {}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            fold = pending.pop(ready[0])
            out[fold] = ray.get(ready[0])
            advance(trials)
            finished(fold, out[fold])
    except BaseException:
        for ref in pending:              # an interrupt or a failed fold: the other searches stop too
            ray.cancel(ref, force=True)
        raise
    return {fold: out[fold] for fold in tuning}


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
