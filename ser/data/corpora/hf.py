"""Hugging Face ``datasets`` corpora (``prepare.corpus: hf``): a dataset with an ``Audio`` column → a manifest.

A dataset saved with ``save_to_disk``, a folder of Parquet or Arrow files, or a hub id (on a connected machine) is
read with its audio left encoded (``Audio(decode=False)``: each row's bytes or file path); bytes are written once
under ``prepare.root``, so the same audio stage as for every other corpus decodes and resamples them to 16 kHz, and
a row whose audio does not decode is recorded in ``errors.parquet`` at inference, like any unreadable file. Label
names (a ``ClassLabel``'s names, or strings) go through ``prepare.labels``; one outside the label set is refused by
``ser prepare``, naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ser.data.corpora import finish_manifest
from ser._util.io import InputError, atomic_path, safe_name

if TYPE_CHECKING:
    from ser.config import PrepareConfig

ROLES = ("audio", "label", "speaker", "utt_id", "transcript")
"""Manifest columns a dataset column can fill (``prepare.columns`` maps the dataset's names onto them); audio and
label are required, the others optional (utt_id: ``SPLIT-ROW`` when absent)."""


def load_split(source: str, split: str | None, cache: Path) -> tuple[Any, str]:
    """The dataset at ``source`` (saved dataset, Parquet/Arrow folder or hub id), one split of it, and its name."""
    import datasets

    path = Path(source)
    if path.is_dir() and any((path / f).exists() for f in ("dataset_dict.json", "state.json")):
        data = datasets.load_from_disk(str(path))
    elif path.is_dir():
        kind = next((k for k in ("parquet", "arrow") if any(path.rglob(f"*.{k}"))), None)
        if kind is None:
            raise InputError(f"prepare.dataset: {path} is neither a saved dataset (save_to_disk) nor a folder of "
                             f"Parquet or Arrow files")
        data = datasets.load_dataset(kind, data_files=sorted(str(f) for f in path.rglob(f"*.{kind}")),
                                     cache_dir=str(cache))
    elif path.exists():
        raise InputError(f"prepare.dataset: {path} is a file; give the dataset's directory or a hub id")
    else:
        data = datasets.load_dataset(source, cache_dir=str(cache))
    if isinstance(data, datasets.DatasetDict):
        names = list(data)
        split = split or (names[0] if len(names) == 1 else None)
        if split is None or split not in data:
            raise InputError(f"prepare.split: the dataset {source} has splits {names}; choose one"
                             + (f" ('{split}' is not one of them)" if split else ""))
        return data[split], split
    return data, split or "train"


def _column_names(cfg: "PrepareConfig", have: list[str]) -> dict[str, str]:
    """Manifest role → the dataset's column (defaults: a column named like the role), required ones checked."""
    given = {ours: its for its, ours in (cfg.columns or {}).items()}
    unknown = sorted(set(given) - set(ROLES))
    if unknown:
        raise InputError(f"prepare.columns: {unknown} are not manifest columns a dataset fills (one of {list(ROLES)})")
    names = {role: given.get(role, role) for role in ROLES}
    missing = [f"{role} ('{names[role]}')" for role in ("audio", "label") if names[role] not in have]
    if missing:
        raise InputError(f"prepare.dataset: no column for {', '.join(missing)}; the dataset has {have} (map one with "
                         f"prepare.columns, e.g. --label-column emotion)")
    return {role: column for role, column in names.items() if column in have}


def _label_names(data: Any, column: str) -> list[str]:
    """The label column as names: a ``ClassLabel``'s names for its integers, else the values as text."""
    import datasets

    feature = data.features[column]
    values = data[column]
    if isinstance(feature, datasets.ClassLabel):
        return [feature.int2str(int(v)) for v in values]
    return [str(v) for v in values]


def from_config(cfg: "PrepareConfig") -> pd.DataFrame:
    """The registered parser: ``prepare.dataset`` (and ``split``, ``columns``) → manifest rows; encoded audio
    written under ``prepare.root``."""
    import datasets

    if not cfg.dataset:
        raise InputError("prepare.dataset: the dataset (a save_to_disk directory, a Parquet/Arrow folder or a hub "
                         "id) is required for corpus 'hf'")
    if not cfg.root:
        raise InputError("prepare.root: where to write the dataset's audio files is required for corpus 'hf'")
    root = Path(cfg.root)
    data, split = load_split(cfg.dataset, cfg.split, root / ".hf-cache")
    columns = _column_names(cfg, list(data.column_names))
    data = data.cast_column(columns["audio"], datasets.Audio(decode=False))
    labels = [(cfg.labels or {}).get(name, name) for name in _label_names(data, columns["label"])]
    ids = [str(v) for v in data[columns["utt_id"]]] if "utt_id" in columns else \
        [f"{split}-{i:06d}" for i in range(len(data))]
    corpus = Path(cfg.dataset).name or cfg.dataset
    base = Path(cfg.dataset) if Path(cfg.dataset).is_dir() else root
    text = {role: [str(v) for v in data[columns[role]]] if role in columns else [""] * len(data)
            for role in ("speaker", "transcript")}
    rows = []
    for i, row in enumerate(data.select_columns([columns["audio"]])):      # one row's bytes in memory at a time
        rows.append({"utt_id": ids[i], "corpus": corpus, "label": labels[i],
                     "path": _audio_file(row[columns["audio"]], ids[i], root / "audio", base),
                     "speaker": text["speaker"][i], "transcript": text["transcript"][i]})
    return finish_manifest(rows, corpus)


def _audio_file(audio: dict, utt_id: str, directory: Path, base: Path) -> str:
    """Where a row's audio is: its bytes written to ``directory`` (the file name keeps the original extension, so
    the decoder knows the format), else its path (relative paths are relative to the dataset's directory)."""
    if audio.get("bytes"):
        suffix = Path(audio.get("path") or "").suffix or ".wav"
        target = directory / f"{safe_name(utt_id)}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_bytes(audio["bytes"])
        return str(target)
    if audio.get("path"):
        path = Path(audio["path"])
        return str(path if path.is_absolute() else base / path)
    return ""
