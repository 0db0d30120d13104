"""The search space of fusion configurations and the vectorized work of one search trial.

A trial's *structure* (variant, gate, global or per-class thresholds, negative mapping, merge,
weight gating, text distribution) is sampled by Optuna (TPE); its continuous parameters are then
optimized exhaustively on the tuning set — thresholds with the grid engine (per class by
coordinate ascent over additive count changes), soft-fusion weights as one batched pass over a
weight grid — so a trial evaluates thousands of configurations and amortizes the search overhead.

Fitting the best of thousands of configurations to one tuning set is optimistic (the winner's
curse), so a trial also refits its structure with each of the tuning set's groups (folds) held
out in turn and scores it on the held-out group: the *inner* estimate, which the sampler
maximizes and the final choice (``ser.tuning.choice.choose_trial``) uses. Pure numpy: no Ray, no torch,
no optuna import (the Optuna trial is passed in).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from ser.data.arrays import PRIMARY_PATH, ScoreArrays
from ser.fusion.rules import GATES, NEVER, RULES, JointRule, learned_exclusions, rule_from_config, searchable_rules, \
    weight_scale
from ser.fusion.logistic import fit_logistic
from ser.fusion.text import EPS, NegativeMapping, TextDistribution
from ser.fusion.grid import group_base_counts, group_deltas
from ser.data.labels import LabelSet
from ser.measures.metrics import metric_from_confusion, summary
from ser._util.io import InputError
from ser._util.limits import refuse_oversized
from ser.measures.objective import Objective, group_codes
from ser.fusion.published import published_procedure
from ser.config.space import Candidates, SearchSpace, SelectSpace, SoftSpace

def suggest(trial: Any, space: SearchSpace) -> dict:
    """Define-by-run sampling of a trial's structure (works for Optuna trials under Tune or alone)."""
    variant = trial.suggest_categorical("variant", list(space.variants))
    return {"variant": variant, **search_variant(variant).search_sample(trial, space)}


def _sample_nothing(trial: Any, space: SearchSpace) -> dict:
    """A structure with nothing to sample (speech alone, the published procedure)."""
    return {}


def _sample_select(trial: Any, space: SearchSpace) -> dict:
    sel = space.select
    params = {"gate": trial.suggest_categorical("gate", list(sel.gate)),
              "thresholds": trial.suggest_categorical("thresholds", list(sel.thresholds)),
              "negative": trial.suggest_categorical("negative", list(sel.negative)),
              "merge": trial.suggest_categorical("merge", list(sel.merge))}
    if params["negative"] == "score-split":
        params["split_t"] = trial.suggest_float("split_t", *sel.split_t)
        params["flip"] = trial.suggest_categorical("flip", [False, True])
    return params


def _sample_joint(trial: Any, space: SearchSpace) -> dict:
    return {key: trial.suggest_categorical(key, list(getattr(space.soft, key)))
            for key in ("spread", "negative_split", "prior")}


def _sample_soft(trial: Any, space: SearchSpace) -> dict:
    soft = space.soft
    params = {"weight_gate": trial.suggest_categorical("weight_gate", list(soft.weight_gate))}
    if params["weight_gate"] == "entropy":
        params["gate_quantile"] = trial.suggest_float("gate_quantile", *soft.gate_quantile)
    for key in ("spread", "negative_split", "prior", "uniform"):
        params[key] = trial.suggest_categorical(key, list(getattr(soft, key)))
    return params


LOGISTIC_PATHS = ("none", "primary", "all")
"""The text paths a logistic regression reads: none (speech alone: the reference a logistic fusion's text must beat,
never kept; ``ser.tuning.choice``), the primary one, or every path of the table."""


def one_weight_structure(spread: str, split: str, prior: str) -> dict:
    """The sampled structure of a one-weight log-linear fusion reading the text as given (an anchor and a baseline:
    the baselines reuse an anchor's fit by this structure)."""
    return {"variant": "loglinear", "weight_gate": "none", "spread": spread, "negative_split": split, "prior": prior,
            "uniform": 0.0}


def joint_structure(spread: str, split: str, prior: str) -> dict:
    """The sampled structure of a joint fusion (one weight per text path) reading the text as given."""
    return {"variant": "joint", "spread": spread, "negative_split": split, "prior": prior}


