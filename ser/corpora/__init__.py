"""Corpus preparation: raw corpus directories → manifests (one row per utterance).

Manifest columns: utt_id, corpus, path, label, speaker, session, gender, duration_s,
transcript (reference text, '' if unknown), condition (improvised/scripted/... where known).
"""

from __future__ import annotations

import pandas as pd

MANIFEST_COLUMNS = ["utt_id", "corpus", "path", "label", "speaker", "session", "gender", "duration_s",
                    "transcript", "condition"]


def finish_manifest(rows: list[dict], corpus: str) -> pd.DataFrame:
    """Rows → manifest in column order, sorted by utt_id; errors if nothing was found."""
    if not rows:
        raise ValueError(f"{corpus}: no utterances found")
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
