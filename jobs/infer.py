"""``ser infer``: a Ray Data pipeline from a manifest to a score table and an errors table.

manifest → decode/resample (CPU tasks) → speech actors → [ASR actors] → sentiment actors (the last drops the
audio) → shards. The driver writes each finished batch as a shard under a temporary name and
renames it, so a killed run loses at most the batches in flight, and a rerun skips every
utterance already in a shard: nothing lost, nothing duplicated. The shards are then merged into
``scores.parquet`` (validated) and ``errors.parquet``.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, NoReturn

import numpy as np
import pandas as pd

from ser.inference.backends import fill_fold
from ser.config.backends import TINY_WHISPER, StageSpec
from ser.config import InferConfig
from ser._util.io import atomic_path, signature, write_parquet
from ser.data.labels import LabelSet
from ser._util.progress import progress
from ser.data.folds import scoring_rows
from ser.inference.backends.hub import model_bytes
from ser.inference.pipeline import (chain_pool_size, chains_stages, check_gpus, fitted_cpu_reservations,
                                   group_scorings, longest_first, speech_cpu_threads)
from ser.data.schema import validate

log = logging.getLogger(__name__)

SCORE_EXTRA = ["speaker", "session", "gender", "duration_s", "condition", "speech_worker"]


def _stage(spec: StageSpec, cls: type, **kwargs) -> dict:
    """map_batches arguments for an actor stage (an actor pool of ``actors``, GPUs and CPUs per actor)."""
    from ray.data import ActorPoolStrategy

    sched = spec.scheduling
    return dict(fn=cls, fn_constructor_kwargs=kwargs, batch_size=sched.batch_size,
                compute=ActorPoolStrategy(size=sched.actors), num_gpus=sched.num_gpus, num_cpus=sched.num_cpus)


def _backend_stage(spec: StageSpec, **extra) -> dict:
    """The registry's class for ``spec.backend``, constructed with the backend's options (plus ``extra``)."""
    return _stage(spec, spec.load_class(), **{**asdict(spec.options), **extra})


def _speech_stage(spec: StageSpec, labels: LabelSet, out: Path, cluster_cpus: float, actors: int,
                  features: dict[str, np.ndarray] | None = None) -> dict:
    """map_batches arguments of the speech stage, its model run by ``actors`` actors (its pool, or the chained
    pool) sharing the cluster's CPUs; ``features``: the acoustic features the training pass computed."""
    extra = {"model": acoustic_template(spec, out), "classes": labels.classes}
    if spec.backend == "hf":
        extra["cpu_threads"] = speech_cpu_threads(spec, cluster_cpus, actors)
    if features:
        extra["features"] = features
    return _backend_stage(spec, **extra)


def _chained(actor_stages: list[dict], actors: int, machine_cpus: float | None = None) -> dict:
    """The actor stages as one pool of ``actors`` :class:`~ser.inference.backends.chain.StageChain` actors, with the
    first (speech) stage's batch size and the most GPUs any stage asks for. On a Ray of ser's own
    (``machine_cpus``) each chain actor reserves its share of the machine's CPUs, which is also how many threads
    Ray lets the models in it use (it sets ``OMP_NUM_THREADS`` from the reservation); else the speech stage's CPUs.

    Ray's default queue of two batches per actor stays: handing a batch only to a free actor ended real-size runs
    together (0.3–0.5 s apart instead of 2–2.5 s) but cost a dispatch round trip per batch, 15% of the tiny
    bench's time."""
    from ray.data import ActorPoolStrategy

    from ser.inference.backends.chain import StageChain

    first = actor_stages[0]
    return {**first, "fn": StageChain, "compute": ActorPoolStrategy(size=actors),
            "num_gpus": max(stage["num_gpus"] for stage in actor_stages),
            "num_cpus": machine_cpus / actors if machine_cpus else first["num_cpus"],
            "fn_constructor_kwargs": {"stages": [(stage["fn"], stage["fn_constructor_kwargs"])
                                                 for stage in actor_stages]}}


