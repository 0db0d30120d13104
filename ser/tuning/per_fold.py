"""Leakage-free per-fold tuning (``ser tune``): one independent search per fold.

Each fold's parameters are searched on its tuning set only (ser.data.folds), with its own seeded
sampler, so nothing about fold k's test rows can steer which configurations fold k sees —
a shared sampler optimizing all folds at once would leak under ``oof``. The chosen
configuration is then applied once to fold k's test rows. Search engines are pluggable: in-process
Optuna here, Ray Tune in ``jobs.tune`` (a Tune trial per fold); both step the same :class:`FoldStudy`, so a seed
gives the same trials on either.

Which trial a fold keeps is decided by ``ser.tuning.choice`` from the trials' inner leave-one-group-out
estimates, not by the optimistic score on the rows they were fitted to; ``ser.tuning.baselines`` fits
simple leakage-free baselines on the same tuning rows, so results show whether the search earned
its keep. Finished fold searches are saved, signed, and reused by a resumed or repeated run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np
import pandas as pd

from ser.data.arrays import ScoreArrays, same_on_every_row
from ser.tuning.baselines import baseline_comparison, fit_baselines, hindsight_ceiling, per_fold_pick
from ser.tuning.choice import Choice, TrialRecord, choose, choose_trial, standard_error
from ser.config import EvaluateConfig, TuneConfig
from ser.data.folds import fold_splits, group_sizes, own_test_rows, tuning_group_sizes
from ser.fusion.rules import describe_config, free_parameters
from ser._util.io import file_component, read_json, signature, write_json
from ser.data.labels import LabelSet
from ser.measures.objective import Objective
from ser._util.progress import inside_progress, progress
from ser._util.provenance import code_version
from ser.evaluation.scoring import apply_per_fold, path_systems
from ser.evaluation.result_types import Baselines, KeptConfig, ScoredSystems, TunedSystems, TuningSummary
from ser.config.space import SearchSpace
from ser.tuning.search import TrialResult, anchor_trials, run_trial, space_for, suggest

log = logging.getLogger(__name__)

Advance = Callable[[int], None]
"""Progress callback: ``advance(n)`` after n more trials finished."""


def no_progress(n: int) -> None:
    """The default progress callback: nothing shown."""


FoldDone = Callable[[str, list[TrialRecord]], None]
"""Called with a fold's trials as soon as its search has finished, so they can be saved before the next fold."""


def nothing_kept(fold: str, records: list[TrialRecord]) -> None:
    """The default fold callback: a finished fold is only returned."""


class SearchEngine(Protocol):
    """Searches every fold's tuning arrays independently, each with its own seeded sampler."""

    def __call__(self, tuning: dict[str, ScoreArrays], seeds: dict[str, int], space: SearchSpace, objective: Objective,
                 trials: int, concurrency: int, advance: Advance = no_progress, *, finished: FoldDone = nothing_kept
                 ) -> dict[str, list[TrialRecord]]: ...


@dataclass
class FoldStudy:
    """One fold's search in progress: its Optuna study (TPE, sampler state included), the trials run so far, and
    each sampled structure's result (a structure sampled again gives the same result, so it is reused). Both
    engines step it; it pickles, so the Ray engine's checkpoints continue a killed search exactly."""

    study: Any
    records: list[TrialRecord] = field(default_factory=list)
    results: dict[str, TrialResult] = field(default_factory=dict)

    @classmethod
    def start(cls, seed: int, space: SearchSpace) -> "FoldStudy":
        """A new study seeded ``seed``, the anchor structures queued first."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        for anchor in anchor_trials(space):
            study.enqueue_trial(anchor)
        return cls(study)

    def step(self, a: ScoreArrays, space: SearchSpace, objective: Objective) -> TrialRecord:
        """Sample the next structure, fit it on the tuning arrays ``a`` (or reuse its result), tell the study."""
        trial = self.study.ask()
        params = suggest(trial, space)
        key = json.dumps(params, sort_keys=True)
        if key not in self.results:
            self.results[key] = run_trial(params, a, space, objective)
        record = TrialRecord.from_result(trial.number, params, self.results[key])
        self.records.append(record)
        self.study.tell(trial, record.selection_score)
        return record


def optuna_engine(tuning: dict[str, ScoreArrays], seeds: dict[str, int], space: SearchSpace, objective: Objective,
                  trials: int, concurrency: int, advance: Advance = no_progress, *,
                  finished: FoldDone = nothing_kept) -> dict[str, list[TrialRecord]]:
    """In-process Optuna TPE (ask/tell), one :class:`FoldStudy` per fold, folds and trials one after another;
    ``finished`` is called after each fold, so an interrupted run keeps the folds it completed.

    ``concurrency`` only matters to the Ray engine, whose parallelism is across folds.
    """
    out = {}
    for fold, a in tuning.items():
        out[fold] = search_fold(seeds[fold], a, space, objective, trials, advance)
        finished(fold, out[fold])
    return out


def search_fold(seed: int, a: ScoreArrays, space: SearchSpace, objective: Objective, trials: int,
                advance: Advance = no_progress) -> list[TrialRecord]:
    """One fold's whole search: ``trials`` steps of a :class:`FoldStudy` seeded ``seed`` on its tuning arrays."""
    search = FoldStudy.start(seed, space)
    for _ in range(trials):
        search.step(a, space, objective)
        advance(1)
    return search.records


