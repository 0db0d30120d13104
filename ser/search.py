"""The search space of fusion configurations and the vectorized work of one search trial.

A trial's *structure* (variant, gate, global or per-class thresholds, negative mapping, merge,
weight gating, text distribution) is sampled by Optuna (TPE); its continuous parameters are then
optimized exhaustively on the tuning set — thresholds with the grid engine (per class by
coordinate ascent over additive count changes), soft-fusion weights as one batched pass over a
weight grid — so a trial evaluates thousands of configurations and amortizes the search overhead.

Fitting the best of thousands of configurations to one tuning set is optimistic (the winner's
curse), so a trial also refits its structure with each of the tuning set's groups (folds) held
out in turn and scores it on the held-out group: the *inner* estimate, which the sampler
maximizes and the final choice (``ser.choice.choose_trial``) uses. Pure numpy: no Ray, no torch,
no optuna import (the Optuna trial is passed in).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ser.arrays import ScoreArrays
from ser.checks import is_count
from ser.fusion import GATES, NEGATIVE_SPLITS, NEVER, RULES, SPREADS, WEIGHT_GATES, NegativeMapping, \
    EPS, JointRule, TextDistribution, learned_exclusions, rule_from_config, weight_scale
from ser.grid import group_base_counts, group_deltas
from ser.labels import LabelSet
from ser.metrics import scores_from_confusion, summary
from ser.io import InputError, check_keys
from ser.limits import refuse_oversized
from ser.objective import Objective, group_codes
from ser.published import published_procedure

VARIANTS = ("speech", "select", "loglinear", "average", "joint", "published")

DEFAULT_SPACE: dict[str, Any] = {
    "variants": ["speech", "select", "loglinear", "average", "joint", "published"],
    "anchors": True,
    "select": {
        "gate": ["hv", "h", "v"],
        "thresholds": ["global", "per_class"],
        "tau_h": {"quantiles": [0.02, 0.98], "steps": 40},
        "tau_v": {"quantiles": [0.02, 0.98], "steps": 40},
        "negative": ["refer", "score-split"],
        "split_t": [0.0, 0.7],
        "merge": ["replace", "exclude"],
        "rounds": 2,
    },
    "soft": {
        "w": {"range": [0.0, 1.0], "steps": 51},
        "weight_gate": ["none", "entropy", "scaled"],
        "gate_quantile": [0.1, 0.9],
        "spread": ["probs", "top"],
        "negative_split": ["even", "ratio"],
        "uniform": [0.0, 0.2, 0.5],
        "joint_w": {"range": [0.0, 1.0], "steps": 26},
    },
}
"""Default search space; a config's ``tune.space`` overrides keys (unknown keys are errors). ``joint`` (one weight
per text path) is searched only where the tuning rows carry further text paths (``text_*:NAME``)."""


def _check_space(space: dict, default: dict, where: str) -> None:
    check_keys(space, list(default), where.rstrip("."))
    for key, value in space.items():
        if isinstance(default[key], dict) and key in ("select", "soft"):
            if not isinstance(value, dict):
                raise InputError(f"{where}{key} must be a mapping")
            _check_space(value, default[key], f"{where}{key}.")


def resolve_space(raw: dict | None) -> dict:
    """Defaults overlaid with ``raw``, validated: unknown keys and bad choices/ranges name the key."""
    raw = raw or {}
    _check_space(raw, DEFAULT_SPACE, "tune.space.")
    space = copy.deepcopy(DEFAULT_SPACE)
    for key, value in raw.items():
        if key in ("select", "soft"):
            space[key].update(value)
        else:
            space[key] = value
    _choices(space["variants"], VARIANTS, "tune.space.variants")
    sel, soft = space["select"], space["soft"]
    _choices(sel["gate"], tuple(GATES), "tune.space.select.gate")
    _choices(sel["thresholds"], ("global", "per_class"), "tune.space.select.thresholds")
    _choices(sel["negative"], ("refer", "score-split"), "tune.space.select.negative")
    _choices(sel["merge"], ("replace", "exclude"), "tune.space.select.merge")
    _choices(soft["weight_gate"], WEIGHT_GATES, "tune.space.soft.weight_gate")
    _choices(soft["spread"], SPREADS, "tune.space.soft.spread")
    _choices(soft["negative_split"], NEGATIVE_SPLITS, "tune.space.soft.negative_split")
    if not isinstance(soft["uniform"], list) or not soft["uniform"] or \
            not all(isinstance(u, (int, float)) and 0 <= u <= 1 for u in soft["uniform"]):
        raise InputError(f"tune.space.soft.uniform must be a non-empty list of numbers in [0, 1], got {soft['uniform']!r}")
    if not isinstance(space["anchors"], bool):
        raise InputError(f"tune.space.anchors must be true or false, got {space['anchors']!r}")
    _interval(sel["split_t"], "tune.space.select.split_t", 0.0, 1.0)
    _interval(soft["gate_quantile"], "tune.space.soft.gate_quantile", 0.0, 1.0)
    for name, spec in (("select.tau_h", sel["tau_h"]), ("select.tau_v", sel["tau_v"]), ("soft.w", soft["w"]),
                       ("soft.joint_w", soft["joint_w"])):
        check_candidates(spec, f"tune.space.{name}")
    if not is_count(sel["rounds"]):
        raise InputError(f"tune.space.select.rounds must be a positive integer, got {sel['rounds']!r}")
    return space


def _choices(values: Any, allowed: tuple, where: str) -> None:
    if not isinstance(values, list) or not values:
        raise InputError(f"{where} must be a non-empty list of {list(allowed)}, got {values!r}")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise InputError(f"{where}: unknown choice(s) {bad}; allowed: {list(allowed)}")


def _interval(values: Any, where: str, lo: float, hi: float) -> None:
    if (not isinstance(values, list) or len(values) != 2 or not all(isinstance(v, (int, float)) for v in values)
            or not lo <= values[0] <= values[1] <= hi):
        raise InputError(f"{where} must be [low, high] with {lo} <= low <= high <= {hi}, got {values!r}")


def check_candidates(spec: Any, where: str) -> None:
    """A candidate-list spec: ``{quantiles: [lo, hi], steps: n}`` or ``{range: [lo, hi], steps: n}``."""
    if not isinstance(spec, dict) or len(set(spec) & {"quantiles", "range"}) != 1 or \
            set(spec) - {"quantiles", "range", "steps"}:
        raise InputError(f"{where} must be {{quantiles: [lo, hi], steps: n}} or {{range: [lo, hi], steps: n}}, "
                         f"got {spec!r}")
    if "quantiles" in spec:
        _interval(spec["quantiles"], f"{where}.quantiles", 0.0, 1.0)
    else:
        _interval(spec["range"], f"{where}.range", -np.inf, np.inf)
    if not is_count(spec.get("steps", 40)):
        raise InputError(f"{where}.steps must be a positive integer, got {spec.get('steps')!r}")


def candidates(spec: dict, values: np.ndarray) -> np.ndarray:
    """Candidate thresholds: evenly spaced in ``range``, or at evenly spaced ``quantiles`` of ``values``."""
    steps = spec.get("steps", 40)
    if "range" in spec:
        return np.linspace(*spec["range"], steps)
    if len(values) == 0:
        return np.array([np.inf])
    return np.unique(np.quantile(values, np.linspace(*spec["quantiles"], steps)))


def suggest(trial: Any, space: dict) -> dict:
    """Define-by-run sampling of a trial's structure (works for Optuna trials under Tune or alone)."""
    variant = trial.suggest_categorical("variant", space["variants"])
    if variant in ("speech", "published"):
        return {"variant": variant}
    if variant == "select":
        sel = space["select"]
        params = {"variant": variant,
                  "gate": trial.suggest_categorical("gate", sel["gate"]),
                  "thresholds": trial.suggest_categorical("thresholds", sel["thresholds"]),
                  "negative": trial.suggest_categorical("negative", sel["negative"]),
                  "merge": trial.suggest_categorical("merge", sel["merge"])}
        if params["negative"] == "score-split":
            params["split_t"] = trial.suggest_float("split_t", *sel["split_t"])
            params["flip"] = trial.suggest_categorical("flip", [False, True])
        return params
    soft = space["soft"]
    if variant == "joint":
        return {"variant": variant, **{key: trial.suggest_categorical(key, soft[key])
                                       for key in ("spread", "negative_split")}}
    params = {"variant": variant, "weight_gate": trial.suggest_categorical("weight_gate", soft["weight_gate"])}
    if params["weight_gate"] == "entropy":
        params["gate_quantile"] = trial.suggest_float("gate_quantile", *soft["gate_quantile"])
    for key in ("spread", "negative_split", "uniform"):
        params[key] = trial.suggest_categorical(key, soft[key])
    return params


