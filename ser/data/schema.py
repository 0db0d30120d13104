"""The score table (docs/design.md §2): the contract between inference and every later stage.

One row per utterance and scoring model fold. ``validate`` normalizes optional columns and
raises :class:`ScoreTableError` naming the column and the first offending rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ser._util.io import InputError, write_parquet
from ser.data.labels import DEFAULT_LABELS, SENTIMENTS, LabelSet

TEXT_COLUMNS = [f"text_{s}" for s in SENTIMENTS]
ID_COLUMNS = ["utt_id", "corpus", "label", "fold"]
SPLITS = ("test", "val", "train")
KEY = ["corpus", "utt_id", "model_fold"]
SUM_TOLERANCE = 1e-3
_SHOWN_ROWS = 5


class ScoreTableError(InputError):
    """A score table breaks the contract; the message names the column and first bad rows."""


def required_columns(labels: LabelSet = DEFAULT_LABELS) -> list[str]:
    return ID_COLUMNS + labels.speech_columns + TEXT_COLUMNS


def _rows(df: pd.DataFrame, mask: np.ndarray) -> str:
    """Describe the first offending rows by position and utt_id."""
    idx = np.flatnonzero(mask)
    ids = df["utt_id"].to_numpy() if "utt_id" in df else [None] * len(df)
    shown = ", ".join(f"row {i} (utt_id={ids[i]})" for i in idx[:_SHOWN_ROWS])
    more = f" and {len(idx) - _SHOWN_ROWS} more" if len(idx) > _SHOWN_ROWS else ""
    return f"{len(idx)} row(s): {shown}{more}"


def validate(df: pd.DataFrame, labels: LabelSet = DEFAULT_LABELS, source: str = "score table") -> pd.DataFrame:
    """Check ``df`` against the contract and return a normalized copy.

    Fills optional columns (``transcript`` '', ``transcript_source`` '', ``model_fold`` = fold,
    ``split`` = 'test'), casts id columns to str, and rejects: missing columns, NaN, probabilities
    outside [0, 1] or not summing to 1 ± 1e-3, unknown labels or splits, duplicate keys, folds
    without test rows.
    """
    def fail(msg: str) -> None:
        raise ScoreTableError(f"{source}: {msg}")

    missing = [c for c in required_columns(labels) if c not in df.columns]
    extra = sorted(c for c in df.columns if str(c).startswith("speech_") and c not in labels.speech_columns
                   and c != "speech_worker")
    if extra:
        fail(f"column(s) {extra} are not in the label set {list(labels.classes)}: name the table's classes in the "
             f"config's `labels: {{classes: [...]}}`")
    if missing:
        fail(f"missing column(s) {missing}; have {list(df.columns)}")
    if len(df) == 0:
        fail("no rows")
    out = df.reset_index(drop=True).copy()
    defaults = {"transcript": "", "transcript_source": "", "split": "test"}
    for col, value in defaults.items():
        if col not in out:
            out[col] = value
    if "model_fold" not in out:
        out["model_fold"] = out["fold"]

    for col in ID_COLUMNS + ["model_fold", "split"]:
        nulls = out[col].isna().to_numpy()
        if nulls.any():
            fail(f"column '{col}' is empty in {_rows(out, nulls)}")
        out[col] = out[col].astype(str)
    for col in ("transcript", "transcript_source"):
        out[col] = out[col].astype(object).where(out[col].notna(), "").astype(str)

    paths = text_path_names(out.columns)
    for name in paths:
        if name == "primary":
            fail("text path 'primary': that name means the unsuffixed text_* columns (joint fusions name paths "
                 "by it); rename the columns text_*:primary")
        missing_path = [c for c in path_columns(name)[:3] if c not in out.columns]
        if missing_path:
            fail(f"text path '{name}': missing column(s) {missing_path} (a path needs text_neg:, text_neu: and "
                 f"text_pos:{name})")
        for col in path_columns(name)[3:]:
            out[col] = out[col].astype(object).where(out[col].notna(), "").astype(str) if col in out else ""
    if "reference_transcript" in out:
        out["reference_transcript"] = out["reference_transcript"].astype(object) \
            .where(out["reference_transcript"].notna(), "").astype(str)
    groups = [("speech", labels.speech_columns), ("text", TEXT_COLUMNS)] + \
             [(f"text path '{name}'", path_columns(name)[:3]) for name in paths]
    for group, cols in groups:
        out[cols] = _checked_probabilities(out, group, cols, fail)

    bad = ~out["label"].isin(labels.classes).to_numpy()
    if bad.any():
        unknown = sorted(out.loc[bad, "label"].unique())[:_SHOWN_ROWS]
        fail(f"column 'label' has unknown label(s) {unknown} (label set {list(labels.classes)}) in {_rows(out, bad)}")
    bad = ~out["split"].isin(SPLITS).to_numpy()
    if bad.any():
        fail(f"column 'split' must be one of {list(SPLITS)} in {_rows(out, bad)}")
    dup = out.duplicated(KEY, keep="first").to_numpy()
    if dup.any():
        fail(f"duplicate key {KEY} in {_rows(out, dup)}")

    test = out["split"].to_numpy() == "test"
    folds_with_tests = set(out.loc[test, "fold"])
    empty = sorted((set(out["fold"]) | set(out["model_fold"])) - folds_with_tests)
    if empty:
        fail(f"fold(s) {empty} have no test rows")
    return out


def _checked_probabilities(out: pd.DataFrame, group: str, cols: list[str], fail) -> np.ndarray:
    """One probability group as a float matrix: numeric, no NaN, within [0, 1], rows summing to 1."""
    try:
        probs = out[cols].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        fail(f"{group} probability columns {cols} are not numeric: {exc}")
    for j, col in enumerate(cols):
        bad = np.isnan(probs[:, j])
        if bad.any():
            fail(f"column '{col}' has NaN in {_rows(out, bad)}")
        bad = (probs[:, j] < 0) | (probs[:, j] > 1)
        if bad.any():
            fail(f"column '{col}' has probabilities outside [0, 1] in {_rows(out, bad)}")
    bad = np.abs(probs.sum(axis=1) - 1.0) > SUM_TOLERANCE
    if bad.any():
        fail(f"{group} probabilities {cols} do not sum to 1 ± {SUM_TOLERANCE} in {_rows(out, bad)}")
    return probs


def text_path_names(columns) -> list[str]:
    """Further text paths of a table, named by their column suffix (``text_neg:NAME``), in column order."""
    names = [str(c).split(":", 1)[1] for c in columns if str(c).startswith(("text_neg:", "text_neu:", "text_pos:"))]
    return list(dict.fromkeys(names))


def path_columns(name: str) -> list[str]:
    """A further path's columns: its three sentiment probabilities, transcript and transcript source."""
    return [f"{c}:{name}" for c in TEXT_COLUMNS + ["transcript", "transcript_source"]]


