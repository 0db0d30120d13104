"""Evaluate named fusion systems per fold on a score table's test rows (``ser evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ser.data.arrays import ScoreArrays
from ser.config import EvaluateConfig
from ser.data.folds import test_masks
from ser.fusion.rules import BUILTIN_SYSTEMS, Rule, rule_from_config
from ser.data.labels import LabelSet
from ser.data.schema import path_view, text_path_names
from ser.measures.metrics import METRICS, confusion, fold_scores, mean_std, per_class, scores_from_confusion, switch_stats
from ser.measures.stats import bootstrap_ci, paired_bootstrap, paired_fold_test
from ser._util.io import InputError
from ser.evaluation.result_types import Comparison, FoldResult, FoldTest, Interval, PairedDifference, PooledScores, \
    ScoredSystems, SystemScores, TunedSystems


def fold_warnings(folds: list[str], counts: np.ndarray, min_fold_rows: int) -> list[str]:
    """Weak but valid input: folds too small for their metrics (and fold tests) to mean much."""
    small = [f"{f} ({int(n)})" for f, n in zip(folds, counts) if n < min_fold_rows]
    out = []
    if small:
        out.append(f"{len(small)} fold(s) have fewer than {min_fold_rows} test rows: {', '.join(small[:5])}"
                   f"{' …' if len(small) > 5 else ''}; their per-fold metrics are mostly noise")
    if len(folds) < 3:
        out.append(f"only {len(folds)} fold(s): the tests across folds (Wilcoxon, t) are not informative")
    return out


def score_predictions(folds: list[str], fold_index: np.ndarray, a: ScoreArrays,
                      predictions: dict[str, np.ndarray], ev: EvaluateConfig, seed: int) -> ScoredSystems:
    """Given predictions of the same rows by several systems, scored and compared as ``ev`` says (its baseline,
    metric, resamples and small-fold warning)."""
    k, labels, metric = a.labels.k, a.labels, ev.metric
    per_fold = {name: fold_scores(a.y, pred, fold_index, len(folds), k) for name, pred in predictions.items()}
    counts = np.bincount(fold_index, minlength=len(folds))
    names = list(predictions)
    stacked = np.stack([predictions[n] for n in names])
    fold_results = []
    for i, f in enumerate(folds):
        rows = fold_index == i
        ci = bootstrap_ci(a.y[rows], stacked[:, rows], k, metric=metric, n_boot=ev.bootstrap, seed=seed + i)
        fold_results.append(FoldResult(f, int(counts[i]), {
            name: SystemScores({m: float(per_fold[name][m][i]) for m in METRICS}, Interval(metric, float(lo), float(hi)))
            for name, (lo, hi) in zip(names, ci)}))
    stats = {name: {m: mean_std(per_fold[name][m]) for m in METRICS} for name in names}
    pooled = {}
    for name, pred in predictions.items():
        c = confusion(a.y, pred, k)
        pooled[name] = PooledScores({m: float(v) for m, v in scores_from_confusion(c).items()}, per_class(c, labels),
                                    c.tolist(), switch_stats(a.y, a.speech, pred, labels))
    baseline = ev.baseline
    comparisons = {}
    if baseline in predictions:
        for name, pred in predictions.items():
            if name == baseline:
                continue
            comparisons[name] = Comparison(
                baseline,
                PairedDifference(**paired_bootstrap(a.y, predictions[baseline], pred, k, metric=metric,
                                                    n_boot=ev.bootstrap, seed=seed, strata=fold_index)),
                FoldTest(**paired_fold_test(per_fold[baseline][metric], per_fold[name][metric])))
    return ScoredSystems(list(labels.classes), tuple(fold_results),
                         mean={n: {m: s[0] for m, s in st.items()} for n, st in stats.items()},
                         std={n: {m: s[1] for m, s in st.items()} for n, st in stats.items()},
                         pooled=pooled, comparisons=comparisons,
                         warnings=tuple(fold_warnings(folds, counts, ev.min_fold_rows)))


def evaluate_systems(df: pd.DataFrame, systems: dict[str, Rule], labels: LabelSet,
                     ev: EvaluateConfig = EvaluateConfig(), seed: int = 0) -> ScoredSystems:
    """Apply every system to each fold's test rows; per-fold, mean ± std, pooled, and paired comparisons."""
    test, predictions = _predict_fixed(df, systems, labels)
    return score_predictions(test.folds, test.fold_index, test.arrays, predictions, ev, seed)


