"""Simple leakage-free baselines beside every tuned result: did the search earn its complexity?

Each baseline is fitted per fold on the same tuning rows as the search: one text weight for each text
distribution, and the published selection rule. Results carry the tuned system against the best of them
with a bootstrap CI, whether choosing per fold among the one-weight fusions pays on these folds, and a
hindsight ceiling (a fixed fusion fitted with every test label) to read the folds by.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ser.data.arrays import ScoreArrays
from ser.tuning.choice import TrialRecord
from ser.config import TuneConfig
from ser.data.folds import fold_splits
from ser.fusion.rules import rule_from_config
from ser.fusion.text import NEGATIVE_SPLITS, PRIORS, SPREADS
from ser.measures.metrics import fold_scores
from ser.evaluation.scoring import TestRows
from ser.evaluation.result_types import BaselineVerdict, Hindsight, PerFoldPick, ScoredSystems, TunedSystems, VersusBest
from ser.tuning.search import fit_trial, joint_structure, one_weight_structure
from ser.measures.stats import versus_best


def _reading(spread: str, split: str, prior: str) -> str:
    """A text distribution's part of a baseline name: ``top,ratio`` as mapped, ``top,ratio,divide`` divided by its
    mean on the tuning rows."""
    return f"{spread},{split}" + ("" if prior == "keep" else f",{prior}")


READINGS = [(spread, split, prior) for prior in PRIORS for spread in SPREADS for split in NEGATIVE_SPLITS]
"""Every text distribution a one-weight baseline reads the sentiment by."""
BASELINES: dict[str, dict] = {
    **{f"loglinear[{_reading(*r)}]": one_weight_structure(*r) for r in READINGS},
    "published-rule": {"variant": "published"},
}
"""Simple leakage-free baselines fitted per fold on the same tuning rows as the search: a single
text weight for each text distribution (as mapped, and divided by its mean on the tuning rows), and the
published selection rule under the run's protocol."""
ONE_WEIGHT_BASELINES = tuple(name for name, params in BASELINES.items() if params["variant"] == "loglinear")
"""The near-equal one-weight fusions, one per text distribution, among which :func:`per_fold_pick` chooses."""
JOINT_BASELINES: dict[str, dict] = {
    f"joint[{_reading(*r)}]": joint_structure(*r) for r in READINGS}
"""Where a table carries further text paths: one weight per path (log-linear), for each text distribution."""


def baseline_specs(a: ScoreArrays) -> dict[str, dict]:
    """The baselines that apply to these arrays: :data:`BASELINES`, and :data:`JOINT_BASELINES` with further paths."""
    return {**BASELINES, **(JOINT_BASELINES if a.texts else {})}


@dataclass(frozen=True)
class FittedBaseline:
    """A simple baseline fitted on one fold's tuning rows: its configuration and its score on those rows."""

    config: dict
    tuning_score: float


def fit_baselines(df: pd.DataFrame, arrays: ScoreArrays, tune: TuneConfig,
                  searches: dict[str, list[TrialRecord]]) -> dict[str, dict[str, FittedBaseline]]:
    """{baseline: {fold: fit}} on each fold's tuning rows (never its test rows); ``arrays``: ``df`` as arrays.

    A baseline the fold's search already ran as an anchor trial (same structure, same rows, same
    space: a deterministic fit) is taken from it; the others are fitted here.
    """
    specs = baseline_specs(arrays)
    out: dict[str, dict[str, FittedBaseline]] = {name: {} for name in specs}
    for split in fold_splits(df, tune.protocol):
        ran = {json.dumps(r.params, sort_keys=True): r for r in searches.get(split.fold, [])}
        a = arrays.take(split.tuning)
        for name, params in specs.items():
            fit = ran.get(json.dumps(params, sort_keys=True)) or fit_trial(params, a, tune.space, tune.target)
            out[name][split.fold] = FittedBaseline(fit.config, fit.score)
    return out


def per_fold_pick(fits: dict[str, dict[str, FittedBaseline]], result: ScoredSystems, objective: str) -> PerFoldPick:
    """Choose, per fold, the one-weight baseline with the best tuning score (ties to the first) and compare its test
    scores with those baselines kept fixed. Below zero, choosing per fold among near-equal fusions picks against
    the test fold: on small folds, a variant that wins on the test fold wins less often on the rest of the corpus.
    The search chooses the same way, so there it cannot be expected to match the best baseline picked ex post."""
    picked = {f.fold: max(ONE_WEIGHT_BASELINES, key=lambda n: fits[n][f.fold].tuning_score) for f in result.folds}
    score = float(np.mean([f.systems[picked[f.fold]][objective] for f in result.folds]))
    fixed = float(np.mean([result.mean[name][objective] for name in ONE_WEIGHT_BASELINES]))
    return PerFoldPick(list(ONE_WEIGHT_BASELINES), picked, score, fixed, score - fixed)


