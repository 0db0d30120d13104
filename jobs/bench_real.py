"""Inference at real model sizes and tuning cost growth (``python -m jobs.bench infer-real|tune-growth``).

``infer-real``: random-init wav2vec2-base sequence classifiers (one per fold) and an XLM-R base sentiment
model, built locally, on generated utterances of 2–12 s with reference transcripts (ASR off: a random-init
decoder's output length is meaningless). Five ways of scoring the same files, each in a fresh process so
its peak memory is its own: ``ser infer`` (Ray Data) with its stages chained (an actor per core, the default on a
local CPU-only Ray) and with an actor pool per stage, the same stages in a plain batched loop (torch's default
threads, and one thread), and the per-file ``transformers.pipeline`` loop that most research code uses. Then the
decode cost that in-sample scoring used to pay once per fold model.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("ang", "hap", "neu", "sad")


def make_corpus(root: Path, n: int, folds: int, seed: int = 0) -> pd.DataFrame:
    """``n`` utterances of 2–12 s (syllable-structured synthetic voices, 16 kHz) with transcripts, in ``folds`` folds."""
    import soundfile as sf

    from ser.data.corpora.demo import LABELS, synth_transcript, synth_utterance

    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = LABELS[int(rng.integers(4))]
        target = rng.uniform(2.0, 12.0)
        pieces, length = [], 0
        while length < target * 16000:
            pieces.append(synth_utterance(rng, label, 120 + 90 * (i % 2), 0.8, 0.02))
            length += len(pieces[-1])
        path = root / "wav" / f"u{i:04d}.wav"
        sf.write(str(path), np.concatenate(pieces)[: int(target * 16000)], 16000, subtype="PCM_16")
        rows.append({"utt_id": f"u{i:04d}", "corpus": "bench", "path": str(path), "label": label,
                     "speaker": f"s{i % folds}", "session": f"s{i % folds}", "gender": "", "condition": "",
                     "duration_s": target, "transcript": synth_transcript(rng, label, 0.3), "fold": f"s{i % folds}"})
    return pd.DataFrame(rows)


def padding_waste(durations: np.ndarray, batch_size: int, sub_batch: int, sort: bool = True) -> float:
    """Share of padded frames when each batch is (sorted by length, as HFSpeechStage does, and) cut into sub-batches."""
    padded = real = 0.0
    for start in range(0, len(durations), batch_size):
        batch = durations[start:start + batch_size]
        batch = np.sort(batch) if sort else batch
        for s in range(0, len(batch), sub_batch):
            chunk = batch[s:s + sub_batch]
            padded += chunk.max() * len(chunk)
            real += chunk.sum()
    return 1 - real / padded


def _ray(root: Path, manifest: pd.DataFrame, chain_stages: str = "auto") -> dict:
    from .measure import PeakMemory
    from .infer import run_infer
    from .ray_env import ensure_ray
    from ser.config import load_config
    from ser.data.labels import LabelSet

    stages = load_config({"infer": {"speech": {"backend": "hf", "model": str(root / "speech" / "{fold}"),
                                               "batch_size": 8},
                                    "sentiment": {"backend": "hf", "model": str(root / "sentiment")},
                                    "chain_stages": chain_stages}}).infer
    t0 = time.perf_counter()
    ensure_ray()
    start = time.perf_counter() - t0
    with PeakMemory() as mem:
        t0 = time.perf_counter()             # the actors import torch and load their models inside this time
        run_infer(manifest, stages, LabelSet(), root / f"out-{chain_stages}")
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "ray_start_s": start, "peak_rss": mem.peak}


def _ray_per_stage(root: Path, manifest: pd.DataFrame) -> dict:
    """``ser infer`` with an actor pool per stage (``infer.chain_stages: never``), as on a cluster."""
    return _ray(root, manifest, "never")


def _loop(root: Path, manifest: pd.DataFrame, threads: int | None = None) -> dict:
    """The same stage classes, batch by batch in one process, on torch's default threads (every core) or
    ``threads``: what the pipeline must at least match."""
    t_start = time.perf_counter()            # importing torch and loading the models count, as inside ser infer's actors
    from .measure import stage_loop
    from ser.inference.backends.hf_speech import HFSpeechStage
    from ser.inference.backends.sentiment import HFSentimentStage

    stages = {"speech": HFSpeechStage(str(root / "speech" / "{fold}"), CLASSES, cpu_threads=threads),
              "sentiment": HFSentimentStage(str(root / "sentiment"))}
    rows = manifest.assign(model_fold=manifest["fold"], split="test", transcript_source="reference")
    split = stage_loop(rows, stages, 8)
    return {"seconds": time.perf_counter() - t_start, "split": split}


def _loop_one_thread(root: Path, manifest: pd.DataFrame) -> dict:
    """The batched loop on one thread (as each of ser infer's CPU actors runs)."""
    return _loop(root, manifest, threads=1)


def _per_file(root: Path, manifest: pd.DataFrame) -> dict:
    """One file at a time through ``transformers.pipeline``, as the published code and most notebooks do."""
    t0 = time.perf_counter()                 # importing torch and loading the models count, as inside ser infer's actors
    from transformers import pipeline

    from ser.inference.audio import load_audio

    speech = {f: pipeline("audio-classification", model=str(root / "speech" / f), top_k=None)
              for f in sorted(manifest["fold"].unique())}
    sentiment = pipeline("text-classification", model=str(root / "sentiment"), top_k=None)
    for row in manifest.itertuples():
        speech[row.fold]({"raw": load_audio(row.path), "sampling_rate": 16000})
        sentiment(row.transcript)
    return {"seconds": time.perf_counter() - t0}


METHODS = {"ray": _ray, "ray-stages": _ray_per_stage, "loop": _loop, "loop-1": _loop_one_thread, "per-file": _per_file}


def worker(method: str, root: str) -> None:
    """Run one method in this (fresh) process and print its figures as one JSON line."""
    root_path = Path(root)
    result = METHODS[method](root_path, pd.read_parquet(root_path / "manifest.parquet"))
    result.setdefault("peak_rss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    print(json.dumps(result))


def bench_infer_real(n: int = 96, folds: int = 4) -> None:
    """ser infer vs a plain batched loop vs the per-file pipeline loop at real model sizes, side by side."""
    from ser.inference.backends.audio_stage import load_batch
    from ser.inference.pipeline import group_scorings, longest_first
    from ser.testing.tiny_models import build_sentiment, build_wav2vec2

    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp:
        root = Path(tmp)
        manifest = make_corpus(root / "corpus", n, folds)
        manifest.to_parquet(root / "manifest.parquet")
        for fold in sorted(manifest["fold"].unique()):
            build_wav2vec2(root / "speech" / fold, list(CLASSES), size="base", seed=int(fold[1:]))
        build_sentiment(root / "sentiment", size="base")
        audio = float(manifest["duration_s"].sum())
        print(f"{n} utterances, {audio:.0f} s of audio (2–12 s each), {folds} fold models (wav2vec2-base, 94 M "
              f"parameters each, random init) + XLM-R base sentiment (278 M), fp32 on the CPU:")
        results = {}
        for method in METHODS:
            done = subprocess.run([sys.executable, "-m", "jobs.bench_real", method, str(root)], check=True,
                                  capture_output=True, text=True)
            results[method] = json.loads(done.stdout.strip().splitlines()[-1])
        for method, r in results.items():
            extra = f" (+ {r['ray_start_s']:.1f} s Ray start-up)" if "ray_start_s" in r else ""
            print(f"  {method:<10} {n / r['seconds']:5.2f} utt/s, real-time factor {r['seconds'] / audio:.3f} "
                  f"({audio / r['seconds']:.1f} audio-s/s), {r['seconds']:.1f} s{extra}; peak RSS "
                  f"{r['peak_rss'] / 2**30:.1f} GiB")
        base = results["per-file"]["seconds"]
        loop = min(results["loop"]["seconds"], results["loop-1"]["seconds"])
        print(f"  speed-up over the per-file pipeline loop: ser infer {base / results['ray']['seconds']:.2f}x, "
              f"batched loop {base / loop:.2f}x; ser infer / faster batched loop {loop / results['ray']['seconds']:.2f}x "
              f"(stages chained, an actor per core: the default on a local CPU-only Ray), with an actor pool per "
              f"stage {loop / results['ray-stages']['seconds']:.2f}x")
        split = results["loop"]["split"]
        total = sum(split.values())
        print("  time split (batched loop): " + ", ".join(f"{k} {v:.1f} s ({100 * v / total:.0f}%)"
                                                        for k, v in split.items()))
        durations = manifest["duration_s"].to_numpy()
        ser_order = longest_first(group_scorings(manifest.assign(model_fold=manifest["fold"], split="test")))
        print(f"  padding waste: none on the CPU (one utterance at a time); GPU sub-batches of 4 in batches of 8 pad "
              f"{100 * padding_waste(ser_order['duration_s'].to_numpy(), 8, 4):.1f}% of frames in ser's order "
              f"(longest first), {100 * padding_waste(durations, 8, 4):.1f}% in the manifest's order sorted within "
              f"each batch, "
              f"{100 * padding_waste(durations, 8, 4, sort=False):.1f}% unsorted")
        t0 = time.perf_counter()
        load_batch({"path": manifest["path"].to_numpy()})
        decode = time.perf_counter() - t0
        print(f"  decode + resample of all {n} files: {decode:.2f} s; with in-sample rows of {folds} fold models it "
              f"was paid {folds}x ({folds * decode:.2f} s) before decode-once, now 1x")


def bench_tune_growth(sizes: tuple[int, ...] = (5_000, 50_000, 500_000), trials: int = 8) -> None:
    """`ser tune` search time on iemocap-like tables of growing size, in-process and on the Ray engine."""
    from .tune import ray_engine
    from ser.config import load_config
    from ser.data.schema import validate
    from ser.data.synthetic import synthetic_scores
    from ser.tuning.per_fold import make_fold_search, tune_folds

    cfg = load_config(None)
    print(f"ser tune search, 10 folds x {trials} trials (the anchors: speech, one-weight log-linear fusions, "
          f"...) with inner estimates:")
    previous = {}
    for rows in sizes:
        df = validate(synthetic_scores(10, rows // 10, seed=0, profile="iemocap-like"))
        line = []
        for name, engine in (("in-process", None), ("ray", ray_engine)):
            tune = replace(cfg.tune, engine="optuna" if engine is None else "ray", trials=trials)
            t0 = time.perf_counter()
            tune_folds(df, cfg.label_set, tune, make_fold_search(tune, engine), 0)
            dt = time.perf_counter() - t0
            if name in previous:
                before, before_rows = previous[name]
                growth = f", x{dt / before:.1f} for x{rows // before_rows}"
            else:
                growth = ""
            line.append(f"{name} {dt:.1f} s{growth}")
            previous[name] = (dt, rows)
        print(f"  {rows:>7,} rows: " + "; ".join(line))


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2])