def path_view(df: pd.DataFrame, name: str | None) -> pd.DataFrame:
    """The table as if path ``name`` were the primary one (None: the table itself), so every rule, search and
    metric runs on any path unchanged."""
    if name is None:
        return df
    cols = path_columns(name)
    primary = TEXT_COLUMNS + ["transcript", "transcript_source"]
    return df.assign(**{p: df[c] for p, c in zip(primary, cols) if c in df})


def require_classes(df: pd.DataFrame, source: str) -> None:
    """Refuse a table whose gold labels are all one class: UA, F1 and their comparisons mean nothing there."""
    if df["label"].nunique() < 2:
        raise ScoreTableError(f"{source}: every row has the label '{df['label'].iloc[0]}' ({len(df)} rows): "
                              f"per-class metrics need at least two classes")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Parquet or CSV table as is (id columns as strings), without validation."""
    p = Path(path)
    if not p.exists():
        raise ScoreTableError(f"score table {p} does not exist")
    if p.is_dir():
        raise ScoreTableError(f"score table {p} is a directory, not a .parquet or .csv file")
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ScoreTableError(f"score table {p}: unsupported format '{p.suffix}' (use .parquet or .csv)")
    try:
        if suffix == ".csv":
            text_cols = ID_COLUMNS + ["model_fold", "split", "transcript", "speaker", "session"]
            df = pd.read_csv(p, dtype={c: str for c in text_cols}, keep_default_na=False, na_values=["", "nan", "NaN"])
        else:
            df = pd.read_parquet(p)
    except pd.errors.EmptyDataError:
        raise ScoreTableError(f"score table {p} is empty (no header, no rows)") from None
    except PermissionError as exc:
        raise ScoreTableError(f"score table {p}: cannot read it ({exc.strerror})") from None
    except (OSError, ValueError) as exc:     # pyarrow's ArrowInvalid is a ValueError; truncated files an OSError
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise ScoreTableError(f"score table {p} is not a readable {kind} file: {' '.join(str(exc).split())[:200]}") \
            from None
    return _shaped(df, p)


def _shaped(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Refuse what is not a table of columns at all: no columns, or one column holding another delimiter."""
    if len(df.columns) == 0:
        raise ScoreTableError(f"score table {path} has no columns (an empty schema)")
    if len(df.columns) == 1:
        header = str(df.columns[0])
        for name, sep in (("semicolons", ";"), ("tabs", "\t"), ("'|'", "|")):
            if sep in header:
                raise ScoreTableError(f"score table {path}: its header is one column separated by {name} "
                                      f"({header[:60]!r}); write it comma-separated (or as Parquet)")
    return df


def labels_of(table: pd.DataFrame, source: str) -> LabelSet:
    """The label set a score table's ``speech_*`` columns imply, or an error naming what the table lacks."""
    speech = [c for c in table.columns if str(c).startswith("speech_") and c != "speech_worker"]
    if not speech:
        if {"path", "label"} <= set(table.columns):
            raise ScoreTableError(f"{source} is a manifest (audio paths and labels, no scores): run `ser infer "
                                  f"--manifest {source}` to score it first")
        raise ScoreTableError(f"{source} has no speech_* probability columns; have {list(table.columns)[:12]}")
    if "label" in table:
        named = {f"speech_{c}" for c in DEFAULT_LABELS.classes if (table["label"].astype(str) == c).any()}
        missing = sorted(named - set(speech))
        if missing:
            raise ScoreTableError(f"{source}: missing column(s) {missing}, for labels the 'label' column uses")
    try:
        return LabelSet.from_columns(list(table.columns))
    except ValueError as exc:
        raise ScoreTableError(f"{source}: {exc}") from None


def read_scores(path: str | os.PathLike, labels: LabelSet | None = None) -> pd.DataFrame:
    """A validated score table (Parquet or CSV); the label set defaults to the one its columns imply."""
    table = read_table(path)
    return validate(table, labels or labels_of(table, str(path)), source=str(path))


def write_scores(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a score table atomically (Parquet)."""
    write_parquet(df, path)