def _signature(tune: TuneConfig, seed: int, labels: LabelSet, table_key: str) -> str:
    """What a saved search must match to be reused: config, seed, labels, table, and the code that ran it
    (a search saved by other code is redone, like the stages that read it)."""
    return signature(replace(tune, storage=None), seed, labels, table_key, code_version())


def table_fingerprint(df: pd.DataFrame) -> str:
    """A content hash of a score table, so resumed fold results are never mixed across tables."""
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()[:16]


FoldSearch = Callable[[dict[str, ScoreArrays], dict[str, int], Advance, FoldDone], dict[str, list[TrialRecord]]]


def make_fold_search(tune: TuneConfig, engine: SearchEngine = optuna_engine) -> FoldSearch:
    """The per-fold search for a ``tune`` config: the published procedure, or a search by ``engine`` (in-process
    Optuna unless given; ``ser.engine.search_engine`` gives the engine ``tune.engine`` names)."""
    if tune.method == "published":
        def run_published(tuning: dict[str, ScoreArrays], seeds: dict[str, int], advance: Advance = no_progress,
                          finished: FoldDone = nothing_kept) -> dict[str, list[TrialRecord]]:
            params, out = {"variant": "published"}, {}
            for fold, a in tuning.items():
                out[fold] = [TrialRecord.from_result(0, params, run_trial(params, a, tune.space, tune.target))]
                advance(1)
                finished(fold, out[fold])
            return out
        return run_published
    run = engine

    def run_search(tuning: dict[str, ScoreArrays], seeds: dict[str, int], advance: Advance = no_progress,
                   finished: FoldDone = nothing_kept) -> dict[str, list[TrialRecord]]:
        blank = [fold for fold, a in tuning.items() if not carries_text(a)]
        if blank:
            log.debug(f"the text is the same on every tuning row of {len(blank)}/{len(tuning)} fold(s) {blank}: "
                      f"speech alone kept there, no fusion searched")
        out = {fold: speech_only(tuning[fold], tune, finished, fold) for fold in blank}
        advance(tune.trials * len(out))
        searched = {fold: a for fold, a in tuning.items() if fold not in out}
        if searched:
            out |= run(searched, seeds, space_for(tune.space, searched), tune.target, tune.trials,
                       tune.max_concurrent_trials, advance, finished=finished)
        return {fold: out[fold] for fold in tuning}
    return run_search


def carries_text(a: ScoreArrays) -> bool:
    """Does any text path say something that differs between these rows? Text that is the same on every row (every
    transcript blank, a sentiment model that never changes its answer) can only shift speech's class priors."""
    return len(a) > 0 and not all(same_on_every_row(q) for q in (a.q, *a.texts.values()))


def speech_only(a: ScoreArrays, tune: TuneConfig, finished: FoldDone, fold: str) -> list[TrialRecord]:
    """A fold whose text is the same on every tuning row: speech alone is its one trial, and nothing is searched."""
    records = [TrialRecord.from_result(0, {"variant": "speech"},
                                       run_trial({"variant": "speech"}, a, tune.space, tune.target))]
    finished(fold, records)
    return records


@dataclass(frozen=True)
class PlannedSearch:
    """One search to run or reuse: its tuning arrays and sampler seed, the name its saved file records, and where
    that file is kept (with ``signature``, what it must match to be reused)."""

    name: str
    arrays: ScoreArrays
    seed: int
    path: Path | None
    signature: str


def fold_searches(df: pd.DataFrame, labels: LabelSet, tune: TuneConfig, seed: int,
                  state_dir: Path | None = None) -> dict[str, PlannedSearch]:
    """Each fold's search on its own tuning set, fold i's sampler seeded ``seed + i`` (i = position in sorted fold
    order), so a resumed run gives the same trials as an uninterrupted one; saved in ``state_dir`` if given."""
    fold_signature = _signature(tune, seed, labels, table_fingerprint(df))
    arrays = ScoreArrays.from_table(df, labels)
    return {s.fold: PlannedSearch(s.fold, arrays.take(s.tuning), seed + i,
                                  _fold_state(state_dir, s.fold) if state_dir else None, fold_signature)
            for i, s in enumerate(fold_splits(df, tune.protocol))}