def anchor_trials(space: dict) -> list[dict]:
    """The simple structures every fold's search evaluates first (``space.anchors``).

    Speech alone (the null model: nothing fitted, so the one-SE choice keeps it when text adds
    nothing measurable), a single-weight log-linear fusion for each text distribution in the
    space, then the published procedure: the search is never worse than them for want of trying them.
    """
    if not space["anchors"]:
        return []
    soft = space["soft"]
    out = [{"variant": "speech"}] if "speech" in space["variants"] else []
    if "loglinear" in space["variants"] and "none" in soft["weight_gate"] and 0.0 in soft["uniform"]:
        out += [{"variant": "loglinear", "weight_gate": "none", "spread": spread, "negative_split": split,
                 "uniform": 0.0} for spread in soft["spread"] for split in soft["negative_split"]]
    if "joint" in space["variants"]:
        out += [{"variant": "joint", "spread": spread, "negative_split": split}
                for spread in soft["spread"] for split in soft["negative_split"]]
    if "published" in space["variants"]:
        out.append({"variant": "published"})
    return out


def space_for(space: dict, tuning: dict[str, ScoreArrays]) -> dict:
    """``space`` as it applies to these tuning arrays: without ``joint`` where they carry a single text path,
    refused (naming the key) where a candidate grid would not fit in memory on the largest tuning set."""
    _refuse_oversized_grids(space, tuning)
    if "joint" not in space["variants"] or all(a.texts for a in tuning.values()):
        return space
    variants = [v for v in space["variants"] if v != "joint"]
    if not variants:
        raise InputError("tune.space.variants: joint fusion needs further text paths (text_*:NAME columns), and the "
                         "score table has none; add another variant")
    return {**space, "variants": variants}


