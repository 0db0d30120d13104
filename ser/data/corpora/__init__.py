"""Corpus preparation: raw corpus directories → manifests (one row per utterance).

Manifest columns: utt_id, corpus, path, label, speaker, session, gender, duration_s,
transcript (reference text, '' if unknown), condition (improvised/scripted/... where known).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser._util.io import InputError
from ser.data.labels import LabelSet

if TYPE_CHECKING:
    from ser.config import PrepareConfig

MANIFEST_COLUMNS = ["utt_id", "corpus", "path", "label", "speaker", "session", "gender", "duration_s",
                    "transcript", "condition"]


def corpus_root(cfg: "PrepareConfig") -> Path:
    """``prepare.root`` as an existing directory, else an error naming the key."""
    if not cfg.root:
        raise InputError(f"prepare.root: the {cfg.corpus} directory is required")
    root = Path(cfg.root)
    if not root.is_dir():
        raise InputError(f"prepare.root: {root} is not a directory")
    return root


def finish_manifest(rows: list[dict], corpus: str) -> pd.DataFrame:
    """Rows → manifest in column order, sorted by utt_id; errors if nothing was found."""
    if not rows:
        raise InputError(f"{corpus}: no utterances found")
    df = pd.DataFrame(rows)
    for col in MANIFEST_COLUMNS:
        if col not in df:
            df[col] = ""
    return df[MANIFEST_COLUMNS + [c for c in df.columns if c not in MANIFEST_COLUMNS]] \
        .sort_values("utt_id").reset_index(drop=True)


def label_counts(df: pd.DataFrame) -> str:
    """'ang 1103, hap 1636, ...' plus totals per session, for the prepare report."""
    labels = ", ".join(f"{k} {v}" for k, v in df["label"].value_counts().sort_index().items())
    sessions = ", ".join(f"{k} {v}" for k, v in df["session"].value_counts().sort_index().items())
    return f"{len(df)} utterances; labels: {labels}; sessions: {sessions}; speakers: {df['speaker'].nunique()}"


def check_labels(df: pd.DataFrame, labels: LabelSet, source: str) -> None:
    """Refuse, before any audio is read, labels outside the study's label set (naming them and a first row)."""
    bad = ~df["label"].isin(labels.classes)
    if bad.any():
        first = df.loc[bad].iloc[0]
        raise InputError(f"{source}: label(s) {sorted(df.loc[bad, 'label'].astype(str).unique())[:5]} in "
                         f"{int(bad.sum())} row(s) are not in the label set {list(labels.classes)} (first: utt_id "
                         f"{first['utt_id']}); map or drop them, or set `labels:` in the config")


def read_manifest(path: str | Path, labels: LabelSet) -> pd.DataFrame:
    """A manifest written by ``ser prepare``: checked for its columns and labels before inference starts."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"manifest {p} does not exist (run `ser prepare` first)" if not p.exists()
                         else f"manifest {p} is not a file")
    try:
        df = pd.read_parquet(p)
    except (OSError, ValueError) as exc:
        raise InputError(f"manifest {p} is not a readable Parquet file: {' '.join(str(exc).split())[:200]}") from None
    missing = [c for c in ("utt_id", "path", "label", "fold") if c not in df.columns]
    if missing:
        hint = " — it looks like a score table; `ser infer` needs the manifest from `ser prepare`" \
            if any(str(c).startswith("speech_") for c in df.columns) else ""
        raise InputError(f"manifest {p}: missing column(s) {missing}{hint}")
    check_labels(df, labels, f"manifest {p}")
    return df