def anchor_trials(space: SearchSpace) -> list[dict]:
    """The simple structures every fold's search evaluates first (``space.anchors``).

    Speech alone (the null model: nothing fitted, so the one-SE choice keeps it when text adds
    nothing measurable), a single-weight log-linear fusion for each text distribution in the
    space, the joint fusions, the logistic regressions (on speech alone, the reference; with the primary path; with
    every path), then the published procedure: the search is never worse than
    them for want of trying them.
    """
    if not space.anchors:
        return []
    soft = space.soft
    out = [{"variant": "speech"}] if "speech" in space.variants else []
    readings = [(spread, split, prior)
                for prior in soft.prior for spread in soft.spread for split in soft.negative_split]
    if "loglinear" in space.variants and "none" in soft.weight_gate and 0.0 in soft.uniform:
        out += [one_weight_structure(*r) for r in readings]
    if "joint" in space.variants:
        out += [joint_structure(*r) for r in readings]
    if "logistic" in space.variants:     # over every path too where joint fusion is searched (further paths)
        out += [{"variant": "logistic", "paths": paths} for paths in LOGISTIC_PATHS
                if paths != "all" or "joint" in space.variants]
    if "published" in space.variants:
        out.append({"variant": "published"})
    return out


def space_for(space: SearchSpace, tuning: dict[str, ScoreArrays]) -> SearchSpace:
    """``space`` as it applies to these tuning arrays: without ``joint`` where they carry a single text path,
    refused (naming the key) where a candidate grid would not fit in memory on the largest tuning set."""
    _refuse_oversized_grids(space, tuning)
    if "joint" not in space.variants or all(a.texts for a in tuning.values()):
        return space
    if space.variants == ("joint",):
        raise InputError("tune.space.variants: joint fusion needs further text paths (text_*:NAME columns), and the "
                         "score table has none; add another variant")
    return space.without_joint()


def _refuse_oversized_grids(space: SearchSpace, tuning: dict[str, ScoreArrays]) -> None:
    """Estimate the largest arrays a trial builds (float64) and refuse a space whose grids cannot fit."""
    if not tuning:
        return
    n = max(len(a) for a in tuning.values())
    k = next(iter(tuning.values())).labels.k
    groups = max(int(a.group.max()) + 1 if a.group is not None and len(a) else 1 for a in tuning.values())
    sel, soft = space.select, space.soft
    if "select" in space.variants:
        cells = (sel.tau_h.count(n) + 1) * (sel.tau_v.count(n) + 1)
        refuse_oversized("tune.space.select.tau_h/tau_v steps", f"a {cells:,}-cell threshold grid",
                         cells * (groups * 2 * k + 3) * 8 * 10)   # channels × the sums, metrics and concurrent trials
    if {"loglinear", "average"} & set(space.variants):
        refuse_oversized("tune.space.soft.w.steps", f"{soft.w.count(n):,} weights", soft.w.count(n) * n * 8 * 3)
    paths = max(len(a.texts) for a in tuning.values())
    if "joint" in space.variants and paths:
        combos = soft.joint_w.count(n) ** (paths + 1)
        refuse_oversized("tune.space.soft.joint_w.steps", f"{combos:,} weight combinations",
                         combos * ((paths + 1) * 8 * 2 + n * 8))


@dataclass(frozen=True)
class TrialResult:
    """The best configuration a trial found on its tuning set, and its inner estimate.

    ``score``: the configuration's objective on the whole tuning set it was fitted to (optimistic).
    ``inner``: per tuning-set group, the objective of the structure refitted without that group
    and scored on it (None when the tuning set has fewer than two groups).
    """

    config: dict
    score: float
    n_configs: int
    inner: tuple[float, ...] | None = None

    @property
    def selection_score(self) -> float:
        """What the sampler maximizes: the inner estimate where there is one, else the tuning score."""
        return float(np.mean(self.inner)) if self.inner else self.score


def fit_trial(params: dict, a: ScoreArrays, space: SearchSpace, objective: Objective = Objective()) -> TrialResult:
    """Optimize the continuous parameters of a sampled structure on tuning arrays ``a``, maximizing ``objective``
    (the published procedure keeps the paper's pooled criterion)."""
    return search_variant(params["variant"]).search_fit(params, a, space, objective)


