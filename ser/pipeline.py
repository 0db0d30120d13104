"""Inference pipeline settings (``infer:`` in a study config): stage specs, validation, GPU checks.

Pure: no Ray, no torch. ``jobs.infer`` turns a validated spec into Ray Data stages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ser.checks import is_count, is_number
from ser.io import safe_name

SCHEDULING = {"actors": 1, "num_gpus": 0.0, "num_cpus": 1.0, "batch_size": 16}
STAGE_DEFAULTS: dict[str, dict[str, Any]] = {
    "speech": {"backend": "acoustic", "checkpoint": "{out}/models/acoustic-{fold}.pkl", "label_map": None,
               "fp16": True, "sub_batch": 8, "cpu_threads": None, **SCHEDULING},
    "asr": {"backend": "none", "model": None, "language": "en", "beam_size": 1, "vad_filter": False,
            "compute_type": "default", "sub_batch": 8, **SCHEDULING},
    "sentiment": {"backend": "vader", "model": None, "label_map": None, "lowercase": False, "max_length": 128,
                  "fp16": True, "sub_batch": 32, **SCHEDULING, "batch_size": 64},
}
BACKENDS = {"speech": ("acoustic", "hf"), "asr": ("none", "whisper"), "sentiment": ("vader", "hf")}
INFER_DEFAULTS = {"manifest": None, "shard_rows": 256, "in_sample": False, "val_share": 0.1,
                  "speech": None, "asr": None, "sentiment": None}


def resolve_stages(cfg: dict) -> dict:
    """Fill defaults and check keys and values; errors name ``infer.<stage>.<key>``."""
    unknown = sorted(set(cfg) - set(INFER_DEFAULTS))
    if unknown:
        raise ValueError(f"infer: unknown key(s) {unknown}; allowed: {sorted(INFER_DEFAULTS)}")
    out = {**INFER_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    for stage, defaults in STAGE_DEFAULTS.items():
        raw = cfg.get(stage) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"infer.{stage} must be a mapping")
        unknown = sorted(set(raw) - set(defaults))
        if unknown:
            raise ValueError(f"infer.{stage}: unknown key(s) {unknown}; allowed: {sorted(defaults)}")
        spec = {**defaults, **raw}
        if spec["backend"] not in BACKENDS[stage]:
            raise ValueError(f"infer.{stage}.backend: '{spec['backend']}' is not one of {list(BACKENDS[stage])}")
        for key in ("actors", "batch_size", "sub_batch"):
            if not is_count(spec[key]):
                raise ValueError(f"infer.{stage}.{key} must be a positive integer, got {spec[key]!r}")
        if spec.get("cpu_threads") is not None and not is_count(spec["cpu_threads"]):
            raise ValueError(f"infer.{stage}.cpu_threads must be a positive integer or null, got {spec['cpu_threads']!r}")
        for key in ("num_gpus", "num_cpus"):
            if not is_number(spec[key]) or spec[key] < 0:
                raise ValueError(f"infer.{stage}.{key} must be a number >= 0, got {spec[key]!r}")
        needs_model = (stage == "asr" and spec["backend"] == "whisper") or \
                      (stage in ("speech", "sentiment") and spec["backend"] == "hf")
        if needs_model and not spec.get("model" if stage != "speech" else "checkpoint"):
            raise ValueError(f"infer.{stage}: backend '{spec['backend']}' needs "
                             f"'{'checkpoint' if stage == 'speech' else 'model'}'")
        out[stage] = spec
    if not isinstance(out["in_sample"], bool):
        raise ValueError(f"infer.in_sample must be true or false, got {out['in_sample']!r}")
    if not is_number(out["val_share"]) or not 0 <= out["val_share"] < 1:
        raise ValueError(f"infer.val_share must be in [0, 1), got {out['val_share']!r}")
    if not is_count(out["shard_rows"]):
        raise ValueError(f"infer.shard_rows must be a positive integer, got {out['shard_rows']!r}")
    return out


def check_gpus(stages: dict, available: float) -> None:
    """Refuse, naming the stage, when its actors ask for more GPUs than the cluster has (Ray would wait forever)."""
    for name in ("speech", "asr", "sentiment"):
        spec = stages[name]
        if name == "asr" and spec["backend"] == "none":
            continue
        need = spec["num_gpus"] * spec["actors"]
        if need > available:
            raise RuntimeError(f"infer.{name} asks for {spec['actors']} actor(s) × {spec['num_gpus']} GPU = {need} "
                               f"GPU(s), but the Ray cluster has {available:g}; lower infer.{name}.num_gpus/actors "
                               f"or add GPU nodes")


def scoring_rows(manifest: pd.DataFrame, in_sample: bool = False, val_share: float = 0.1) -> pd.DataFrame:
    """The (utterance, scoring model) rows to infer: each utterance by its own fold's model (split test);
    with ``in_sample``, also by every other fold's model (split train, or val for a stable ``val_share``
    of each model's rows) — what the ``val``/``trainval`` tuning protocols need."""
    own = manifest.assign(model_fold=manifest["fold"], split="test")
    if not in_sample:
        return own
    parts = [own]
    for k in sorted(manifest["fold"].unique()):
        other = manifest[manifest["fold"] != k]
        draw = pd.util.hash_array((other["utt_id"].astype(str) + "|" + str(k)).to_numpy()) % 10_000
        parts.append(other.assign(model_fold=k, split=np.where(draw < val_share * 10_000, "val", "train")))
    return pd.concat(parts, ignore_index=True)


def group_scorings(rows: pd.DataFrame) -> pd.DataFrame:
    """Scoring rows → one row per utterance whose ``scorings`` lists every (model fold, split) to score it with,
    so the audio is decoded once however many fold models score it (``ser.backends.expand_scorings`` undoes it)."""
    keys = ["corpus", "utt_id"]
    tags = rows["model_fold"].map(safe_name) + "=" + rows["split"].astype(str)
    scorings = tags.groupby([rows[k] for k in keys], sort=False).agg(";".join).rename("scorings")
    utterances = rows.drop(columns=["model_fold", "split"]).drop_duplicates(keys)
    return utterances.merge(scorings.reset_index(), on=keys, how="left").reset_index(drop=True)


def speech_cpu_threads(spec: dict, cluster_cpus: float) -> int | None:
    """Torch threads per speech actor on CPU: as configured, else the cluster's cores shared by the speech actors.

    Ray pins an actor's torch to its ``num_cpus`` (1 by default), but speech is ~99% of the work (the benchmark's
    time split), so on CPU the speech actors get the cores; GPU actors keep Ray's setting (None).
    """
    if spec["num_gpus"] > 0:
        return None
    return spec["cpu_threads"] or max(1, int(cluster_cpus) // spec["actors"])
