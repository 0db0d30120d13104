"""Experiment tracking (``track``): each stage's results logged to MLflow, TensorBoard or Weights & Biases.

A stage is one tracked run: the resolved config and provenance as params, the verdict and provenance as tags, the
mean over folds of UA / WA / macro-F1 / weighted F1 of each headline system as metrics (``SYSTEM/METRIC``), and one
child per fold with that fold's figures (MLflow: nested runs; TensorBoard: one log directory per fold; W&B: one run
per fold in the stage's group), plus the stage's files as artifacts where the tracker keeps files. The log is built
from the stage's results once it has finished, in the driver, so both search engines log the same layout. Off by
default; the tracker libraries are the ``track`` extra.
"""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ser.config import StudyConfig, TrackConfig
from ser.measures.metrics import METRICS
from ser._util.provenance import code_version, git_commit
from ser.evaluation.result_types import CrossTransfer, ScoredSystems, TunedSystems

HEADLINE_SYSTEMS = ("speech", "text", "oracle", "tuned")
"""Systems logged (with each further path's ``tuned:NAME`` and the best simple baseline as ``best_baseline``)."""
PARAM_CHARS = 500
"""Longer config values are cut to this many characters (MLflow's and W&B's limits lie above it)."""


@dataclass(frozen=True)
class StageLog:
    """What one stage logs: a run named ``name`` with params, tags, metrics, per-fold metrics and files."""

    name: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    folds: dict[str, dict[str, float]] = field(default_factory=dict)
    artifacts: tuple[Path, ...] = ()


def metric_key(system: str, metric: str) -> str:
    """``SYSTEM/METRIC`` with the characters trackers refuse in a key (``:``, brackets, commas) made ``_``."""
    return re.sub(r"[^\w\-./ ]", "_", f"{system}/{metric}")


def flat_params(data: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as ``section.key`` → text (lists and mappings as JSON), each at most ``PARAM_CHARS``."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:PARAM_CHARS]
    return out


def _systems(result: ScoredSystems) -> dict[str, str]:
    """Logged name → the result's system name."""
    have = result.mean
    shown = {s: s for s in HEADLINE_SYSTEMS if s in have}
    shown |= {s: s for s in have if s.startswith("tuned:")}
    base = result.baseline_verdict
    if base is not None and base.best in have:
        shown["best_baseline"] = base.best
    return shown


def stage_log(stage: str, cfg: StudyConfig, out: Path, result: ScoredSystems,
              artifacts: tuple[Path, ...] = ()) -> StageLog:
    """The log of a stage that scores systems per fold (``evaluate``, ``tune``)."""
    systems = _systems(result)
    metrics = {metric_key(name, m): float(result.mean[s][m]) for name, s in systems.items() for m in METRICS}
    folds = {str(f.fold): {metric_key(name, m): float(f.systems[s][m]) for name, s in systems.items()
                           for m in METRICS if s in f.systems} for f in result.folds}
    tags = {"ser.stage": stage, "ser.out": str(Path(out).resolve())}
    if isinstance(result, TunedSystems):
        objective = result.objective
        metrics[metric_key("tuned_minus_speech", objective)] = result.gain("tuned", objective)
        metrics["optimism"] = float(result.tuning.mean_optimism)
        for f in result.folds:
            folds[str(f.fold)]["optimism"] = float(f.best.optimism)
    base = result.baseline_verdict
    if base is not None:
        tags |= {"ser.verdict": f"{base.verdict} {base.best}", "ser.best_baseline": base.best}
        metrics[metric_key("tuned_minus_best_baseline", result.objective)] = float(base.tuned_minus_best)
    return StageLog(f"{Path(out).name} {stage}", _params(cfg), tags, metrics, folds, artifacts)


def cross_log(cfg: StudyConfig, out: Path, cross: CrossTransfer, artifacts: tuple[Path, ...] = ()) -> StageLog:
    """The log of the cross stage: each (tuned on → tested on) pair's tuned and speech means and the gain."""
    metrics = {}
    for pair, result in cross.pairs.items():
        src, dst = pair.split("->")
        for m in METRICS:
            tuned, speech = result.mean["tuned"][m], result.mean["speech"][m]
            metrics |= {metric_key(f"{src} to {dst}/tuned", m): tuned,
                        metric_key(f"{src} to {dst}/gain", m): tuned - speech}
    return StageLog(f"{Path(out).name} cross", _params(cfg), {"ser.stage": "cross", "ser.out": str(Path(out).resolve())},
                    metrics, {}, artifacts)


def files_log(stage: str, cfg: StudyConfig, out: Path, artifacts: tuple[Path, ...]) -> StageLog:
    """The log of a stage that only writes files (the report)."""
    return StageLog(f"{Path(out).name} {stage}", _params(cfg), {"ser.stage": stage, "ser.out": str(Path(out).resolve())},
                    {}, {}, artifacts)


def _params(cfg: StudyConfig) -> dict[str, str]:
    return {**flat_params(cfg.to_dict()), "ser.code": code_version(), "ser.git_commit": git_commit() or "none"}


MODULES = {"mlflow": "mlflow", "tensorboard": "tensorboardX", "wandb": "wandb"}
"""``track.backend`` → the module it needs (imported before a stage starts, so a missing one fails fast)."""


def check_tracker(track: TrackConfig) -> None:
    """Import the tracker ``track.backend`` needs, so a missing extra is named before any work is done."""
    if track.backend:
        importlib.import_module(MODULES[track.backend])


def log_stage(track: TrackConfig, out: Path, log: StageLog) -> None:
    """Send ``log`` to the tracker ``track.backend`` names (nothing when tracking is off)."""
    if track.backend:
        BACKENDS[track.backend](track, Path(out), log)


def _mlflow(track: TrackConfig, out: Path, log: StageLog) -> None:
    """A parent run with a nested run per fold; files as artifacts (under ``out/mlartifacts`` by default)."""
    import mlflow

    uri = track.uri or f"sqlite:///{out.resolve()}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(track.experiment)
    if experiment is None:
        location = None if track.uri else (out.resolve() / "mlartifacts").as_uri()
        mlflow.create_experiment(track.experiment, artifact_location=location)
    mlflow.set_experiment(track.experiment)
    with mlflow.start_run(run_name=log.name):
        mlflow.log_params(log.params)
        mlflow.set_tags(log.tags)
        mlflow.log_metrics(log.metrics)
        for path in log.artifacts:
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=path.name)
            elif path.exists():
                mlflow.log_artifact(str(path))
        for fold, metrics in log.folds.items():
            with mlflow.start_run(run_name=f"fold {fold}", nested=True):
                mlflow.set_tags({"ser.fold": fold, "ser.stage": log.tags["ser.stage"]})
                mlflow.log_metrics(metrics)


