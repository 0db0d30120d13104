"""Cross-dataset transfer (``ser cross``): choose fusion parameters on corpus A, apply them to B.

For A ≠ B the tuning set is every test row of A (all folds pooled: each scored out-of-sample)
and the chosen configuration is applied once to each of B's folds. The diagonal A → A is the
ordinary leakage-free per-fold tuning on A, so the matrix compares in-corpus with transfer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import pandas as pd

from ser.config import EvaluateConfig, TuneConfig
from ser.data.folds import fold_ids, group_sizes, own_test_rows
from ser.data.labels import LabelSet
from ser.measures.metrics import REPORTED_METRICS
from ser.tuning.choice import choose
from ser.evaluation.result_types import CrossTransfer, ScoredSystems, TransferCell
from ser.evaluation.scoring import apply_per_fold
from ser.tuning.per_fold import (Advance, FoldSearch, fold_searches, log_choices, no_progress, pooled, run_searches,
                                 tuned_results, with_choices)
from ser._util.io import InputError

log = logging.getLogger(__name__)


def split_corpora(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One validated table with a ``corpus`` column → {corpus: rows}."""
    names = sorted(df["corpus"].unique())
    if len(names) < 2:
        raise InputError(f"cross-dataset transfer needs at least two corpora; the table has {names}")
    return {n: df[df["corpus"] == n].reset_index(drop=True) for n in names}


def cross_dataset(tables: dict[str, pd.DataFrame], labels: LabelSet, tune: TuneConfig, fold_search: FoldSearch,
                  ev: EvaluateConfig, seed: int, *, in_corpus: Mapping[str, ScoredSystems] | None = None,
                  state_dirs: Mapping[str, Path] | None = None, reuse: bool = True,
                  advance: Advance = no_progress) -> CrossTransfer:
    """Transfer matrix: rows = tuning corpus, columns = test corpus; per-pair results in evaluation layout, scored
    against speech on the objective with ``ev``'s resamples and small-fold warning.

    ``in_corpus`` may supply already computed per-fold tuning results for the diagonal. Each corpus' searches
    (per fold for the diagonal, pooled for transfer) go to ``fold_search`` in one call, so an engine runs them side
    by side, and are saved in, and with ``reuse`` taken from, ``state_dirs[corpus]``. ``advance(1)`` is called as
    each tuning corpus' row is done.
    """
    in_corpus, state_dirs = in_corpus or {}, state_dirs or {}
    objective = tune.objective
    # every search the matrix needs (each corpus pooled, the diagonal's folds not supplied) in one engine call
    diagonal = {name: fold_searches(df, labels, tune, seed, state_dirs.get(name))
                for name, df in tables.items() if name not in in_corpus}
    planned = ({f"{name} (pooled)": pooled(df, labels, tune, seed, state_dirs.get(name)) for name, df in tables.items()}
               | {f"{name} fold {fold}": plan for name, plans in diagonal.items() for fold, plan in plans.items()})
    found = run_searches(planned, tune, fold_search, reuse=reuse)
    matrix: dict[str, dict[str, TransferCell]] = {}
    pairs: dict[str, ScoredSystems] = {}
    for src, src_df in tables.items():
        chosen = choose(found[f"{src} (pooled)"], tune.choice,
                        group_sizes(src_df.loc[own_test_rows(src_df), "fold"].to_numpy()))
        matrix[src] = {}
        for dst, dst_df in tables.items():
            if src == dst and src in in_corpus:
                result = in_corpus[src]
            elif src == dst:
                searches = {fold: found[f"{dst} fold {fold}"] for fold in diagonal[dst]}
                log_choices(dst_df, tune, searches)
                result = tuned_results(dst_df, labels, searches, tune, ev, seed)
            else:
                folds = fold_ids(dst_df)
                scored = apply_per_fold(dst_df, labels, {"tuned": {f: chosen.kept.config for f in folds}},
                                        ev.for_tuning(objective), seed)[0]
                result = with_choices(scored, {f: chosen for f in folds}, objective)
            pairs[f"{src}->{dst}"] = result
            mean = result.mean
            cell = TransferCell(mean["tuned"][objective], mean["speech"][objective],
                                mean["tuned"][objective] - mean["speech"][objective],
                                result.comparisons["tuned"].folds.improved, len(result.folds))
            matrix[src][dst] = cell
            log.debug(f"{src} → {dst}: tuned {objective} {100 * cell.tuned:.2f} vs speech {100 * cell.speech:.2f} "
                f"({100 * cell.gain:+.2f}; {cell.folds_improved}/{cell.n_folds} folds improved)")
        advance(1)
    return CrossTransfer(objective, list(tables), matrix, pairs)


def format_matrix(result: CrossTransfer) -> str:
    """Gain over speech (points) for each tuning corpus (row) → test corpus (column), for the primary text path
    and then each further tuned path (``text_paths``): in the objective, with UA, WA and macro-F1 beside it."""
    names = result.corpora
    parts = {"": result, **{f"text path {path}:": part for path, part in result.text_paths.items()}}
    metrics = list(dict.fromkeys((result.objective, *REPORTED_METRICS)))

    def cell(part: CrossTransfer, src: str, dst: str) -> str:
        first, *rest = (f"{100 * part.gain(src, dst, m):+.2f}" for m in metrics)
        return f"{first} ({', '.join(rest)})"

    first = max(len(n) for n in [*names, *parts]) + 2
    width = max(*(len(cell(part, a, b)) for part in parts.values() for a in names for b in names),
                *(len(n) for n in names)) + 2
    lines = [f"gain over speech in {metrics[0]} ({', '.join(metrics[1:])}), points; rows: tuned on, columns: tested on"]
    for title, part in parts.items():
        lines.append(f"{title:<{first}}" + "".join(f"{n:>{width}}" for n in names))
        lines += [f"{src:<{first}}" + "".join(f"{cell(part, src, dst):>{width}}" for dst in names) for src in names]
    return "\n".join(lines)
