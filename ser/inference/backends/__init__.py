"""Model stages for inference: plain callable classes (``__init__`` loads, ``__call__(batch) -> batch``).

A batch is a dict of numpy arrays (Ray Data's numpy batch format); audio is an object array of
float32 waveforms. Stages run without Ray (tests call them directly) and are handed to
``map_batches`` by ``jobs.infer``.
"""

from __future__ import annotations

import os

import numpy as np

from ser._util.io import InputError, safe_name, unsafe_name

Batch = dict[str, np.ndarray]


def worker_tag() -> str:
    """Where a stage runs, recorded per row: '<node ip>/<node id>:GPU<ids>' (or ':CPU') and '#<pid>' under Ray,
    else 'local'."""
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            gpus = ctx.get_accelerator_ids().get("GPU", [])
            where = f"{ray.util.get_node_ip_address()}/{ctx.get_node_id()[:12]}"
            return f"{where}:{'GPU' + ','.join(gpus) if gpus else 'CPU'}#{os.getpid()}"
    except ImportError:
        pass
    return "local"


def usable(batch: Batch) -> np.ndarray:
    """Rows whose audio decoded (no ``audio_error``)."""
    errors = batch.get("audio_error")
    return np.ones(len(next(iter(batch.values()))), dtype=bool) if errors is None else (errors == "")


def text_rows(batch: Batch) -> np.ndarray:
    """Rows whose text the text stages produce: one per utterance (its test row); in-sample copies of an
    utterance scored by other folds' models get the same text at merge time."""
    n = len(next(iter(batch.values())))
    return np.ones(n, dtype=bool) if "split" not in batch else (batch["split"] == "test")


def fill_fold(template: str, fold: str) -> str:
    """A ``{fold}`` path template filled with the fold id, encoded as one safe path component."""
    return template.format(fold=safe_name(fold))


def expand_scorings(batch: Batch) -> Batch:
    """Utterance rows with ``scorings`` ('fold=split;…', from ``ser.inference.pipeline.group_scorings``) → one row per
    (utterance, model fold), sharing the decoded waveform instead of decoding it again."""
    pairs = [[part.split("=") for part in str(s).split(";")] for s in batch["scorings"]]
    index = np.repeat(np.arange(len(pairs)), [len(p) for p in pairs])
    out = {k: v[index] for k, v in batch.items() if k != "scorings"}
    out["model_fold"] = np.array([unsafe_name(f) for p in pairs for f, _ in p], dtype=object)
    out["split"] = np.array([split for p in pairs for _, split in p], dtype=object)
    return out


def map_label_names(names: list[str], label_map: dict[str, str], targets: tuple[str, ...], what: str) -> list[str]:
    """Model label names → canonical codes via ``label_map`` (case-insensitive; identity for codes)."""
    lowered = {k.lower(): v for k, v in label_map.items()}
    out = []
    for name in names:
        code = lowered.get(name.lower(), name.lower())
        if code not in targets:
            raise InputError(f"{what} label '{name}' maps to '{code}', not one of {list(targets)}; "
                             f"add it to the label map")
        out.append(code)
    if sorted(out) != sorted(set(out)) or set(out) != set(targets):
        raise InputError(f"{what} labels {names} must map one-to-one onto {list(targets)} (got {out})")
    return out


class FoldSpeechStage:
    """Base of the speech stages: each row is scored by its ``model_fold``'s model.

    ``model`` may contain ``{fold}``; subclasses implement ``load(fold)`` (called once per fold
    per actor) and ``score(model, waves) -> (len(waves), K)`` probabilities in label-set order.
    Rows whose audio failed to decode get NaN and are reported in the errors table. Utterance rows
    with ``scorings`` are expanded here, after the one decode: each fold model scores the same
    waveform, and only the utterance's own test row carries the audio on to the text stages.
    """

    def __init__(self, model: str, classes: tuple[str, ...]):
        self.model, self.classes, self.models = model, tuple(classes), {}
        self.tag = worker_tag()

    def model_for(self, fold: str) -> str:
        return fill_fold(self.model, fold)

    def load(self, fold: str):
        raise NotImplementedError

    def score(self, model, waves: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def score_rows(self, model, batch: Batch, rows: np.ndarray) -> np.ndarray:
        """Probabilities of the batch's ``rows`` (all of one fold): ``score`` on their waveforms; a stage that has
        something cheaper than the waveform for some rows overrides this."""
        return self.score(model, [batch["audio"][i] for i in rows])

    def __call__(self, batch: Batch) -> Batch:
        if "scorings" in batch:
            batch = expand_scorings(batch)
        n = len(batch["path"])
        probs = np.full((n, len(self.classes)), np.nan)
        ok = usable(batch)
        for fold in np.unique(batch["model_fold"][ok]):
            fold = str(fold)
            if fold not in self.models:
                self.models[fold] = self.load(fold)
            rows = np.flatnonzero(ok & (batch["model_fold"] == fold))
            probs[rows] = self.score_rows(self.models[fold], batch, rows)
        out = dict(batch)
        for j, c in enumerate(self.classes):
            out[f"speech_{c}"] = probs[:, j]
        out["speech_worker"] = np.full(n, self.tag, dtype=object)
        if "audio" in out:                        # the text stages read audio of test rows only
            audio = np.empty(n, dtype=object)
            for i, (wave, keep) in enumerate(zip(out["audio"], text_rows(out))):
                audio[i] = wave if keep else np.zeros(0, dtype=np.float32)
            out["audio"] = audio
        return out
