"""Audio decoding: any soundfile-readable file → 16 kHz mono float32, with named failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser._util.io import InputError

SAMPLE_RATE = 16000
MIN_DURATION_S = 0.25
SILENCE_PEAK = 1e-4


class AudioError(InputError):
    """An utterance's audio cannot be used; the message says why (becomes an errors-table row)."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode, downmix to mono and resample (soxr, high quality) to ``sample_rate``.

    Raises :class:`AudioError` for a missing, unreadable, empty or non-finite file.
    """
    import soundfile as sf
    import soxr

    p = Path(path)
    if not p.exists():
        raise AudioError(f"missing file: {p}")
    try:
        p.open("rb").close()
    except OSError as exc:                       # soundfile would only say "System error."
        raise AudioError(f"cannot open {p}: {exc.strerror}") from None
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise AudioError(f"unreadable audio: {p}: {exc}") from None
    if data.size == 0:
        raise AudioError(f"empty audio: {p}")
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise AudioError(f"non-finite samples (NaN/inf) in {p}")
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def audio_warning(audio: np.ndarray, path: str | Path, sample_rate: int = SAMPLE_RATE) -> str:
    """Why a decoded clip is too weak to trust ('' if it is fine): shorter than 0.25 s, or no signal."""
    if len(audio) < MIN_DURATION_S * sample_rate:
        return f"shorter than {MIN_DURATION_S} s ({len(audio) / sample_rate:.3f} s): {path}"
    if np.abs(audio).max() < SILENCE_PEAK:
        return f"silent (peak amplitude below {SILENCE_PEAK}): {path}"
    return ""