def _tensorboard(track: TrackConfig, out: Path, log: StageLog) -> None:
    """Event files under ``uri/STAGE`` and ``uri/STAGE/fold-FOLD``: scalars at step 0, the config as
    text. TensorBoard keeps no files, so artifacts are not logged."""
    from tensorboardX import SummaryWriter

    from ser._util.io import file_component

    root = Path(track.uri or out / "tensorboard") / file_component(log.tags["ser.stage"])
    with SummaryWriter(str(root)) as writer:
        writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in {**log.params, **log.tags}.items()))
        for key, value in log.metrics.items():
            writer.add_scalar(key, value, 0)
    for fold, metrics in log.folds.items():
        with SummaryWriter(str(root / f"fold-{file_component(fold)}")) as writer:
            for key, value in metrics.items():
                writer.add_scalar(key, value, 0)


def _wandb(track: TrackConfig, out: Path, log: StageLog) -> None:
    """A run for the stage and one per fold, grouped by the stage's name; offline (files under ``uri``, default
    ``out``) unless ``WANDB_MODE`` says otherwise; files as a W&B artifact."""
    import os

    import wandb

    mode = os.environ.get("WANDB_MODE", "offline")
    where = str(Path(track.uri or out).resolve())
    with wandb.init(project=track.experiment, dir=where, name=log.name, group=log.name, job_type=log.tags["ser.stage"],
                    config={**log.params, **log.tags}, mode=mode, reinit="create_new") as run:
        run.log(log.metrics)
        files = [p for p in log.artifacts if p.exists()]
        if files:
            artifact = wandb.Artifact(re.sub(r"[^\w\-.]", "-", log.name), type="ser-results")
            for path in files:
                (artifact.add_dir if path.is_dir() else artifact.add_file)(str(path))
            run.log_artifact(artifact)
    for fold, metrics in log.folds.items():
        with wandb.init(project=track.experiment, dir=where, name=f"{log.name} fold {fold}", group=log.name,
                        job_type="fold", config={"ser.fold": fold}, mode=mode, reinit="create_new") as run:
            run.log(metrics)


BACKENDS: dict[str, Callable[[TrackConfig, Path, StageLog], None]] = {
    "mlflow": _mlflow, "tensorboard": _tensorboard, "wandb": _wandb}
"""``track.backend`` → the function that logs a stage there."""