def describe_per_fold_pick(pick: PerFoldPick) -> str:
    """:func:`per_fold_pick` in one sentence."""
    verdict = "choosing per fold pays here" if pick.diff >= 0 else \
        "choosing per fold among these near-equal fusions does not pay here, and the search chooses per fold too"
    return (f"Choosing per fold among the one-weight baselines by tuning score: {100 * pick.score:.2f} against "
            f"{100 * pick.fixed_mean:.2f} for the same baselines fixed ({100 * pick.diff:+.2f}); {verdict}.")


def hindsight_ceiling(test: TestRows, result: ScoredSystems, tune: TuneConfig) -> Hindsight:
    """Each one-weight baseline fitted on every fold's test rows at once, the best by mean over folds: a fixed
    fusion of that kind chosen with every test label, a ceiling and not a method. A fold it does not lift above
    speech is one the fold makes hard, not the search."""
    objective, a = tune.objective, test.arrays
    speech = np.array(result.fold_values("speech", objective))
    best: tuple[float, str, dict, np.ndarray] | None = None
    for name in ONE_WEIGHT_BASELINES:
        config = fit_trial(BASELINES[name], a, tune.space, tune.target).config
        pred = rule_from_config(config, a.labels).decide(a).pred
        gains = fold_scores(a.y, pred, test.fold_index, len(test.folds), a.labels.k)[objective] - speech
        if best is None or gains.mean() > best[0]:
            best = (float(gains.mean()), name, config, gains)
    gain, name, config, gains = best
    per_fold = dict(zip(test.folds, map(float, gains)))
    return Hindsight(name, config, gain, per_fold, [fold for fold, g in per_fold.items() if g <= 0])


def describe_hindsight(result: TunedSystems) -> str:
    """The hindsight ceiling in one sentence; then in how many folds the search kept speech alone (text adding
    nothing measurable there), and which folds its fusion leaves not better than speech the ceiling does not lift
    either."""
    ceiling, objective = result.baselines.hindsight, result.objective
    n = len(ceiling.per_fold)
    text = (f"Hindsight ceiling ({ceiling.system} fitted on every test label; not a method): "
            f"{100 * ceiling.gain:+.2f} over speech, better in {n - len(ceiling.not_better)}/{n} folds.")
    speech_kept = [f.fold for f in result.folds if f.best.config["kind"] == "speech"]
    if speech_kept:
        text += f" The search kept speech alone in {len(speech_kept)} fold(s)."
    failed = [f.fold for f in result.folds if f.fold not in speech_kept
              and f.systems["tuned"][objective] <= f.systems["speech"][objective]]
    if not failed:
        return text
    hard = [fold for fold in failed if fold in ceiling.not_better]
    text += f" Its fusion is not better than speech in {len(failed)} fold(s); "
    return text + (f"neither is the ceiling in {len(hard)} of them ({', '.join(hard)})." if hard else
                   "the ceiling is better in each of them.")


def baseline_comparison(test: TestRows, predictions: dict[str, np.ndarray], objective: str, *, n_boot: int,
                        seed: int) -> tuple[BaselineVerdict, BaselineVerdict | None]:
    """The tuned system against the best simple baseline (mean over folds): the difference, its bootstrap CI
    over test utterances, how much picking the best baseline on the test rows flatters it, and a verdict; with
    joint baselines (further text paths), also against the one-path baselines alone (else None)."""
    def against(names: list[str]) -> BaselineVerdict:
        versus = versus_best(test.arrays.y, predictions["tuned"], np.stack([predictions[b] for b in names]),
                             test.fold_index, test.arrays.labels.k, metric=objective, n_boot=n_boot, seed=seed)
        best = names[versus.pop("best")]
        verdict = "beats" if versus["ci_low"] > 0 else "falls short of" if versus["ci_high"] < 0 else "is level with"
        return BaselineVerdict(names, best, versus["diff"], VersusBest(**versus), verdict)

    names = list(baseline_specs(test.arrays))
    one_path = against(list(BASELINES)) if len(names) > len(BASELINES) else None
    return against(names), one_path


