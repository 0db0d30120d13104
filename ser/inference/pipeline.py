"""Inference pipeline planning (pure: no Ray, no torch): scoring rows, one row per decoded utterance, GPU checks.

``jobs.infer`` turns an ``InferConfig`` into Ray Data stages; the settings themselves live in ``ser.config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ser._util.io import safe_name

if TYPE_CHECKING:
    from ser.config.backends import StageSpec
    from ser.config import InferConfig


def check_gpus(stages: "InferConfig", available: float) -> None:
    """Refuse, naming the stage, when its actors ask for more GPUs than the cluster has (Ray would wait forever)."""
    for spec in (stages.speech, stages.asr, stages.sentiment):
        if not spec.enabled:
            continue
        sched = spec.scheduling
        need = sched.num_gpus * sched.actors
        if need > available:
            raise RuntimeError(f"infer.{spec.stage} asks for {sched.actors} actor(s) × {sched.num_gpus} GPU = {need} "
                               f"GPU(s), but the Ray cluster has {available:g}; lower infer.{spec.stage}.num_gpus/actors "
                               f"or add GPU nodes")


def group_scorings(rows: pd.DataFrame) -> pd.DataFrame:
    """Scoring rows → one row per utterance whose ``scorings`` lists every (model fold, split) to score it with,
    so the audio is decoded once however many fold models score it (``ser.inference.backends.expand_scorings`` undoes it)."""
    keys = ["corpus", "utt_id"]
    tags = rows["model_fold"].map(safe_name) + "=" + rows["split"].astype(str)
    scorings = tags.groupby([rows[k] for k in keys], sort=False).agg(";".join).rename("scorings")
    utterances = rows.drop(columns=["model_fold", "split"]).drop_duplicates(keys)
    return utterances.merge(scorings.reset_index(), on=keys, how="left").reset_index(drop=True)


def longest_first(utterances: pd.DataFrame) -> pd.DataFrame:
    """Utterance rows (of :func:`group_scorings`) ordered by decreasing speech work: length × fold models that
    score it. Length is ``duration_s`` where the manifest gives it for every row, else the audio file's size.

    Actors then take the longest batches first and finish nearer together (a batch left for the end is a short
    one: at real model sizes on 2 cores the last actor ended 0.1–2.5 s after the first in three runs, 0–5.1 s
    in five without), and a batch holds utterances of about one length, which is what GPU sub-batches pad to."""
    durations = pd.to_numeric(utterances["duration_s"], errors="coerce") if "duration_s" in utterances else None
    if durations is not None and durations.notna().all():
        length = durations.to_numpy(dtype=float)
    else:
        length = np.array([_file_size(p) for p in utterances["path"]], dtype=float)
    work = length * (utterances["scorings"].str.count(";").to_numpy() + 1)
    order = np.argsort(-work, kind="stable")
    return utterances.iloc[order].reset_index(drop=True)


def _file_size(path: str) -> int:
    """Bytes of an audio file; 0 when it cannot be read (its decode fails and is recorded, whatever its place)."""
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def speech_cpu_threads(spec: "StageSpec", cluster_cpus: float, actors: int) -> int | None:
    """Torch threads per speech actor on CPU: as configured, else the cluster's cores shared by the ``actors``
    actors that run the speech model (its own pool, or the chained pool).

    Ray pins an actor's torch to its ``num_cpus`` (1 by default), but speech is ~99% of the work (the benchmark's
    time split), so on CPU the speech actors get the cores; GPU actors keep Ray's setting (None).
    """
    if spec.scheduling.num_gpus > 0:
        return None
    return spec.options.cpu_threads or max(1, int(cluster_cpus) // actors)


ACTOR_BASE_BYTES = 512 << 20
"""Memory a chained actor takes before its models: the interpreter with torch, transformers and Ray's worker."""
WEIGHT_MEMORY = 1.25
"""Memory per byte of model files (half-precision weights counted at fp32 size, as a CPU loads them) once loaded,
with activations and allocator slack:
measured, a second chained actor holding 2.5 GiB of files (4 × wav2vec2-base + XLM-R base) added 2.4–2.7 GiB."""


def chain_pool_size(setting: "int | str", cpus: float, memory: float, model_bytes: int | None, configured: int,
                    batches: int) -> int:
    """Actors of the chained stage pool (``infer.chain_actors``): a number as given; ``auto``, on a Ray that ser
    started (``memory``: the bytes Ray may give tasks), one per core while every actor's models (``model_bytes``,
    each actor loads them all) fit in that memory, and no more than there are ``batches``; ``configured`` (the
    speech stage's actors) when the models' size is not known (a hub model not downloaded yet, a user's class).

    One actor per core, each on one thread, beat one actor on every core: wav2vec2-base-sized models scored
    2–12 s clips in 72–78 s against 94–107 s on 2 cores, and a tiny Whisper decoded 3× faster (a decoder step is
    too small to share out across threads)."""
    if setting != "auto":
        return int(setting)
    if model_bytes is None:
        return configured
    per_actor = ACTOR_BASE_BYTES + WEIGHT_MEMORY * model_bytes
    return max(1, min(int(cpus), int(memory // per_actor), batches))


def chains_stages(setting: str, local: bool, stage_gpus: list[float]) -> bool:
    """Whether the model stages run as one chained actor pool (``infer.chain_stages``): always, never, or (auto) on
    a Ray that ser started itself when no stage asks for a GPU."""
    if setting != "auto":
        return setting == "always"
    return local and not any(stage_gpus)


def fitted_cpu_reservations(reservations: list[float], cluster_cpus: float) -> list[float]:
    """Each actor stage's CPU reservation scaled down so that every stage's actors fit at once on a machine of
    ``cluster_cpus`` CPUs (unchanged when they already fit).

    Ray Data streams batches through all stages together only while each stage has an actor: on a 2-CPU laptop,
    four stages reserving a CPU each ran two at a time, each waiting for the one before it to finish and free
    its CPU. A reservation is a scheduling promise, not a limit, so sharing the cores this way costs nothing.
    """
    total = sum(reservations)
    if total <= cluster_cpus or total == 0:
        return list(reservations)
    return [r * cluster_cpus / total for r in reservations]


def model_versions(stages: "InferConfig", folds: list[str]) -> dict[str, object]:
    """The exact version of every pretrained model the stages load (per fold for a ``{fold}`` template):
    recorded in run.json and part of the infer signature, so a changed model reruns inference."""
    from ser.inference.backends import fill_fold
    from ser.inference.backends.hub import model_version
    from ser.config.backends import TINY_WHISPER

    out: dict[str, object] = {}
    specs = {"speech": stages.speech, "asr": stages.asr, "sentiment": stages.sentiment}
    for path in stages.text_paths:
        specs[f"sentiment:{path.name}"] = path.sentiment
        if path.asr is not None:
            specs[f"asr:{path.name}"] = path.asr
    for stage, spec in specs.items():
        ref = getattr(spec.options, "model", None)
        if not spec.enabled or ref is None or spec.backend == "acoustic" or ref == TINY_WHISPER:
            continue
        revision = spec.options.revision
        if spec.backend == "whisper" and "/" not in ref:
            ref = _whisper_repo(ref)
        if "{fold}" in ref:
            out[stage] = {fold: model_version(fill_fold(ref, fold), revision) for fold in folds}
        else:
            out[stage] = model_version(ref, revision)
    return out


def _whisper_repo(name: str) -> str:
    """A faster-whisper size name ('tiny', 'large-v3') → the hub repository it downloads."""
    try:
        from faster_whisper.utils import _MODELS
    except ImportError:
        return name
    return _MODELS.get(name, name)