def evaluation_predictions(df: pd.DataFrame, systems: dict[str, Rule], labels: LabelSet) -> pd.DataFrame:
    """predictions.parquet of ``ser evaluate``: every test row's label by every system."""
    test, predictions = _predict_fixed(df, systems, labels)
    return test.frame(predictions)


def _predict_fixed(df: pd.DataFrame, systems: dict[str, Rule], labels: LabelSet
                   ) -> tuple["TestRows", dict[str, np.ndarray]]:
    """Every fold's test rows and each fixed system's labels for them (one rule for every fold), plus text and
    oracle on every further text path (``text:NAME``, ``oracle:NAME``)."""
    folds = sorted(test_masks(df))
    per_path, paths = path_systems(text_path_names(df.columns), folds)
    rules = {name: dict.fromkeys(folds, rule) for name, rule in systems.items()}
    rules |= {name: {f: rule_from_config(c, labels) for f, c in configs.items()} for name, configs in per_path.items()}
    return predict_systems(df, labels, rules, paths=paths)


def path_systems(paths: Iterable[str], folds: Iterable[str], tuned: Mapping[str, dict[str, dict]] | None = None
                 ) -> tuple[dict[str, dict[str, dict]], dict[str, str]]:
    """Per-fold configs for each further text path: its text and oracle (``text:NAME``, ``oracle:NAME``) and,
    where ``tuned`` has the path, its own tuned configs (``tuned:NAME``); plus {system: the path it reads}."""
    folds, tuned = list(folds), tuned or {}
    systems: dict[str, dict[str, dict]] = {}
    for path in paths:
        systems |= {f"{kind}:{path}": dict.fromkeys(folds, BUILTIN_SYSTEMS[kind]) for kind in ("text", "oracle")}
        if path in tuned:
            systems[f"tuned:{path}"] = dict(tuned[path])
    return systems, {name: name.split(":", 1)[1] for name in systems}


def predict_systems(df: pd.DataFrame, labels: LabelSet, rules: dict[str, dict[str, Rule]],
                    folds: list[str] | None = None, paths: Mapping[str, str] | None = None
                    ) -> tuple["TestRows", dict[str, np.ndarray]]:
    """{system: {fold: rule}} applied to each fold's test rows; a system named in ``paths`` reads that text path
    (the same rows, in the same order, with the path's sentiment in place of the primary one)."""
    paths = paths or {}
    test = TestRows.of(df, labels, folds)
    predictions: dict[str, np.ndarray] = {}
    for path in dict.fromkeys([paths.get(name) for name in rules]):
        rows = test if path is None else TestRows.of(path_view(df, path), labels, test.folds)
        predictions.update(rows.predict({n: r for n, r in rules.items() if paths.get(n) == path}))
    return test, {name: predictions[name] for name in rules}


META_COLUMNS = ("speaker", "session", "gender", "condition")
"""Per-row metadata kept in predictions.parquet where the score table has it (report breakdowns)."""


