"""Generic manifests: a CSV or JSONL table of utterances, with a YAML column map."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.data.corpora import finish_manifest
from ser._util.io import InputError

if TYPE_CHECKING:
    from ser.config import PrepareConfig

REQUIRED = ["utt_id", "path", "label"]


def prepare_manifest(table: str | Path, columns: dict[str, str] | None = None, corpus: str | None = None,
                     labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Read ``table`` (.csv/.jsonl/.parquet), rename ``columns`` {source: manifest name}, recode ``labels``."""
    p = Path(table)
    if p.suffix == ".csv":
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    elif p.suffix in (".jsonl", ".json"):
        df = pd.read_json(p, lines=p.suffix == ".jsonl", dtype=False)
    elif p.suffix == ".parquet":
        df = pd.read_parquet(p)
    else:
        raise InputError(f"manifest {p}: unsupported format '{p.suffix}' (use .csv, .jsonl or .parquet)")
    df = df.rename(columns=columns or {})
    if corpus or "corpus" not in df:
        df["corpus"] = corpus or p.stem
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise InputError(f"manifest {p}: missing column(s) {missing} after the column map; have {list(df.columns)}")
    if labels:
        unknown = sorted(set(df["label"]) - set(labels))
        if unknown:
            raise InputError(f"manifest {p}: label(s) {unknown[:5]} are not in the label map {sorted(labels)}")
        df["label"] = df["label"].map(labels)
    base = p.parent
    df["path"] = [str(x) if Path(x).is_absolute() else str(base / x) for x in df["path"]]
    if "duration_s" in df:
        df["duration_s"] = pd.to_numeric(df["duration_s"], errors="coerce")
    return finish_manifest(df.to_dict("records"), str(df["corpus"].iloc[0]) if len(df) else p.stem)


def from_config(cfg: "PrepareConfig") -> pd.DataFrame:
    """The registered parser: ``prepare.table`` lists the utterances, ``prepare.columns`` maps its columns."""
    if not cfg.table:
        raise InputError("prepare.table: the manifest file (CSV/JSONL/Parquet) is required for corpus 'manifest'")
    return prepare_manifest(cfg.table, cfg.columns, None, cfg.labels)