def _dropping_audio(stage: dict) -> dict:
    """The pipeline's last actor stage, run inside a :class:`~ser.inference.backends.chain.StageChain` (the chain it
    already is, or one of this stage alone) that drops the decoded audio from its output. A ``drop_columns``
    step of its own started a fresh Ray worker process for most batches (7 for 12 batches on 2 cores: Ray ends
    idle workers beyond one per CPU within a second), each ~1.7 CPU-s taken from the actors on a small machine."""
    from ser.inference.backends.chain import StageChain

    kwargs = stage["fn_constructor_kwargs"] if stage["fn"] is StageChain else \
        {"stages": [(stage["fn"], stage["fn_constructor_kwargs"])]}
    return {**stage, "fn": StageChain, "fn_constructor_kwargs": {**kwargs, "drop": ("audio",)}}


def _models_bytes(actor_stages: list[dict], folds: list[str]) -> int | None:
    """Bytes of every model file the stages load (a ``{fold}`` template once per fold), on this machine; None when
    one is not here (a hub model not yet downloaded). A stage without a ``model`` (VADER) loads none."""
    total = 0
    for stage in actor_stages:
        kwargs = stage["fn_constructor_kwargs"]
        if kwargs.get("model") is None:
            continue
        refs = {fill_fold(kwargs["model"], fold) for fold in folds}
        sizes = [model_bytes(ref, kwargs.get("revision")) for ref in refs]
        if None in sizes:
            return None
        total += sum(sizes)
    return total


def _fit_local_machine(actor_stages: list[dict], cpus: float) -> list[dict]:
    """On a Ray that ser started on this machine, the actor stages' CPU reservations scaled to fit its CPUs all at
    once (``ser.inference.pipeline.fitted_cpu_reservations``); a cluster keeps them as configured (its autoscaler may add
    nodes)."""
    from .ray_env import local_ray

    wanted = [stage["num_cpus"] * stage["compute"].max_size for stage in actor_stages]
    if not local_ray() or sum(wanted) <= cpus:
        return actor_stages
    fitted = fitted_cpu_reservations(wanted, cpus)
    log.debug(f"{len(actor_stages)} actor stages reserve {sum(wanted):g} CPUs on a {cpus:g}-CPU machine: scaled to "
              f"{fitted[0] / wanted[0]:.2f}x so that every stage runs at once")
    return [{**stage, "num_cpus": stage["num_cpus"] * f / w} if w else stage
            for stage, f, w in zip(actor_stages, fitted, wanted)]


def path_sources(stages: InferConfig) -> dict[str, str]:
    """Each further text path's transcript column: ``reference_transcript``, or the column of the first stage
    running its ASR model (paths with the same ASR share one transcript: each ASR model runs once)."""
    columns = {signature(stages.asr): "transcript"} if stages.asr.enabled else {}
    return {path.name: "reference_transcript" if path.asr is None else
            columns.setdefault(signature(path.asr), f"transcript:{path.name}") for path in stages.text_paths}


def text_stages(stages: InferConfig, out: Path) -> list[dict]:
    """map_batches arguments of every ASR and sentiment stage, each path's sentiment after its transcript."""
    def asr(spec: StageSpec, target: str) -> dict:
        return _backend_stage(spec, model=ensure_builtin_whisper(spec.options.model, out), target=target,
                              label=spec.options.model)

    result = [asr(stages.asr, "transcript")] if stages.asr.enabled else []
    result.append(_backend_stage(stages.sentiment))
    sources = path_sources(stages)
    for path in stages.text_paths:
        if sources[path.name] == f"transcript:{path.name}":
            result.append(asr(path.asr, sources[path.name]))
        result.append(_backend_stage(path.sentiment, source=sources[path.name], suffix=f":{path.name}"))
    return result


