"""The one backend registry: for each inference stage, backend name → stage class + options dataclass.

A stage spec in YAML is flat (``{backend: hf, model: ..., fp16: true, actors: 2}``); its keys are the
backend's options plus the scheduling keys every actor stage shares. The options dataclass is the
single source of the backend's defaults and of its constructor keywords (``ser.config`` documents
it, ``jobs.infer`` passes ``asdict(options)`` to the class). Classes are named as import paths, so
the registry imports neither torch nor any model library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ser._util.checks import is_count, is_number
from ser._util.io import InputError


def doc(text: str) -> dict:
    """Field metadata: the one-line description shown in ``docs/config.md``."""
    return {"doc": text}


@dataclass(frozen=True)
class Scheduling:
    """How many actors a stage runs and what each reserves from Ray."""

    actors: int = field(default=1, metadata=doc("actor pool size (models loaded once per actor)"))
    num_gpus: float = field(default=0.0, metadata=doc("GPUs per actor (fractions share a GPU)"))
    num_cpus: float = field(default=1.0, metadata=doc("CPUs per actor"))
    batch_size: int = field(default=16, metadata=doc("rows per Ray Data batch handed to an actor"))

    def check(self, where: str) -> None:
        for key in ("actors", "batch_size"):
            if not is_count(getattr(self, key)):
                raise InputError(f"{where}.{key} must be a positive integer, got {getattr(self, key)!r}")
        for key in ("num_gpus", "num_cpus"):
            value = getattr(self, key)
            if not is_number(value) or value < 0:
                raise InputError(f"{where}.{key} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class AcousticOptions:
    model: str = field(default="{out}/models/acoustic-{fold}.pkl",
                       metadata=doc("per-fold classifier path ({out}: the run's infer directory); trained if missing"))


@dataclass(frozen=True)
class HFSpeechOptions:
    model: str | None = field(default=None, metadata=doc(
        "wav2vec2-style checkpoint per fold: a local directory or hub id; {fold} is replaced by the fold id"))
    revision: str | None = field(default=None, metadata=doc("hub branch, tag or commit (hub ids only)"))
    label_map: dict | None = field(default=None, metadata=doc("model label name → class code, beyond the built-in names"))
    fp16: bool = field(default=True, metadata=doc("half precision on GPU"))
    sub_batch: int = field(default=8, metadata=doc("utterances per forward pass on GPU (sorted by length)"))
    pad_group_norm: bool = field(default=False, metadata=doc(
        "let a group-norm checkpoint (wav2vec2-base style) batch utterances of different lengths: faster, but "
        "padding moves its scores (by default it batches equal lengths only; layer-norm checkpoints always pad)"))
    cpu_threads: int | None = field(default=None, metadata=doc(
        "torch threads per CPU actor (default: the node's cores shared by the speech actors)"))


@dataclass(frozen=True)
class NoOptions:
    """A backend without options (``asr: {backend: none}``)."""


TINY_WHISPER = "ser:tiny-random"
"""A random-initialized tiny Whisper built locally (offline demos and CI; its transcripts are meaningless)."""


@dataclass(frozen=True)
class WhisperOptions:
    model: str | None = field(default=None, metadata=doc(
        f"faster-whisper (CTranslate2) model: size name, hub id or directory ({TINY_WHISPER}: built offline, empty transcripts)"))
    revision: str | None = field(default=None, metadata=doc("hub branch, tag or commit (hub ids only)"))
    language: str | None = field(default="en", metadata=doc("decoding language (null: detect)"))
    beam_size: int = field(default=1, metadata=doc("beam width"))
    vad_filter: bool = field(default=False, metadata=doc("Silero VAD before decoding (per-file, not batched)"))
    compute_type: str = field(default="default", metadata=doc("CTranslate2 compute type (float16, int8, ...)"))
    sub_batch: int = field(default=8, metadata=doc("utterances per batched generate call"))
    cpu_threads: int | None = field(default=None, metadata=doc(
        "CTranslate2 threads on a CPU (default: OMP_NUM_THREADS, which Ray sets to the actor's CPUs)"))


@dataclass(frozen=True)
class VaderOptions:
    lowercase: bool = field(default=False, metadata=doc("lower-case transcripts first"))


@dataclass(frozen=True)
class HFSentimentOptions:
    model: str | None = field(default=None, metadata=doc("sequence-classification model: hub id or directory"))
    revision: str | None = field(default=None, metadata=doc("hub branch, tag or commit (hub ids only)"))
    label_map: dict | None = field(default=None, metadata=doc("model label name → neg/neu/pos, beyond the built-in names"))
    lowercase: bool = field(default=False, metadata=doc("lower-case transcripts first"))
    max_length: int = field(default=128, metadata=doc("tokens kept per transcript"))
    fp16: bool = field(default=True, metadata=doc("half precision on GPU"))
    sub_batch: int = field(default=32, metadata=doc("transcripts per forward pass"))


@dataclass(frozen=True)
class Backend:
    """One backend of a stage: the class that runs it (``module:Class``, or None for no stage) and its options."""

    name: str
    target: str | None
    options: type
    needs_model: bool = False

    def load_class(self) -> type:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


STAGES: dict[str, dict[str, Backend]] = {
    "speech": {"acoustic": Backend("acoustic", "ser.inference.backends.acoustic:AcousticSpeechStage", AcousticOptions),
               "hf": Backend("hf", "ser.inference.backends.hf_speech:HFSpeechStage", HFSpeechOptions, needs_model=True)},
    "asr": {"none": Backend("none", None, NoOptions),
            "whisper": Backend("whisper", "ser.inference.backends.whisper:WhisperStage", WhisperOptions, needs_model=True)},
    "sentiment": {"vader": Backend("vader", "ser.inference.backends.sentiment:VaderStage", VaderOptions),
                  "hf": Backend("hf", "ser.inference.backends.sentiment:HFSentimentStage", HFSentimentOptions, needs_model=True)},
}
"""Stage → backend name → backend; the first backend of a stage is its default."""

STAGE_SCHEDULING: dict[str, Scheduling] = {"speech": Scheduling(), "asr": Scheduling(),
                                           "sentiment": Scheduling(batch_size=64)}
"""Default scheduling per stage."""

DEPRECATED_KEYS = {"checkpoint": "model"}
"""Old key → its replacement (accepted with a warning)."""


@dataclass(frozen=True)
class StageSpec:
    """A resolved inference stage: which backend, its options, and its actors' resources."""

    stage: str
    backend: str
    options: Any
    scheduling: Scheduling

    @property
    def enabled(self) -> bool:
        return STAGES[self.stage][self.backend].target is not None

    def load_class(self) -> type:
        return STAGES[self.stage][self.backend].load_class()

    def to_dict(self) -> dict:
        """The flat YAML shape (backend, options, scheduling)."""
        from dataclasses import asdict

        return {"backend": self.backend, **asdict(self.options), **asdict(self.scheduling)}