def pooled(df: pd.DataFrame, labels: LabelSet, tune: TuneConfig, seed: int,
           state_dir: Path | None = None) -> PlannedSearch:
    """One search on all of ``df``'s own test rows (each scored out-of-sample: the source side of a transfer),
    seeded ``seed``, saved as ``state_dir/pooled.json`` if given."""
    return PlannedSearch("pooled", ScoreArrays.from_table(df.loc[own_test_rows(df)], labels), seed,
                         state_dir / "pooled.json" if state_dir else None,
                         _signature(tune, seed, labels, table_fingerprint(df)))


def run_searches(planned: Mapping[str, PlannedSearch], tune: TuneConfig, fold_search: FoldSearch, *,
                 reuse: bool = True) -> dict[str, list[TrialRecord]]:
    """Every planned search, those saved with a matching signature taken from their files when ``reuse``, the
    rest in one ``fold_search`` call (so an engine runs them side by side), each saved as soon as the engine
    reports it finished, its file replaced atomically: a failed rerun never removes what an earlier run saved."""
    done: dict[str, list[TrialRecord]] = {}
    for key, plan in planned.items():
        saved = _saved_search(plan.path, plan.signature) if plan.path and reuse else None
        if saved is not None:
            done[key] = saved
    if done:
        log.log(logging.DEBUG if inside_progress() else logging.INFO, "resumed %d finished search(es): %s", len(done),
                sorted(done))
    todo = [key for key in planned if key not in done]

    def keep(key: str, records: list[TrialRecord]) -> None:
        plan = planned[key]
        if plan.path:
            _save_search(plan.path, plan.name, records, plan.signature)

    if todo:
        t0 = time.perf_counter()
        per_search = 1 if tune.method == "published" else tune.trials
        with progress(per_search * len(todo), "tuning", "trials") as advance:
            done.update(fold_search({key: planned[key].arrays for key in todo},
                                    {key: planned[key].seed for key in todo}, advance, keep))
        elapsed = time.perf_counter() - t0
        n = sum(r.n_configs for key in todo for r in done[key])
        log.debug(f"{len(todo)} search(es) in {elapsed:.1f} s: {n:,} configurations, {n / elapsed:,.0f}/s")
    return {key: done[key] for key in planned}


def tune_folds(df: pd.DataFrame, labels: LabelSet, tune: TuneConfig, fold_search: FoldSearch, seed: int, *,
               state_dir: Path | None = None, reuse: bool = True) -> dict[str, list[TrialRecord]]:
    """Search every fold on its own tuning set (:func:`fold_searches`); with ``state_dir``, finished folds are saved
    (and with ``reuse``, reused when their config, seed, table and code are unchanged)."""
    searches = run_searches(fold_searches(df, labels, tune, seed, state_dir), tune, fold_search, reuse=reuse)
    log_choices(df, tune, searches)
    return searches


def log_choices(df: pd.DataFrame, tune: TuneConfig, searches: Mapping[str, list[TrialRecord]]) -> None:
    """Each fold's kept trial, for the debug log."""
    fold = df["fold"].to_numpy()
    for split in fold_splits(df, tune.protocol):
        records = searches[split.fold]
        kept = choose_trial(records, tune.choice, group_sizes(fold[split.tuning]))
        inner = "" if kept.inner is None else f", inner {kept.inner_mean:.4f}"
        log.debug(f"fold {split.fold}: {len(records)} trials, {sum(r.n_configs for r in records):,} configurations; "
            f"kept {describe_config(kept.config)} (tuning {tune.objective} {kept.score:.4f}{inner})")


def _fold_state(state_dir: Path, fold: str) -> Path:
    """Where one fold's finished search is kept."""
    return state_dir / f"fold-{file_component(fold)}.json"


def path_state_dir(state_dir: Path, path: str) -> Path:
    """Where a further text path's fold searches are kept: beside the primary path's, in ``text-NAME``."""
    return state_dir / f"text-{file_component(path)}"


