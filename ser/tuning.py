"""Leakage-free per-fold tuning (``ser tune``): one independent search per fold.

Each fold's parameters are searched on its tuning set only (ser.folds), with its own seeded
sampler, so nothing about fold k's test rows can steer which configurations fold k sees —
a shared sampler optimizing all folds at once would leak under ``oof``. The chosen
configuration is then applied once to fold k's test rows. Search engines are pluggable:
in-process Optuna here, Ray Tune + OptunaSearch in ``jobs.tune``; both run the same trial work
(``ser.search.run_trial``) and are deterministic by seed, though their samplers draw differently.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import pandas as pd

from ser.arrays import ScoreArrays
from ser.evaluate import score_predictions
from ser.folds import fold_splits, test_masks
from ser.fusion import BUILTIN_SYSTEMS, rule_from_config
from ser.io import write_json, write_parquet
from ser.labels import LabelSet
from ser.search import resolve_space, run_trial, suggest

TUNE_DEFAULTS: dict[str, Any] = {
    "method": "search",          # search | published
    "engine": "ray",             # ray | optuna
    "protocol": "oof",
    "objective": "macro_f1",
    "trials": 48,                # per fold
    "max_concurrent_trials": 2,
    "space": None,
}
METHODS = ("search", "published")
ENGINES = ("ray", "optuna")


@dataclass(frozen=True)
class TrialRecord:
    """One search trial: the sampled structure, the configuration it settled on, its tuning score."""

    number: int
    params: dict
    config: dict
    score: float
    n_configs: int


class SearchEngine(Protocol):
    """Searches every fold's tuning arrays independently, each with its own seeded sampler."""

    def __call__(self, tuning: dict[str, ScoreArrays], seeds: dict[str, int], space: dict, objective: str,
                 trials: int, concurrency: int) -> dict[str, list[TrialRecord]]: ...


def optuna_engine(tuning: dict[str, ScoreArrays], seeds: dict[str, int], space: dict, objective: str,
                  trials: int, concurrency: int) -> dict[str, list[TrialRecord]]:
    """In-process Optuna TPE (ask/tell), one study per fold, trials one after another.

    ``concurrency`` only matters to the Ray engine, whose parallelism is across folds.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = {}
    for fold, a in tuning.items():
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seeds[fold]))
        records = []
        for _ in range(trials):
            trial = study.ask()
            params = suggest(trial, space)
            result = run_trial(params, a, space, objective)
            records.append(TrialRecord(trial.number, params, result.config, result.score, result.n_configs))
            study.tell(trial, result.score)
        out[fold] = records
    return out


def best_trial(records: list[TrialRecord]) -> TrialRecord:
    """Highest tuning score; ties go to the earliest trial (deterministic)."""
    return max(records, key=lambda r: (r.score, -r.number))


def validate_tune(cfg: dict) -> dict:
    """Check the ``tune`` section's values; errors name the key."""
    from ser.folds import TUNING_PROTOCOLS
    from ser.metrics import METRICS

    for key, allowed in (("method", METHODS), ("engine", ENGINES), ("protocol", TUNING_PROTOCOLS),
                         ("objective", METRICS)):
        if cfg[key] not in allowed:
            raise ValueError(f"tune.{key}: '{cfg[key]}' is not one of {list(allowed)}")
    for key in ("trials", "max_concurrent_trials"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"tune.{key} must be a positive integer, got {cfg[key]!r}")
    out = dict(cfg)
    out["space"] = resolve_space(cfg["space"])
    return out