def inner_scores(params: dict, a: ScoreArrays, space: SearchSpace, objective: Objective
                 ) -> tuple[tuple[float, ...] | None, int]:
    """Leave-one-group-out over the tuning set's groups: refit without a group, score on it.

    Returns (per-group scores in group order, configurations evaluated), or (None, 0) when the
    tuning set has fewer than two groups.
    """
    groups = np.unique(a.group)
    if len(groups) < 2:
        return None, 0
    scores, n_configs = [], 0
    for g in groups:
        held = a.group == g
        fit = fit_trial(params, a.take(~held), space, objective)
        test = a.take(held)
        scores.append(summary(test.y, rule_from_config(fit.config, a.labels).decide(test).pred,
                              a.labels.k)[objective.metric])
        n_configs += fit.n_configs
    return tuple(scores), n_configs


def run_trial(params: dict, a: ScoreArrays, space: SearchSpace, objective: Objective = Objective()) -> TrialResult:
    """Fit a sampled structure to the whole tuning set and estimate it by inner cross-validation
    (soft trials whose fit depends on counts alone bring their estimate from the fit itself)."""
    result = fit_trial(params, a, space, objective)
    if result.inner is not None:
        return result
    scores, n_inner = inner_scores(params, a, space, objective)
    return replace(result, inner=scores, n_configs=result.n_configs + n_inner)


def _negative_config(params: dict, labels: LabelSet) -> Any:
    """The sampled negative mapping; score-split needs two negative classes, so other label sets use refer."""
    if params["negative"] == "score-split" and len(labels.negative) == 2:
        return {"mode": "score-split", "t": round(float(params["split_t"]), 6), "flip": bool(params["flip"])}
    return "refer"


def _select_trial(params: dict, a: ScoreArrays, sel: SelectSpace, objective: Objective) -> TrialResult:
    gate = params["gate"]
    negative_cfg = _negative_config(params, a.labels)
    negative = NegativeMapping.from_config(negative_cfg, a.labels)
    h_op, v_op = GATES[gate]
    if params["thresholds"] == "global":
        th = sel.tau_h.values(a.h) if h_op else np.zeros(1)
        tv = sel.tau_v.values(a.v) if v_op else np.zeros(1)
        d_tp, d_pred = group_deltas(a, th, tv, gate, negative)
        tp, n_pred, support = (c[:, None, None] for c in group_base_counts(a))
        values = objective.of_counts(tp + d_tp, n_pred + d_pred, np.broadcast_to(support, d_tp.shape))
        i, j = np.unravel_index(np.argmax(values), values.shape)
        tau_h, tau_v = float(th[i]), float(tv[j])
        n_configs = th.size * tv.size
    else:
        tau_h, tau_v, n_configs = _per_class_ascent(a, gate, negative, sel, objective)
    config = {"kind": "select", "gate": gate, "negative": negative_cfg}
    if h_op:
        config["tau_h"] = tau_h
    if v_op:
        config["tau_v"] = tau_v
    if params["merge"] == "exclude":
        config["merge"] = "exclude"
        config["exclude"] = learned_exclusions(a, rule_from_config(config, a.labels).decide(a).pred)
        n_configs += 1
    score = objective.score(a.y, rule_from_config(config, a.labels).decide(a).pred, a.group, a.labels.k)
    return TrialResult(config, score, int(n_configs))


