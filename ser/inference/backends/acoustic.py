"""CPU speech backend: hand-written acoustic features + a scikit-learn classifier per fold.

Permissive (numpy only; opensmile's licence is non-commercial, so it is not used). Features
summarize prosody and spectrum: log energy, pitch (autocorrelation), zero-crossing rate,
spectral centroid / roll-off / flatness, 26 log-mel bands, voiced share and a syllable-rate
proxy. The fold-k model is trained on every other fold, so it never sees fold k.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from ser.inference.audio import SAMPLE_RATE
from ser.inference.backends import Batch, FoldSpeechStage, fill_fold
from ser.inference.backends.audio_stage import load_batch

FRAME, HOP, NFFT, N_MELS = 400, 160, 512, 26

log = logging.getLogger(__name__)


def _mel_filterbank(sr: int = SAMPLE_RATE) -> np.ndarray:
    hz_to_mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    mel_to_hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = mel_to_hz(np.linspace(hz_to_mel(50), hz_to_mel(sr / 2), N_MELS + 2))
    bins = np.fft.rfftfreq(NFFT, 1 / sr)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0, np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))


_MEL = _mel_filterbank()
_WINDOW = np.hanning(FRAME)


def _stats(x: np.ndarray) -> list[float]:
    if x.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(x.mean()), float(x.std()), float(np.percentile(x, 10)), float(np.percentile(x, 90))]


def acoustic_features(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A fixed-length feature vector (``N_FEATURES`` values) for one waveform."""
    x = np.pad(audio.astype(np.float64), (0, max(0, FRAME - len(audio))))
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP] * _WINDOW
    power = np.abs(np.fft.rfft(frames, NFFT)) ** 2 + 1e-10
    energy = np.log(power.sum(axis=1))
    freqs = np.fft.rfftfreq(NFFT, 1 / sr)
    centroid = (power * freqs).sum(axis=1) / power.sum(axis=1)
    cum = np.cumsum(power, axis=1)
    rolloff = freqs[np.argmax(cum >= 0.85 * cum[:, -1:], axis=1)]
    flatness = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
    zcr = (np.diff(np.sign(frames), axis=1) != 0).mean(axis=1)
    mel = np.log(power @ _MEL.T)
    active = energy > np.median(energy)
    ac = np.fft.irfft(power, NFFT)[:, :NFFT // 2]
    lo, hi = sr // 400, sr // 60
    lag = lo + np.argmax(ac[:, lo:hi], axis=1)
    strength = ac[np.arange(len(ac)), lag] / ac[:, 0]
    voiced = active & (strength > 0.3)
    f0 = np.log(sr / lag[voiced]) if voiced.any() else np.zeros(0)
    smooth = np.convolve(energy, np.ones(5) / 5, mode="same")
    peaks = ((smooth[1:-1] > smooth[:-2]) & (smooth[1:-1] > smooth[2:]) & (smooth[1:-1] > np.median(smooth)))
    duration = len(audio) / sr
    feats = (_stats(energy) + _stats(f0) + _stats(zcr) + _stats(centroid / 1000) + _stats(rolloff / 1000)
             + _stats(flatness) + list(mel.mean(axis=0)) + list(mel.std(axis=0))
             + [float(voiced.mean()), peaks.sum() / max(duration, 1e-3), duration])
    return np.asarray(feats, dtype=np.float64)


N_FEATURES = len(acoustic_features(np.zeros(FRAME, dtype=np.float32)))


def featurize_batch(batch: Batch) -> Batch:
    """Decode a batch of paths and compute their features: {utt_id, ok, error, features (n, N_FEATURES);
    NaN rows where the audio failed}, fixed-width so Arrow never sees ragged rows."""
    b = load_batch(batch)
    ok = b["audio_error"] == ""
    feats = np.full((len(ok), N_FEATURES), np.nan)
    for i in np.flatnonzero(ok):
        feats[i] = acoustic_features(b["audio"][i])
    return {"utt_id": b["utt_id"], "ok": ok, "error": b["audio_error"], "features": feats}


def train_fold_models(manifest: pd.DataFrame, checkpoint: str, classes: tuple[str, ...], features: np.ndarray,
                      folds: list[str] | None = None) -> list[Path]:
    """Train one classifier per fold (``folds``, default the manifest's) on the other folds' ``features`` rows;
    save to ``checkpoint.format(fold=k)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ser._util.io import atomic_path

    labels = manifest["label"].to_numpy()
    row_folds = manifest["fold"].to_numpy()
    written = []
    for k in folds or sorted(set(row_folds)):
        train = row_folds != k
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))
        model.fit(features[train], labels[train])
        path = Path(fill_fold(checkpoint, k))
        with atomic_path(path) as tmp:
            tmp.write_bytes(pickle.dumps({"model": model, "classes": list(classes)}))
        written.append(path)
        log.debug(f"acoustic model for fold {k}: trained on {train.sum()} utterances of other folds → {path}")
    return written


class AcousticSpeechStage(FoldSpeechStage):
    """Speech probabilities from the fold's acoustic classifier (the model path may hold ``{fold}``).

    ``features``: {audio path: feature vector} the training pass computed in this run (they are the features of
    the same decoded audio), so scoring does not compute them a second time; other rows are featurized here.
    """

    def __init__(self, model: str, classes: tuple[str, ...], features: dict[str, np.ndarray] | None = None):
        super().__init__(model, classes)
        self.features = features or {}

    def load(self, fold: str):
        path = Path(self.model_for(fold))
        if not path.exists():
            raise FileNotFoundError(f"acoustic model for fold '{fold}' not found: {path}")
        return pickle.loads(path.read_bytes())["model"]

    def score(self, model, waves: list[np.ndarray]) -> np.ndarray:
        return self._probabilities(model, np.stack([acoustic_features(w) for w in waves]))

    def score_rows(self, model, batch: Batch, rows: np.ndarray) -> np.ndarray:
        known = [self.features.get(str(batch["path"][i])) for i in rows]
        return self._probabilities(model, np.stack([acoustic_features(batch["audio"][i]) if f is None else f
                                                    for i, f in zip(rows, known)]))

    def _probabilities(self, model, features: np.ndarray) -> np.ndarray:
        """The classifier's probabilities in label-set order (0 for a class it never saw in training)."""
        p = model.predict_proba(features)
        known = list(model.classes_)
        return np.stack([p[:, known.index(c)] if c in known else np.zeros(len(p)) for c in self.classes], axis=1)