def _signature(tune_cfg: dict, seed: int, labels: LabelSet, table_key: str) -> str:
    blob = json.dumps({"tune": tune_cfg, "seed": seed, "labels": asdict(labels), "table": table_key},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def table_fingerprint(df: pd.DataFrame) -> str:
    """A content hash of a score table, so resumed fold results are never mixed across tables."""
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()[:16]


FoldSearch = Callable[[dict[str, ScoreArrays], dict[str, int]], dict[str, list[TrialRecord]]]


def make_fold_search(tune_cfg: dict, engine: SearchEngine | None = None) -> FoldSearch:
    """The per-fold search for a validated ``tune`` config: the published procedure or an engine's search."""
    if tune_cfg["method"] == "published":
        from ser.published import published_procedure

        def run_published(tuning: dict[str, ScoreArrays], seeds: dict[str, int]) -> dict[str, list[TrialRecord]]:
            out = {}
            for fold, a in tuning.items():
                config, score, n = published_procedure(a, tune_cfg["objective"])
                out[fold] = [TrialRecord(0, {"variant": "published"}, config, score, n)]
            return out
        return run_published
    run = engine or optuna_engine

    def run_search(tuning: dict[str, ScoreArrays], seeds: dict[str, int]) -> dict[str, list[TrialRecord]]:
        return run(tuning, seeds, tune_cfg["space"], tune_cfg["objective"], tune_cfg["trials"],
                   tune_cfg["max_concurrent_trials"])
    return run_search


def tune_folds(df: pd.DataFrame, labels: LabelSet, tune_cfg: dict, fold_search: FoldSearch, seed: int,
               state_dir: Path | None = None, log: Callable[[str], None] = print) -> dict[str, list[TrialRecord]]:
    """Search every fold on its own tuning set; with ``state_dir``, finished folds are saved and reused.

    Fold i's sampler is seeded ``seed + i`` (i = position in sorted fold order), so a resumed run
    gives the same trials as an uninterrupted one. Folds are saved when the search returns.
    """
    signature = _signature(tune_cfg, seed, labels, table_fingerprint(df))
    arrays = ScoreArrays.from_table(df, labels)
    splits = fold_splits(df, tune_cfg["protocol"])
    done: dict[str, list[TrialRecord]] = {}
    for split in splits:
        path = state_dir / f"fold-{split.fold}.json" if state_dir else None
        if path and path.exists():
            saved = json.loads(path.read_text())
            if saved.get("signature") == signature:
                done[split.fold] = [TrialRecord(**r) for r in saved["trials"]]
    if done:
        log(f"resumed {len(done)} finished fold(s): {sorted(done)}")
    todo = [s for s in splits if s.fold not in done]
    seeds = {s.fold: seed + i for i, s in enumerate(splits)}
    t0 = time.perf_counter()
    if todo:
        found = fold_search({s.fold: arrays.take(s.tuning) for s in todo}, {s.fold: seeds[s.fold] for s in todo})
        for fold, records in found.items():
            _save_fold(state_dir, fold, records, signature)
        done.update(found)
    elapsed = time.perf_counter() - t0
    for split in splits:
        records = done[split.fold]
        best = best_trial(records)
        log(f"fold {split.fold}: {len(records)} trials, {sum(r.n_configs for r in records):,} configurations, "
            f"best tuning {tune_cfg['objective']} {best.score:.4f} ({describe_config(best.config)})")
    if todo:
        n = sum(r.n_configs for s in todo for r in done[s.fold])
        log(f"searched {len(todo)} fold(s) in {elapsed:.1f} s: {n:,} configurations, {n / elapsed:,.0f}/s")
    return {s.fold: done[s.fold] for s in splits}


def _save_fold(state_dir: Path | None, fold: str, records: list[TrialRecord], signature: str) -> None:
    """Persist one finished fold atomically, so an interrupted run loses nothing already searched."""
    if state_dir:
        write_json({"signature": signature, "fold": fold, "trials": [asdict(r) for r in records]},
                   state_dir / f"fold-{fold}.json")


def describe_config(config: dict) -> str:
    """A short human description of a fusion configuration (logs, report tables)."""
    if config["kind"] == "select":
        per_class = isinstance(config.get("tau_h", config.get("tau_v")), dict)
        taus = ", ".join(f"{k} {config[k]:.3f}" for k in ("tau_h", "tau_v") if isinstance(config.get(k), float))
        return (f"select/{config['gate']} {'per-class' if per_class else 'global'}{' ' + taus if taus else ''}"
                f"{' excl. ' + str(len(config.get('exclude', []))) if config.get('merge') == 'exclude' else ''}")
    gate = config.get("weight_gate", "none")
    return f"{config['kind']} w={config['w']:.2f}{'' if gate == 'none' else ' ' + gate}"


def apply_per_fold(df: pd.DataFrame, labels: LabelSet, chosen: dict[str, TrialRecord], objective: str,
                   n_boot: int = 1000, seed: int = 0) -> dict:
    """Apply each fold's chosen configuration once to its test rows; evaluation.json layout plus ``best``."""
    masks = test_masks(df)
    folds = sorted(chosen)
    missing = sorted(set(folds) - set(masks))
    if missing:
        raise ValueError(f"fold(s) {missing} have no test rows")
    test_index = np.concatenate([np.flatnonzero(masks[f]) for f in folds])
    fold_index = np.concatenate([np.full(masks[f].sum(), i) for i, f in enumerate(folds)])
    a = ScoreArrays.from_table(df.iloc[test_index], labels)
    tuned = np.empty(len(a), dtype=np.int64)
    for i, f in enumerate(folds):
        rows = fold_index == i
        tuned[rows] = rule_from_config(chosen[f].config, labels).decide(a.take(rows)).pred
    predictions = {name: rule_from_config(spec, labels).decide(a).pred for name, spec in BUILTIN_SYSTEMS.items()}
    predictions["tuned"] = tuned
    result = score_predictions(folds, fold_index, a, predictions, baseline="speech", n_boot=n_boot, seed=seed,
                               metric=objective)
    for entry in result["folds"]:
        best = chosen[entry["fold"]]
        entry["best"] = {"config": best.config, "tuning_score": best.score, "trial": best.number}
    return result


def tuned_results(df: pd.DataFrame, labels: LabelSet, searches: dict[str, list[TrialRecord]], tune_cfg: dict,
                  n_boot: int = 1000, seed: int = 0) -> dict:
    """Each fold's best trial applied to its test rows, plus what the search did."""
    chosen = {f: best_trial(records) for f, records in searches.items()}
    result = apply_per_fold(df, labels, chosen, tune_cfg["objective"], n_boot, seed)
    result["tuning"] = {"protocol": tune_cfg["protocol"], "objective": tune_cfg["objective"],
                        "method": tune_cfg["method"],
                        "configurations_evaluated": int(sum(r.n_configs for rs in searches.values() for r in rs))}
    return result


def trials_table(searches: dict[str, list[TrialRecord]]) -> pd.DataFrame:
    """Every trial of every fold: structure, chosen configuration (JSON), tuning score, work done."""
    rows = [{"fold": fold, "trial": r.number, "variant": r.config["kind"], "params": json.dumps(r.params),
             "config": json.dumps(r.config), "tuning_score": r.score, "n_configs": r.n_configs}
            for fold, records in searches.items() for r in records]
    return pd.DataFrame(rows)


def write_tuning(out: Path, result: dict, searches: dict[str, list[TrialRecord]]) -> None:
    """``results.json`` and ``trials.parquet`` under ``out`` (atomically)."""
    write_json(result, out / "results.json")
    write_parquet(trials_table(searches), out / "trials.parquet")
