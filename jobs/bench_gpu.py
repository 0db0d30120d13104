"""``python -m jobs.bench gpu [--tiny]``: the inference stages on one CUDA GPU, in one table.

Models are built locally with random weights at real shapes (nothing is downloaded): wav2vec2-base
(group-norm encoder) and wav2vec2-large (layer-norm, lv60 style) sequence classifiers in fp16 at sub-batch
1/8/32 on generated 2–12 s utterances (utterances/s, real-time factor, padding waste, GPU memory peak),
XLM-R base sentiment rows/s, a Whisper-large-v3-shaped CTranslate2 encoder per 30 s window at batch 1/8/16,
and a Ray Data run of the speech stage with one actor per GPU whose rows record the GPU they ran on.
``--tiny`` runs the same code with tiny models on the CPU, so the first GPU run does not fail on a typo.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

CLASSES = ("ang", "hap", "neu", "sad")


def _peak_reset(cuda: bool) -> None:
    import torch

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(cuda: bool) -> str:
    import torch

    return f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB" if cuda else "n/a (CPU)"


def _timed(fn, cuda: bool) -> float:
    import torch

    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _speech_rows(root: Path, waves: list[np.ndarray], device: str, tiny: bool) -> list[dict]:
    from .bench_real import padding_waste
    from ser.inference.backends.hf_speech import HFSpeechStage
    from ser.testing.tiny_models import build_wav2vec2

    cuda, audio_s = device == "cuda", sum(len(w) for w in waves) / 16000
    durations = np.array([len(w) / 16000 for w in waves])
    rows = []
    for name, size, norm in (("wav2vec2-base", "base", "group"), ("wav2vec2-large", "large", "layer")):
        path = build_wav2vec2(root / name, list(CLASSES), size="tiny" if tiny else size, norm=norm)
        stage = HFSpeechStage(str(path), CLASSES, device=device, pad_group_norm=True)
        loaded = stage.load("any")
        for sub in (1, 8, 32):
            stage.sub_batch = sub                      # the stage keeps 1 on a CPU; the benchmark sets it
            stage.score(loaded, waves[:2])             # warm-up: kernels, allocator
            _peak_reset(cuda)
            seconds = _timed(lambda: stage.score(loaded, waves), cuda)
            rows.append({"what": f"{name} fp16" if cuda else f"{name} (tiny, fp32)", "setting": f"sub-batch {sub}",
                         "rate": f"{len(waves) / seconds:,.1f} utt/s, RTF {seconds / audio_s:.4f}",
                         "detail": f"padding {100 * padding_waste(durations, len(waves), sub):.0f}% of frames",
                         "memory": _peak(cuda)})
        del loaded
    return rows


def _sentiment_row(root: Path, device: str, tiny: bool, n: int) -> dict:
    from ser.inference.backends.sentiment import HFSentimentStage
    from ser.testing.tiny_models import WORDS, build_sentiment

    path = build_sentiment(root / "sentiment", size="tiny" if tiny else "base")
    stage = HFSentimentStage(str(path), device=device)
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(WORDS, int(rng.integers(5, 30)))) for _ in range(n)]
    stage.score(texts[:4])
    cuda = device == "cuda"
    _peak_reset(cuda)
    seconds = _timed(lambda: stage.score(texts), cuda)
    return {"what": "XLM-R base sentiment" if not tiny else "XLM-R (tiny)", "setting": f"sub-batch {stage.sub_batch}",
            "rate": f"{n / seconds:,.0f} rows/s", "detail": "5–30 words", "memory": _peak(cuda)}


def _whisper_rows(root: Path, device: str, tiny: bool) -> list[dict]:
    import ctranslate2

    from ser.testing.tiny_models import build_whisper

    path = build_whisper(root / "whisper", size="tiny" if tiny else "large-v3")
    model = ctranslate2.models.Whisper(str(path), device=device, compute_type="float16" if device == "cuda"
                                       else "float32")
    mels = 80 if tiny else 128
    rows = []
    for batch in (1, 8, 16):
        features = ctranslate2.StorageView.from_array(np.random.default_rng(2).standard_normal(
            (batch, mels, 3000)).astype(np.float32))
        model.encode(features)                         # warm-up
        t0 = time.perf_counter()
        model.encode(features)
        seconds = time.perf_counter() - t0
        rows.append({"what": "Whisper large-v3 encoder (CTranslate2)" if not tiny else "Whisper encoder (tiny)",
                     "setting": f"batch {batch}", "rate": f"{1000 * seconds / batch:,.1f} ms per 30 s window",
                     "detail": f"{30 * batch / seconds:,.0f} audio-s/s", "memory": "not tracked (CTranslate2)"})
    return rows


def _ray_row(root: Path, waves: list[np.ndarray], cuda: bool) -> dict:
    """The speech stage under Ray Data, one actor per GPU: which device its rows say they ran on."""
    import shutil

    import soundfile as sf

    from .infer import run_infer
    from .ray_env import ensure_ray
    from ser.config import load_config
    from ser.data.labels import LabelSet

    (root / "wav").mkdir()
    rows = []
    for i, wave in enumerate(waves):
        sf.write(str(root / "wav" / f"u{i}.wav"), wave, 16000, subtype="PCM_16")
        rows.append({"utt_id": f"u{i}", "corpus": "gpu", "path": str(root / "wav" / f"u{i}.wav"),
                     "label": CLASSES[i % 4], "speaker": f"s{i % 2}", "session": "", "gender": "", "condition": "",
                     "duration_s": len(wave) / 16000, "transcript": "a b", "fold": f"s{i % 2}"})
    for fold in ("s0", "s1"):
        shutil.copytree(root / "wav2vec2-base", root / "speech" / fold)
    gpus = 1 if cuda else 0
    ensure_ray(num_gpus=gpus or None)
    stages = load_config({"infer": {"speech": {"backend": "hf", "model": str(root / "speech" / "{fold}"),
                                               "num_gpus": gpus, "actors": 1},
                                    "sentiment": {"backend": "vader"}}}).infer
    t0 = time.perf_counter()
    scores, errors = run_infer(pd.DataFrame(rows), stages, LabelSet(), root / "out")
    seconds = time.perf_counter() - t0
    where = sorted({str(w).split("#")[0].rsplit(":", 1)[-1] for w in scores["speech_worker"]})
    if cuda and where != ["GPU0"]:
        raise SystemExit(f"the speech actor did not run on the GPU: its rows say {where}")
    return {"what": "Ray Data speech stage, 1 actor", "setting": f"num_gpus {gpus}",
            "rate": f"{len(scores) / seconds:,.1f} rows/s incl. start-up", "detail": f"rows ran on {', '.join(where)}; "
            f"{len(errors)} errors", "memory": ""}


def bench_gpu(tiny: bool = False) -> None:
    """Print the table (see the module docstring); without a GPU, ``tiny`` must be set."""
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not tiny:
        raise SystemExit("python -m jobs.bench gpu: no CUDA GPU here; --tiny runs the same script on the CPU")
    device = "cuda" if cuda else "cpu"
    rng = np.random.default_rng(0)
    n, (lo, hi) = (12, (1.0, 3.0)) if tiny else (96, (2.0, 12.0))
    waves = [0.1 * rng.standard_normal(int(16000 * rng.uniform(lo, hi))).astype(np.float32) for _ in range(n)]
    name = torch.cuda.get_device_name(0) if cuda else "CPU (--tiny: tiny models, fp32)"
    print(f"device: {name}; {n} utterances of {lo:g}–{hi:g} s")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = _speech_rows(root, waves, device, tiny) + [_sentiment_row(root, device, tiny, 8 * n)]
        rows += _whisper_rows(root, device, tiny) + [_ray_row(root, waves, cuda)]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