def _refuse_oversized_grids(space: dict, tuning: dict[str, ScoreArrays]) -> None:
    """Estimate the largest arrays a trial builds (float64) and refuse a space whose grids cannot fit."""
    if not tuning:
        return
    n = max(len(a) for a in tuning.values())
    k = next(iter(tuning.values())).labels.k
    groups = max(int(a.group.max()) + 1 if a.group is not None and len(a) else 1 for a in tuning.values())
    sel, soft = space["select"], space["soft"]

    def steps(spec: dict) -> int:
        count = spec.get("steps", 40)
        return min(count, n) if "quantiles" in spec else count
    if "select" in space["variants"]:
        cells = (steps(sel["tau_h"]) + 1) * (steps(sel["tau_v"]) + 1)
        refuse_oversized("tune.space.select.tau_h/tau_v steps", f"a {cells:,}-cell threshold grid",
                         cells * (groups * 2 * k + 3) * 8 * 10)   # channels × the sums, metrics and concurrent trials
    if {"loglinear", "average"} & set(space["variants"]):
        refuse_oversized("tune.space.soft.w.steps", f"{steps(soft['w']):,} weights", steps(soft["w"]) * n * 8 * 3)
    paths = max(len(a.texts) for a in tuning.values())
    if "joint" in space["variants"] and paths:
        combos = steps(soft["joint_w"]) ** (paths + 1)
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


def fit_trial(params: dict, a: ScoreArrays, space: dict, objective: Objective = Objective()) -> TrialResult:
    """Optimize the continuous parameters of a sampled structure on tuning arrays ``a``, maximizing ``objective``
    (the published procedure keeps the paper's pooled criterion)."""
    if params["variant"] == "speech":
        return TrialResult({"kind": "speech"}, objective.score(a.y, a.speech, a.group, a.labels.k), 1)
    if params["variant"] == "published":
        return TrialResult(*published_procedure(a, objective.metric))
    if params["variant"] == "select":
        return _select_trial(params, a, space["select"], objective)
    return _soft_trial(params, a, space["soft"], objective)