def _per_class_ascent(a: ScoreArrays, gate: str, negative: NegativeMapping, sel: SelectSpace,
                      objective: Objective) -> tuple[dict, dict, int]:
    """Per-class thresholds by coordinate ascent: class surfaces add independent count changes (per group, so
    any aggregation of the groups is scored exactly)."""
    k = a.labels.k
    h_op, v_op = GATES[gate]
    base_tp, base_pred, support = group_base_counts(a)                  # (G, K)
    surfaces, grids = [], []
    for c in range(k):
        rows = a.speech == c
        th = sel.tau_h.values(a.h[rows]) if h_op else np.zeros(1)
        tv = sel.tau_v.values(a.v[rows]) if v_op else np.zeros(1)
        # one extra candidate per axis that admits no row (H, V ≥ 0) = "never switch"
        th = np.r_[th, NEVER[h_op]] if h_op else th
        tv = np.r_[tv, NEVER[v_op]] if v_op else tv
        surfaces.append(group_deltas(a, th, tv, gate, negative, rows=rows))     # (G, A, B, K) each
        grids.append((th, tv))
    choice = [(len(th) - 1, len(tv) - 1) for th, tv in grids]      # start: no class switches
    n_configs = 0
    for _ in range(sel.rounds):
        for c in range(k):
            other_tp = base_tp + sum(surfaces[o][0][:, choice[o][0], choice[o][1]] for o in range(k) if o != c)
            other_pred = base_pred + sum(surfaces[o][1][:, choice[o][0], choice[o][1]] for o in range(k) if o != c)
            d_tp, d_pred = surfaces[c]
            values = objective.of_counts(other_tp[:, None, None] + d_tp, other_pred[:, None, None] + d_pred,
                                         np.broadcast_to(support[:, None, None], d_tp.shape))
            n_configs += values.size
            best = np.unravel_index(np.argmax(values), values.shape)
            if values[best] > values[choice[c]]:
                choice[c] = (int(best[0]), int(best[1]))
    tau_h = {a.labels.classes[c]: float(grids[c][0][choice[c][0]]) for c in range(k)}
    tau_v = {a.labels.classes[c]: float(grids[c][1][choice[c][1]]) for c in range(k)}
    return tau_h, tau_v, n_configs


def joint_weight_grid(spec: Candidates, n_paths: int) -> np.ndarray:
    """Every combination (C, n_paths) of per-path weights from the ``joint_w`` candidates whose sum is at most 1."""
    values = spec.values(np.array([]))
    grid = np.stack(np.meshgrid(*[values] * n_paths, indexing="ij"), axis=-1).reshape(-1, n_paths)
    return grid[grid.sum(axis=1) <= 1.0 + 1e-9]


JOINT_CHUNK = 64
"""Weight combinations fused at once in a joint trial (bounds its memory to chunk × rows × K floats)."""


def _text_reading(params: dict, a: ScoreArrays, paths: list[str]) -> TextDistribution:
    """The text distribution a sampled structure names (what it leaves out takes its default), its prior measured
    on the fitting arrays ``a`` for ``paths``."""
    keys = ("spread", "negative_split", "uniform", "prior")
    return TextDistribution.from_config({k: params[k] for k in keys if k in params}).fitted(a, paths)


def _joint_predictions(params: dict, a: ScoreArrays, soft: SoftSpace) -> tuple[np.ndarray, dict, np.ndarray]:
    """(weight combinations (C, P), configuration without ``w``, fused labels for each combination (C, n))."""
    paths = a.paths
    text = _text_reading(params, a, paths)
    grid = joint_weight_grid(soft.joint_w, len(paths))
    log_p = np.log(np.maximum(a.p, EPS))
    log_q = [np.log(np.maximum(text.apply(a, path), EPS)) for path in paths]
    preds = np.concatenate([np.argmax(JointRule.combine(log_p, log_q, grid[i:i + JOINT_CHUNK]), axis=-1)
                            for i in range(0, len(grid), JOINT_CHUNK)])
    return grid, {"kind": "joint", "text": text.to_config()}, preds


def _soft_predictions(params: dict, a: ScoreArrays, soft: SoftSpace) -> tuple[np.ndarray, dict, np.ndarray]:
    """(weight grid, configuration without ``w``, fused labels for every weight: (W, n)) in one batched pass."""
    if params["variant"] == "joint":
        return _joint_predictions(params, a, soft)
    weights = soft.w.values(np.array([]))
    gate = params["weight_gate"]
    text = _text_reading(params, a, [PRIMARY_PATH])
    config: dict = {"kind": params["variant"], "weight_gate": gate, "text": text.to_config()}
    if gate == "entropy":
        config["tau_h"] = float(np.quantile(a.h, params["gate_quantile"]))
    w = weights[:, None, None] * weight_scale(a, gate, config.get("tau_h", 0.0))[None, :, None]   # (W, n, 1)
    fused = RULES[params["variant"]].combine(a.p, text.apply(a), w)
    return weights, config, np.argmax(fused, axis=2)


