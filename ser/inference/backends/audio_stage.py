"""Decode + resample stage: path → 16 kHz mono float32, errors recorded instead of raised."""

from __future__ import annotations

import numpy as np

from ser.inference.audio import SAMPLE_RATE, AudioError, audio_warning, load_audio
from ser.inference.backends import Batch


def load_batch(batch: Batch, sample_rate: int = SAMPLE_RATE) -> Batch:
    """Add ``audio`` (object array of waveforms), ``audio_error`` ('' when fine), ``audio_warning`` (scored,
    but too short or silent to trust; '' when fine) and measured ``duration_s``."""
    n = len(batch["path"])
    audio = np.empty(n, dtype=object)
    errors = np.full(n, "", dtype=object)
    warnings = np.full(n, "", dtype=object)
    duration = np.zeros(n)
    for i, path in enumerate(batch["path"]):
        try:
            audio[i] = load_audio(path, sample_rate)
            duration[i] = len(audio[i]) / sample_rate
            warnings[i] = audio_warning(audio[i], path, sample_rate)
        except AudioError as exc:
            audio[i] = np.zeros(0, dtype=np.float32)
            errors[i] = str(exc)
    return {**batch, "audio": audio, "audio_error": errors, "audio_warning": warnings, "duration_s": duration}