def inner_scores(params: dict, a: ScoreArrays, space: dict, objective: Objective
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


def run_trial(params: dict, a: ScoreArrays, space: dict, objective: Objective = Objective()) -> TrialResult:
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


def _select_trial(params: dict, a: ScoreArrays, sel: dict, objective: Objective) -> TrialResult:
    gate = params["gate"]
    negative_cfg = _negative_config(params, a.labels)
    negative = NegativeMapping.from_config(negative_cfg, a.labels)
    h_op, v_op = GATES[gate]
    if params["thresholds"] == "global":
        th = candidates(sel["tau_h"], a.h) if h_op else np.zeros(1)
        tv = candidates(sel["tau_v"], a.v) if v_op else np.zeros(1)
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


def _per_class_ascent(a: ScoreArrays, gate: str, negative: NegativeMapping, sel: dict,
                      objective: Objective) -> tuple[dict, dict, int]:
    """Per-class thresholds by coordinate ascent: class surfaces add independent count changes (per group, so
    any aggregation of the groups is scored exactly)."""
    k = a.labels.k
    h_op, v_op = GATES[gate]
    base_tp, base_pred, support = group_base_counts(a)                  # (G, K)
    surfaces, grids = [], []
    for c in range(k):
        rows = a.speech == c
        th = candidates(sel["tau_h"], a.h[rows]) if h_op else np.zeros(1)
        tv = candidates(sel["tau_v"], a.v[rows]) if v_op else np.zeros(1)
        # one extra candidate per axis that admits no row (H, V ≥ 0) = "never switch"
        th = np.r_[th, NEVER[h_op]] if h_op else th
        tv = np.r_[tv, NEVER[v_op]] if v_op else tv
        surfaces.append(group_deltas(a, th, tv, gate, negative, rows=rows))     # (G, A, B, K) each
        grids.append((th, tv))
    choice = [(len(th) - 1, len(tv) - 1) for th, tv in grids]      # start: no class switches
    n_configs = 0
    for _ in range(sel["rounds"]):
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


def joint_weight_grid(spec: dict, n_paths: int) -> np.ndarray:
    """Every combination (C, n_paths) of per-path weights from the ``joint_w`` candidates whose sum is at most 1."""
    values = candidates(spec, np.array([]))
    grid = np.stack(np.meshgrid(*[values] * n_paths, indexing="ij"), axis=-1).reshape(-1, n_paths)
    return grid[grid.sum(axis=1) <= 1.0 + 1e-9]


JOINT_CHUNK = 64
"""Weight combinations fused at once in a joint trial (bounds its memory to chunk × rows × K floats)."""


def _joint_predictions(params: dict, a: ScoreArrays, soft: dict) -> tuple[np.ndarray, dict, np.ndarray]:
    """(weight combinations (C, P), configuration without ``w``, fused labels for each combination (C, n))."""
    text = TextDistribution(params["spread"], params["negative_split"])
    paths = a.paths
    grid = joint_weight_grid(soft["joint_w"], len(paths))
    log_p = np.log(np.maximum(a.p, EPS))
    log_q = [np.log(np.maximum(text.apply(a, path), EPS)) for path in paths]
    preds = np.concatenate([np.argmax(JointRule.combine(log_p, log_q, grid[i:i + JOINT_CHUNK]), axis=-1)
                            for i in range(0, len(grid), JOINT_CHUNK)])
    return grid, {"kind": "joint", "text": text.to_config()}, preds


def _soft_predictions(params: dict, a: ScoreArrays, soft: dict) -> tuple[np.ndarray, dict, np.ndarray]:
    """(weight grid, configuration without ``w``, fused labels for every weight: (W, n)) in one batched pass."""
    if params["variant"] == "joint":
        return _joint_predictions(params, a, soft)
    weights = candidates(soft["w"], np.array([]))
    gate = params["weight_gate"]
    text = TextDistribution.from_config({k: params[k] for k in ("spread", "negative_split", "uniform") if k in params})
    config: dict = {"kind": params["variant"], "weight_gate": gate, "text": text.to_config()}
    if gate == "entropy":
        config["tau_h"] = float(np.quantile(a.h, params["gate_quantile"]))
    w = weights[:, None, None] * weight_scale(a, gate, config.get("tau_h", 0.0))[None, :, None]   # (W, n, 1)
    fused = RULES[params["variant"]].combine(a.p, text.apply(a), w)
    return weights, config, np.argmax(fused, axis=2)


def _soft_trial(params: dict, a: ScoreArrays, soft: dict, objective: Objective) -> TrialResult:
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
    held = scores_from_confusion(per_group[np.arange(n_groups), refit])[objective.metric]
    return replace(result, inner=tuple(float(x) for x in held), n_configs=n_w * (n_groups + 1))