def _soft_trial(params: dict, a: ScoreArrays, soft: SoftSpace, objective: Objective) -> TrialResult:
    """The best text weight on the tuning rows, from per-(group, weight) confusion counts in one pass.

    Where the fit depends on counts alone (every weight gate but ``entropy``, whose threshold is a
    quantile of the rows) the same counts give the inner estimate: refitting without group g sees
    exactly total − counts[g], so choosing its weight and scoring it on g needs no second pass
    (tested equal to refitting group by group).
    """
    k = a.labels.k
    weights, config, preds = _soft_predictions(params, a, soft)
    n_groups, g = group_codes(a.group)
    n_w = len(weights)
    flat = ((g[None, :] * n_w + np.arange(n_w)[:, None]) * k + a.y[None, :]) * k + preds
    per_group = np.bincount(flat.ravel(), minlength=n_groups * n_w * k * k).reshape(n_groups, n_w, k, k)
    values = objective.of_confusions(per_group)
    best = int(np.argmax(values))
    config["w"] = dict(zip(a.paths, map(float, weights[best]))) if params["variant"] == "joint" \
        else float(weights[best])
    result = TrialResult(config, float(values[best]), n_w)
    if n_groups < 2 or params.get("weight_gate") == "entropy":
        return result
    refit = np.argmax(objective.without_each(per_group), axis=1)
    held = metric_from_confusion(per_group[np.arange(n_groups), refit], objective.metric)
    return replace(result, inner=tuple(float(x) for x in held), n_configs=n_w * (n_groups + 1))


def _fit_speech(params: dict, a: ScoreArrays, space: SearchSpace, objective: Objective) -> TrialResult:
    """Speech alone: nothing to fit."""
    return TrialResult({"kind": "speech"}, objective.score(a.y, a.speech, a.group, a.labels.k), 1)


def _sample_logistic(trial: Any, space: SearchSpace) -> dict:
    """Which text paths a logistic regression reads (:data:`LOGISTIC_PATHS`)."""
    return {"paths": trial.suggest_categorical("paths", list(LOGISTIC_PATHS))}


def _fit_logistic(params: dict, a: ScoreArrays, space: SearchSpace, objective: Objective) -> TrialResult:
    """A logistic regression over speech and the sampled text paths (its inner estimate refits it)."""
    rule = fit_logistic(a, objective, {"none": [], "primary": [PRIMARY_PATH], "all": a.paths}[params["paths"]])
    return TrialResult(rule.to_config(), objective.score(a.y, rule.decide(a).pred, a.group, a.labels.k), 1)


def _fit_published(params: dict, a: ScoreArrays, space: SearchSpace, objective: Objective) -> TrialResult:
    """The published procedure, on the paper's pooled criterion for the objective's metric."""
    return TrialResult(*published_procedure(a, objective.metric))


def _fit_select(params: dict, a: ScoreArrays, space: SearchSpace, objective: Objective) -> TrialResult:
    return _select_trial(params, a, space.select, objective)


def _fit_soft(params: dict, a: ScoreArrays, space: SearchSpace, objective: Objective) -> TrialResult:
    return _soft_trial(params, a, space.soft, objective)


@dataclass(frozen=True)
class Variant:
    """A structure the search samples (a name in ``tune.space.variants``): how a trial samples its structure
    (the params beside ``variant``) and how its continuous parameters are fitted on tuning arrays. A registered
    fusion rule with ``search_sample`` and ``search_fit`` of these shapes is one too."""

    search_sample: Callable[[Any, SearchSpace], dict]
    search_fit: Callable[[dict, ScoreArrays, SearchSpace, Objective], TrialResult]


BUILTIN_VARIANTS: dict[str, Variant] = {
    "speech": Variant(_sample_nothing, _fit_speech),
    "select": Variant(_sample_select, _fit_select),
    "loglinear": Variant(_sample_soft, _fit_soft),
    "average": Variant(_sample_soft, _fit_soft),
    "joint": Variant(_sample_joint, _fit_soft),
    "logistic": Variant(_sample_logistic, _fit_logistic),
    "published": Variant(_sample_nothing, _fit_published),
}
"""``ser.config.space.VARIANTS``, each with its sampler and fit (``published`` fits the paper's procedure, whose
configuration is a ``select`` rule)."""


def search_variant(name: str) -> Variant:
    """A built-in variant, else the registered fusion rule of that kind that brings its own search hooks."""
    if name in BUILTIN_VARIANTS:
        return BUILTIN_VARIANTS[name]
    if name in searchable_rules():
        return RULES[name]
    raise InputError(f"tune.space.variants: '{name}' is not a search variant (built in: {list(BUILTIN_VARIANTS)}, "
                     f"rules with search hooks: {list(searchable_rules())})")