def ensure_builtin_whisper(model: str, out: Path) -> str:
    """``ser:tiny-random`` (the demo's and CI's offline ASR: a random-initialized tiny Whisper, built locally once
    under ``out/models``, that ends every transcript at once: they are empty) → its directory; any other model
    unchanged."""
    if model != TINY_WHISPER:
        return model
    from ser.testing.tiny_models import build_whisper

    path = out / "models" / "tiny-whisper"
    if not (path / "model.bin").exists():
        build_whisper(path, silent=True)
    return str(path)


def ensure_builtin_whisper_models(stages: InferConfig, out: Path) -> None:
    """Build every ``ser:tiny-random`` an ASR stage names (:func:`ensure_builtin_whisper`)."""
    specs = [stages.asr, *(path.asr for path in stages.text_paths if path.asr is not None)]
    for spec in specs:
        if spec.enabled:
            ensure_builtin_whisper(spec.options.model, out)


def _in_background(fn: Callable[..., None], *args: Any) -> Future:
    """``fn(*args)`` on a thread of its own: building the offline tiny Whisper imports torch and transformers
    (~5 s), which overlaps Ray's start and the acoustic training pass instead of adding to them."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ser-build")
    future = pool.submit(fn, *args)
    pool.shutdown(wait=False)
    return future


def acoustic_template(spec: StageSpec, out: Path) -> str:
    """The speech model path template with ``{out}`` filled (``{fold}`` stays)."""
    return spec.options.model.replace("{out}", str(out))


def ensure_acoustic_models(manifest: pd.DataFrame, spec: StageSpec, labels: LabelSet, out: Path
                           ) -> dict[str, np.ndarray] | None:
    """Train the per-fold acoustic classifiers (features extracted with Ray Data) if any is missing; return the
    features it computed, {audio path: vector}, for the speech stage to score with (None when nothing was trained)."""
    if spec.backend != "acoustic":
        return None
    template = acoustic_template(spec, out)
    if all(Path(fill_fold(template, k)).exists() for k in manifest["fold"].unique()):
        return None
    from ser.inference.backends.acoustic import featurize_batch, train_fold_models

    t0 = time.perf_counter()
    rows = dataset_of(manifest[["utt_id", "path"]], 64).map_batches(featurize_batch, batch_size=32).to_pandas()
    rows = rows.set_index("utt_id").loc[manifest["utt_id"]]
    ok = rows["ok"].to_numpy(dtype=bool)
    if not ok.any():
        stop_nothing_readable(manifest[["utt_id", "corpus", "path"]].assign(
            error=rows["error"].to_numpy(), severity="error", stage="audio").reset_index(drop=True), out)
    feats = np.stack(rows["features"].to_numpy()[ok])
    log.debug(f"acoustic features of {ok.sum()} of {len(ok)} utterances in {time.perf_counter() - t0:.1f} s"
        + (f"; {len(ok) - ok.sum()} unreadable (errors.parquet)" if not ok.all() else ""))
    train_fold_models(manifest[ok], template, labels.classes, features=feats,
                      folds=sorted(manifest["fold"].unique()))
    return dict(zip(manifest["path"].astype(str).to_numpy()[ok], feats))


def stop_nothing_readable(errors: pd.DataFrame, out: Path) -> NoReturn:
    """Write ``errors.parquet`` and stop: '0 of N audio files readable; first: <reason>' (the reason names the path)."""
    write_parquet(errors, out / "errors.parquet")
    raise RuntimeError(f"0 of {len(errors)} audio files readable; first: {errors['error'].iloc[0]}; every failure "
                       f"is in errors.parquet (wrong corpus root or manifest paths?)")


def dataset_of(df: pd.DataFrame, rows_per_block: int):
    """A Ray dataset of ``df`` in blocks of ``rows_per_block`` rows, in order: blocks are what Ray Data hands to
    actors, so one block per batch keeps every actor busy. ``from_blocks`` keeps the blocks as given and reads their
    metadata here; ``from_pandas`` ran a Ray task per block for it, ~1 s before the actors were even asked for (the
    first tasks import Ray Data in the pre-started workers), and the actors then waited for new worker processes
    (7 started instead of 5 on 2 cores)."""
    import ray

    df = df.reset_index(drop=True)
    return ray.data.from_blocks([df.iloc[i:i + rows_per_block] for i in range(0, max(len(df), 1), rows_per_block)])


def _written_keys(shards: Path) -> set[tuple[str, str]]:
    """(utt_id, model_fold) of every row already in a shard."""
    done: set[tuple[str, str]] = set()
    for f in shards.glob("*.parquet"):
        part = pd.read_parquet(f, columns=["utt_id", "model_fold"])
        done.update(zip(part["utt_id"], part["model_fold"]))
    return done


def _write_shard(shards: Path, batch: pd.DataFrame) -> None:
    with atomic_path(shards / f"part-{uuid.uuid4().hex}.parquet") as tmp:
        batch.to_parquet(tmp, index=False)


def run_infer(manifest: pd.DataFrame, stages: InferConfig, labels: LabelSet, out: Path,
              speech_stage: tuple[type, dict] | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every manifest row not yet in ``out/shards``; return (scores, errors) merged from all shards.

    ``speech_stage`` = (class, constructor kwargs) replaces the configured speech backend with any callable
    class of the same contract (bring your own model), scheduled with ``stages.speech``'s resources.
    """
    import ray

    from .ray_env import ensure_ray, local_ray
    from ser.inference.backends.audio_stage import load_batch

    out = Path(out)
    shards = out / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    rows = scoring_rows(manifest, stages.in_sample, stages.val_share)
    done = _written_keys(shards)
    todo = rows[[key not in done for key in zip(rows["utt_id"], rows["model_fold"])]]
    whisper_built = _in_background(ensure_builtin_whisper_models, stages, out) if len(todo) else None
    ensure_ray()
    check_gpus(stages, ray.cluster_resources().get("GPU", 0.0))
    log.log(logging.INFO if len(done) else logging.DEBUG,
            f"{len(rows)} rows ({len(manifest)} utterances), {len(done)} already scored, {len(todo)} to go")
    if len(todo):
        features = None if speech_stage else ensure_acoustic_models(manifest, stages.speech, labels, out)
        whisper_built.result()
        if not stages.asr.enabled:
            todo = todo.assign(transcript_source="reference")
        if "transcript" in todo:                            # the corpus' own transcripts: kept for WER
            todo = todo.assign(reference_transcript=todo["transcript"].fillna("").astype(str))
        batch_size = stages.speech.scheduling.batch_size
        utterances = longest_first(group_scorings(todo))
        ds = dataset_of(utterances, batch_size)
        cpus = ray.cluster_resources().get("CPU", 1.0)

        def speech(actors: int) -> dict:
            return _stage(stages.speech, speech_stage[0], **speech_stage[1]) if speech_stage else \
                _speech_stage(stages.speech, labels, out, cpus, actors, features)

        actor_stages = [speech(stages.speech.scheduling.actors), *text_stages(stages, out)]
        local = local_ray()
        if chains_stages(stages.chain_stages, local, [stage["num_gpus"] for stage in actor_stages]):
            # a user's speech class without a ``model`` argument: its memory is unknown
            sized = local and (speech_stage is None or "model" in speech_stage[1])
            actors = chain_pool_size(stages.chain_actors, cpus, ray.available_resources().get("memory", 0.0),
                                     _models_bytes(actor_stages, list(todo["model_fold"].unique())) if sized else None,
                                     stages.speech.scheduling.actors, -(-len(utterances) // batch_size))
            log.debug(f"{len(actor_stages)} model stages chained in a pool of {actors} actor(s) (infer.chain_stages: "
                      f"{stages.chain_stages}, infer.chain_actors: {stages.chain_actors})")
            actor_stages = [_chained([speech(actors), *actor_stages[1:]], actors, cpus if local else None)]
        actor_stages = _fit_local_machine(actor_stages, cpus)
        actor_stages[-1] = _dropping_audio(actor_stages[-1])
        # decoding reserves what the first actor stage (speech, or the chain) does, so Ray Data fuses the two (no
        # CPU left idle between them)
        ds = ds.map_batches(load_batch, batch_size=batch_size, num_cpus=actor_stages[0]["num_cpus"] or 1)
        for stage in actor_stages:
            ds = ds.map_batches(**stage)
        t0, audio_s = time.perf_counter(), 0.0
        with progress(len(todo), "scored", "rows") as advance:
            for batch in ds.iter_batches(batch_size=stages.shard_rows, batch_format="pandas"):
                _write_shard(shards, batch)
                advance(len(batch))
                audio_s += float(batch["duration_s"].sum())
        log.debug(f"{audio_s:.0f} s of audio at {audio_s / (time.perf_counter() - t0):.1f} audio-s/s")
    return merge_shards(shards, labels, out, path_sources(stages))


def _fill_text(rows: pd.DataFrame) -> pd.DataFrame:
    """In-sample rows (split train/val) take the text results (every path's) of their utterance's test row."""
    test = rows["split"] == "test"
    if test.all():
        return rows
    fields = [c for c in rows.columns if c.startswith(("text_", "transcript")) or c == "reference_transcript"]
    text = rows.loc[test].set_index(["corpus", "utt_id"])[fields]
    keys = pd.MultiIndex.from_frame(rows.loc[~test, ["corpus", "utt_id"]])
    out = rows.copy()
    out.loc[~test, fields] = text.reindex(keys).to_numpy()
    return out


def _path_transcripts(rows: pd.DataFrame, sources: dict[str, str]) -> pd.DataFrame:
    """Each further path's ``transcript:NAME`` and ``transcript_source:NAME``, for paths that read the reference
    or share another path's ASR."""
    out = rows.copy()
    for name, column in sources.items():
        if column == "reference_transcript":
            out[f"transcript:{name}"], out[f"transcript_source:{name}"] = out[column], "reference"
        elif column != f"transcript:{name}":
            out[f"transcript:{name}"] = out[column]
            out[f"transcript_source:{name}"] = out[column.replace("transcript", "transcript_source", 1)]
    return out


def merge_shards(shards: Path, labels: LabelSet, out: Path, path_sources: dict[str, str] | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All shards → validated ``scores.parquet`` plus ``errors.parquet`` (rows whose audio failed); ``path_sources``
    names each further text path's transcript column."""
    parts = [pd.read_parquet(f) for f in sorted(shards.glob("*.parquet"))]
    if not parts:
        raise RuntimeError(f"no scored shards under {shards}")
    allrows = pd.concat(parts, ignore_index=True)
    bad = allrows["audio_error"].astype(str) != ""
    weak = ~bad & (allrows.get("audio_warning", pd.Series("", index=allrows.index)).astype(str) != "")
    errors = pd.concat([
        allrows.loc[bad, ["utt_id", "corpus", "path", "audio_error"]].rename(columns={"audio_error": "error"})
        .assign(severity="error"),
        allrows.loc[weak, ["utt_id", "corpus", "path", "audio_warning"]].rename(columns={"audio_warning": "error"})
        .assign(severity="warning")])
    errors = errors.drop_duplicates(["corpus", "utt_id"]).assign(stage="audio").reset_index(drop=True)
    if bad.all():
        stop_nothing_readable(errors, out)
    good = _fill_text(_path_transcripts(allrows.loc[~bad].drop(
        columns=["audio_error", "path"] + (["audio_warning"] if "audio_warning" in allrows else [])),
        path_sources or {}))
    keep = [c for c in good.columns if c not in SCORE_EXTRA] + [c for c in SCORE_EXTRA if c in good.columns]
    good = good[keep].sort_values(["utt_id", "model_fold"]).reset_index(drop=True)
    scores = validate(good, labels, source="inferred scores")
    write_parquet(scores, out / "scores.parquet")
    write_parquet(errors, out / "errors.parquet")
    return scores, errors