def describe_versus_best(baselines: BaselineVerdict, sep: str = " ") -> str:
    """Did the search beat the best simple baseline, with the CI and how much the best pick is flattered
    (two sentences joined by ``sep``)."""
    v = baselines.versus_best
    return (f"The search {baselines.verdict} the best simple baseline, {baselines.best}: "
            f"{100 * v.diff:+.2f} points [{100 * v.ci_low:+.2f}, {100 * v.ci_high:+.2f}] 95% CI over test "
            f"utterances.{sep}That baseline is the best of {len(baselines.systems)} on these test rows, which "
            f"flatters it by ~{100 * v.selection_bias:.2f} points.")


NO_BASELINES = ("no simple baselines: the text is the same on every row, so every fusion of it is speech with "
                "shifted class priors (speech alone is kept)")
"""What a tuning result says instead of a verdict where the text carries nothing (blank transcripts)."""


def baseline_table(result: TunedSystems) -> pd.DataFrame:
    """The tuned system and each simple baseline in the tuning objective: mean and std over folds, gain over speech,
    folds better / worse than speech, and the difference to the tuned system (fractions, not percent)."""
    r, objective = result, result.objective
    speech, tuned = r.mean["speech"][objective], r.mean["tuned"][objective]
    return pd.DataFrame([{"system": name, "mean": r.mean[name][objective], "std": r.std[name][objective],
                          "vs_speech": r.mean[name][objective] - speech,
                          "folds_better": r.comparisons[name].folds.improved,
                          "folds_worse": r.comparisons[name].folds.worse,
                          "vs_tuned": r.mean[name][objective] - tuned}
                         for name in ["tuned", *(r.baselines.verdict.systems if r.baselines else [])]])


def format_verdict(result: TunedSystems) -> str:
    """Two lines for a terminal that shows a whole study (``ser run``): the tuned system against speech and the
    best simple baseline, and the verdict with its CI and the optimism; :func:`format_baselines` has the rest."""
    t, objective = result.tuning, result.objective
    mean, folds = result.mean, result.comparisons["tuned"].folds
    head = (f"tuned {objective} {100 * mean['tuned'][objective]:.2f} (speech {100 * mean['speech'][objective]:.2f}, "
            f"better in {folds.improved}/{folds.n_folds} folds); optimism {100 * t.mean_optimism:+.2f} points\n")
    if result.baselines is None:
        return head + NO_BASELINES
    b = result.baselines.verdict
    v = b.versus_best
    return head + (f"the search {b.verdict} the best simple baseline, {b.best} ({100 * mean[b.best][objective]:.2f}): "
                   f"{100 * v.diff:+.2f} points [{100 * v.ci_low:+.2f}, {100 * v.ci_high:+.2f}] 95% CI")


def format_baselines(result: TunedSystems) -> str:
    """What ``ser tune`` prints: the tuned system against each simple baseline (mean over folds, gain over speech,
    folds better), the verdict with its CI, whether choosing per fold pays, the hindsight ceiling, and the optimism
    of the kept trials."""
    table = baseline_table(result)
    width = int(table["system"].str.len().max()) + 2
    lines = [f"search vs simple leakage-free baselines ({result.objective}, mean over folds, %):",
             f"{'system':<{width}}{'mean':>8}{'vs speech':>11}{'folds +/-':>11}{'vs tuned':>10}"]
    for row in table.itertuples():
        versus_tuned = "" if row.system == "tuned" else f"{100 * row.vs_tuned:+.2f}"
        lines.append(f"{row.system:<{width}}{100 * row.mean:>8.2f}{100 * row.vs_speech:>+11.2f}"
                     f"{f'{row.folds_better}/{row.folds_worse}':>11}{versus_tuned:>10}")
    t, base = result.tuning, result.baselines
    inner = "" if t.mean_inner_score is None else f", inner estimate {100 * t.mean_inner_score:.2f}"
    if base is None:
        lines.append(NO_BASELINES)
    else:
        lines.append(describe_versus_best(base.verdict, sep="\n"))
        if base.per_fold_pick is not None:
            lines.append(describe_per_fold_pick(base.per_fold_pick))
        if base.hindsight is not None:
            lines.append(describe_hindsight(result))
    lines.append(f"kept configurations: tuning score {100 * t.mean_tuning_score:.2f}{inner}, test "
                 f"{100 * t.mean_test_score:.2f}; optimism (tuning − test) {100 * t.mean_optimism:+.2f} points")
    return "\n".join(lines)