@dataclass(frozen=True)
class TestRows:
    """Every fold's own test rows, in sorted fold order, as arrays plus their metadata."""

    folds: list[str]
    fold_index: np.ndarray
    arrays: ScoreArrays
    meta: pd.DataFrame
    positions: np.ndarray
    """Each test row's position in the score table."""

    @classmethod
    def of(cls, df: pd.DataFrame, labels: LabelSet, folds: list[str] | None = None) -> "TestRows":
        masks = test_masks(df)
        folds = sorted(masks) if folds is None else sorted(folds)
        missing = sorted(set(folds) - set(masks))
        if missing:
            raise InputError(f"fold(s) {missing} have no test rows")
        index = np.concatenate([np.flatnonzero(masks[f]) for f in folds])
        fold_index = np.concatenate([np.full(masks[f].sum(), i) for i, f in enumerate(folds)])
        rows = df.iloc[index]
        meta = rows[["corpus", "utt_id", "fold"] + [c for c in META_COLUMNS if c in rows.columns]].reset_index(drop=True)
        return cls(folds, fold_index, ScoreArrays.from_table(rows, labels), meta, index)

    def predict(self, per_fold: dict[str, dict[str, Rule]]) -> dict[str, np.ndarray]:
        """{system: {fold: rule}} → {system: predicted class per test row}."""
        out = {}
        for name, rules in per_fold.items():
            pred = np.empty(len(self.arrays), dtype=np.int64)
            for i, fold in enumerate(self.folds):
                rows = self.fold_index == i
                pred[rows] = rules[fold].decide(self.arrays.take(rows)).pred
            out[name] = pred
        return out

    def frame(self, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
        """predictions.parquet: one row per test row — metadata, gold label, H, V, each system's label."""
        classes = np.array(self.arrays.labels.classes)
        out = self.meta.assign(label=classes[self.arrays.y], h=self.arrays.h, v=self.arrays.v)
        for name, pred in predictions.items():
            out[f"pred_{name}"] = classes[pred]
        return out


def format_p(p: float | None) -> str:
    """'p = 0.034', or 'p < 0.001' (a resampling p-value is never exactly 0)."""
    if p is None:
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def format_table(result: ScoredSystems, metric_names: tuple[str, ...] = METRICS) -> str:
    """A readable plain-text summary: mean ± std over folds, pooled UA, and gain vs the baseline."""
    names = result.systems
    width = max(len(n) for n in names) + 2
    head = f"{'system':<{width}}" + "".join(f"{m:>17}" for m in metric_names) + f"{'pooled ua':>11}{'folds +/-':>11}"
    lines = [f"{len(result.folds)} folds, {result.n_rows} test rows (mean ± std over folds, %)", head, "-" * len(head)]
    for name in names:
        cells = "".join(f"{100 * result.mean[name][m]:>10.2f} ± {100 * result.std[name][m]:<4.1f}"
                        for m in metric_names)
        cmp = result.comparisons.get(name)
        folds = f"{cmp.folds.improved}/{cmp.folds.worse}" if cmp else "-"
        lines.append(f"{name:<{width}}{cells}{100 * result.pooled[name]['ua']:>11.2f}{folds:>11}")
    for name, cmp in result.comparisons.items():
        b = cmp.bootstrap
        lines.append(f"{name} − {cmp.baseline}: Δ{b.metric} = {100 * b.diff:+.2f} "
                     f"[{100 * b.ci_low:+.2f}, {100 * b.ci_high:+.2f}] 95% CI, {format_p(b.p_value)}")
    return "\n".join(lines)


def apply_per_fold(df: pd.DataFrame, labels: LabelSet, per_fold: dict[str, dict[str, dict]], ev: EvaluateConfig,
                   seed: int, paths: Mapping[str, str] | None = None
                   ) -> tuple[ScoredSystems, TestRows, dict[str, np.ndarray]]:
    """Apply per-fold configurations ({system: {fold: config}}) once to each fold's test rows; a system named in
    ``paths`` reads that text path. The built-in systems (speech, text, oracle) come along. Returns the systems
    scored as ``ev`` says, the test rows and every system's predictions for them."""
    test, predictions = predict_systems(df, labels, per_fold_rules(sorted(next(iter(per_fold.values()))), labels,
                                                                   per_fold), paths=paths)
    result = score_predictions(test.folds, test.fold_index, test.arrays, predictions, ev, seed)
    return result, test, predictions


def per_fold_rules(folds: list[str], labels: LabelSet, per_fold: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Built-in systems for every fold plus {system: {fold: config}} as rules."""
    rules = {name: dict.fromkeys(folds, rule_from_config(spec, labels)) for name, spec in BUILTIN_SYSTEMS.items()}
    rules.update({name: {f: rule_from_config(configs[f], labels) for f in folds} for name, configs in per_fold.items()})
    return rules


def result_predictions(df: pd.DataFrame, labels: LabelSet, result: TunedSystems) -> pd.DataFrame:
    """predictions.parquet of a tuning result: every test row's label by speech, text, oracle, tuned and each
    path's tuned system (``tuned:NAME``)."""
    chosen = result.kept()
    per_path = result.path_configs or {}
    per_fold = {"tuned": chosen, **{f"tuned:{p}": configs for p, configs in per_path.items()}}
    test, predictions = predict_systems(df, labels, per_fold_rules(sorted(chosen), labels, per_fold),
                                        paths={f"tuned:{p}": p for p in per_path})
    return test.frame(predictions)