def _saved_search(path: Path, search_signature: str) -> list[TrialRecord] | None:
    """The trials saved at ``path`` if they were searched with this signature (:func:`_signature`)."""
    try:
        saved = read_json(path)
        if saved is None or saved.get("signature") != search_signature:
            return None
        return [TrialRecord(**r) for r in saved["trials"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning(f"{path} is damaged ({' '.join(str(exc).split())}); searching that fold again")
        return None


def _save_search(path: Path, name: str, records: list[TrialRecord], search_signature: str) -> None:
    """Persist one finished search atomically, so an interrupted run loses nothing already searched."""
    write_json({"signature": search_signature, "fold": name, "trials": [asdict(r) for r in records]}, path)


def with_choices(result: ScoredSystems, choices: dict[str, Choice], objective: str) -> ScoredSystems:
    """The result with each fold's ``best``: the kept configuration, why it was kept, its tuning score, inner
    estimate, test score and optimism."""
    folds = []
    for entry in result.folds:
        kept, why = choices[entry.fold].kept, choices[entry.fold].why
        test = entry.systems["tuned"][objective]
        folds.append(replace(entry, best=KeptConfig(
            kept.config, describe_config(kept.config), free_parameters(kept.config), kept.number, kept.score,
            kept.inner_mean, standard_error(kept.inner) if kept.inner else None, test, kept.score - test, why)))
    return replace(result, folds=tuple(folds))


def tuned_results(df: pd.DataFrame, labels: LabelSet, searches: dict[str, list[TrialRecord]], tune: TuneConfig,
                  ev: EvaluateConfig, seed: int,
                  path_searches: Mapping[str, dict[str, list[TrialRecord]]] | None = None) -> TunedSystems:
    """Each fold's kept trial and each simple baseline applied to its test rows, plus what the search did (no
    baselines where the text is the same on every row: :func:`carries_text`); with
    ``path_searches`` ({text path: per-fold searches}), each path's own tuned system as ``tuned:NAME`` beside
    that path's text and oracle, and the kept configurations in ``path_configs``. Scored against speech on the
    objective, with ``ev``'s resamples and small-fold warning."""
    objective = tune.objective
    sizes = tuning_group_sizes(df, tune.protocol)
    choices = {f: choose(records, tune.choice, sizes[f]) for f, records in searches.items()}
    chosen = {f: c.kept for f, c in choices.items()}
    arrays = ScoreArrays.from_table(df, labels)
    informative = carries_text(arrays)                        # else every fusion is speech, shifted
    fits = fit_baselines(df, arrays, tune, searches) if informative else {}
    baselines = {name: {f: fit.config for f, fit in per_fold.items()} for name, per_fold in fits.items()}
    path_configs = {path: {f: choose_trial(records, tune.choice, sizes[f]).config for f, records in found.items()}
                    for path, found in (path_searches or {}).items()}
    per_path, paths = path_systems(path_configs, sorted(chosen), path_configs)
    scored, test, predictions = apply_per_fold(
        df, labels, {"tuned": {f: r.config for f, r in chosen.items()}, **baselines, **per_path},
        ev.for_tuning(objective), seed, paths=paths)
    scored = with_choices(scored, choices, objective)
    bests = [f.best for f in scored.folds]
    inner = [b.inner_score for b in bests if b.inner_score is not None]
    summary = TuningSummary(
        protocol=tune.protocol, objective=objective, method=tune.method, choice=tune.choice,
        configurations_evaluated=int(sum(r.n_configs for rs in searches.values() for r in rs)),
        mean_tuning_score=float(np.mean([b.tuning_score for b in bests])),
        mean_inner_score=float(np.mean(inner)) if len(inner) == len(bests) else None,
        mean_test_score=float(np.mean([b.test_score for b in bests])),
        mean_optimism=float(np.mean([b.optimism for b in bests])))
    compared = None
    if informative:
        verdict, one_path = baseline_comparison(test, predictions, objective, n_boot=ev.bootstrap, seed=seed)
        compared = Baselines(verdict, one_path, per_fold_pick(fits, scored, objective),
                             hindsight_ceiling(test, scored, tune))
    return TunedSystems.of(scored, tuning=summary, baselines=compared, path_configs=path_configs or None)


def trials_table(searches: dict[str, list[TrialRecord]],
                 path_searches: Mapping[str, dict[str, list[TrialRecord]]] | None = None) -> pd.DataFrame:
    """Every trial of every fold: structure, chosen configuration (JSON), tuning score, inner estimate, work done;
    ``text_path`` is empty for the primary text path's searches and names the path of each further one."""
    by_path = {None: searches, **(path_searches or {})}
    rows = [{"text_path": path, "fold": fold, "trial": r.number, "variant": r.config["kind"],
             "params": json.dumps(r.params), "config": json.dumps(r.config), "tuning_score": r.score,
             "inner_score": r.inner_mean, "n_configs": r.n_configs}
            for path, found in by_path.items() for fold, records in found.items() for r in records]
    return pd.DataFrame(rows).astype({"text_path": "string"})
