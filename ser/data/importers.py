"""Import score tables written by other tools through a small YAML/dict mapping.

Mapping keys (all optional)::

    columns:   {source_name: canonical_name}     # e.g. {"0_Score": text_neg, id: utt_id}
    labels:    {A: ang, H: hap, N: neu, S: sad}  # gold label codes → label-set classes
    sentiment: {label: col, score: col, codes: {negative: neg, neutral: neu, positive: pos}}
               # a top sentiment label with confidence c → c on that label, (1-c)/2 on the others
    constants: {corpus: iemocap}                 # columns filled with one value
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ser._util.io import InputError, check_keys, read_yaml
from ser.data.labels import DEFAULT_LABELS, SENTIMENTS, LabelSet
from ser.data.schema import TEXT_COLUMNS, ScoreTableError, path_columns, text_path_names, validate

MAPPING_KEYS = {"columns", "labels", "sentiment", "constants"}
SENTIMENT_KEYS = {"label", "score", "codes"}


def load_mapping(path: str | Path) -> dict[str, Any]:
    raw = read_yaml(path, "import mapping") or {}
    if not isinstance(raw, dict):
        raise InputError(f"import mapping {path}: top level must be a mapping")
    return raw


def apply_mapping(df: pd.DataFrame, mapping: dict[str, Any], labels: LabelSet = DEFAULT_LABELS,
                  source: str = "imported table") -> pd.DataFrame:
    """Rename columns, recode labels, expand top-label sentiment, then validate."""
    check_keys(mapping, MAPPING_KEYS, "import mapping")
    columns = mapping.get("columns") or {}
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ScoreTableError(f"{source}: mapping renames column(s) {missing} that the table lacks; "
                              f"have {list(df.columns)}")
    out = df.rename(columns=columns)
    for col, value in (mapping.get("constants") or {}).items():
        out[col] = value
    if mapping.get("labels"):
        codes = {str(k): v for k, v in mapping["labels"].items()}
        raw = out["label"].astype(str)
        unmapped = ~raw.isin(codes.keys())
        if unmapped.any():
            raise ScoreTableError(f"{source}: label code(s) {sorted(raw[unmapped].unique())[:5]} are not in "
                                  f"the mapping {sorted(codes)} (first row {int(np.flatnonzero(unmapped)[0])})")
        out["label"] = raw.map(codes)
    if mapping.get("sentiment"):
        out = _expand_top_label(out, mapping["sentiment"], source)
    return validate(out, labels, source=source)


def _expand_top_label(df: pd.DataFrame, spec: dict[str, Any], source: str) -> pd.DataFrame:
    """Top sentiment label + confidence c → probabilities: c on the label, (1 - c)/2 on each other."""
    check_keys(spec, SENTIMENT_KEYS, "import mapping: sentiment")
    label_col, score_col = spec.get("label", "sentiment_label"), spec.get("score", "sentiment_score")
    for col in (label_col, score_col):
        if col not in df.columns:
            raise ScoreTableError(f"{source}: sentiment column '{col}' is missing")
    codes = {str(k): v for k, v in (spec.get("codes") or {s: s for s in SENTIMENTS}).items()}
    bad_targets = sorted(set(codes.values()) - set(SENTIMENTS))
    if bad_targets:
        raise InputError(f"import mapping: sentiment codes map to {bad_targets}, expected {list(SENTIMENTS)}")
    top = df[label_col].astype(str).map(codes)
    if top.isna().any():
        first = int(np.flatnonzero(top.isna().to_numpy())[0])
        raise ScoreTableError(f"{source}: sentiment label '{df[label_col].iloc[first]}' (row {first}) "
                              f"is not in the codes {sorted(codes)}")
    conf = df[score_col].to_numpy(dtype=np.float64)
    out = df.copy()
    for s in SENTIMENTS:
        out[f"text_{s}"] = np.where(top.to_numpy() == s, conf, (1.0 - conf) / 2)
    return out


def add_text_path(table: pd.DataFrame, source: pd.DataFrame, name: str, labels: LabelSet = DEFAULT_LABELS
                  ) -> pd.DataFrame:
    """A validated score table with ``source``'s text path (its primary ``text_*``, ``transcript`` and
    ``transcript_source``) added as path ``name`` (``text_neg:NAME`` ...), joined on (corpus, utt_id); every
    utterance of ``table`` must be in ``source``."""
    if not name or ":" in name or name != name.strip():
        raise InputError(f"text path name {name!r} must be non-empty, without ':' or surrounding spaces")
    if name in text_path_names(table.columns):
        raise InputError(f"the score table already has a text path '{name}'")
    cols = TEXT_COLUMNS + ["transcript", "transcript_source"]
    one = source.drop_duplicates(["corpus", "utt_id"]).set_index(["corpus", "utt_id"])[cols]
    keys = pd.MultiIndex.from_frame(table[["corpus", "utt_id"]].astype(str))
    missing = ~keys.isin(one.index)
    if missing.any():
        first = keys[np.flatnonzero(missing)[0]]
        raise InputError(f"text path '{name}': {int(missing.sum())} utterance(s) of the score table are not in the "
                         f"source (first: corpus {first[0]}, utt_id {first[1]})")
    added = one.reindex(keys).to_numpy()
    out = table.copy()
    for col, values in zip(path_columns(name), added.T):
        out[col] = values
    return validate(out, labels, source=f"score table + text path '{name}'")
