"""Cross-validation folds and leakage-free tuning sets (docs/design.md §3).

A fold is a held-out group (speaker or session). For fold k, the *test* rows are fold k's
rows scored by fold k's model; the *tuning* rows depend on the protocol:

- ``oof``: test rows of every other fold (out-of-sample, one score per utterance suffices);
- ``val``: fold k's model's validation rows;
- ``trainval``: fold k's model's train + validation rows (published; in-sample, optimistic).

No protocol lets a row of fold k's test set into fold k's tuning set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ser._util.io import InputError

TUNING_PROTOCOLS = ("oof", "val", "trainval")


@dataclass(frozen=True)
class FoldProtocol:
    """Leave-one-group-out on ``column``; ``n_folds`` is checked when given."""

    column: str
    n_folds: int | None = None


PROTOCOLS: dict[str, FoldProtocol] = {
    "iemocap-speaker": FoldProtocol("speaker", 10),
    "iemocap-session": FoldProtocol("session", 5),
    "msp_improv-session": FoldProtocol("session", 6),
    "msp_improv-speaker": FoldProtocol("speaker", 12),
}


def resolve_protocol(name_or_column: str) -> FoldProtocol:
    """A named protocol, or leave-one-group-out on any column (``column:speaker`` or ``speaker``)."""
    if name_or_column in PROTOCOLS:
        return PROTOCOLS[name_or_column]
    return FoldProtocol(name_or_column.removeprefix("column:"))


def assign_folds(df: pd.DataFrame, protocol: str | FoldProtocol) -> pd.DataFrame:
    """Return a copy whose ``fold`` column is the protocol's group column (checked for fold count)."""
    proto = resolve_protocol(protocol) if isinstance(protocol, str) else protocol
    if proto.column not in df.columns:
        raise InputError(f"fold protocol needs column '{proto.column}'; table has {list(df.columns)}")
    groups = df[proto.column]
    if groups.isna().any():
        raise InputError(f"fold column '{proto.column}' is empty in {int(groups.isna().sum())} row(s)")
    n = groups.nunique()
    if proto.n_folds is not None and n != proto.n_folds:
        raise InputError(f"fold protocol on '{proto.column}' expects {proto.n_folds} groups, found {n}: "
                         f"{sorted(groups.astype(str).unique())}")
    out = df.copy()
    out["fold"] = groups.astype(str)
    return out


def leave_one_group_out(groups: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(group, train_mask, test_mask) for each distinct group, in sorted order."""
    groups = np.asarray(groups).astype(str)
    return [(g, groups != g, groups == g) for g in np.unique(groups)]


def fold_ids(df: pd.DataFrame) -> list[str]:
    """Folds that have test rows, sorted."""
    return sorted(df.loc[df["split"] == "test", "fold"].unique())


@dataclass(frozen=True)
class FoldSplit:
    """Row masks of one fold: where its parameters are tuned and where they are tested."""

    fold: str
    tuning: np.ndarray
    test: np.ndarray


def own_test_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows that are their own fold's test rows (scored by that fold's model)."""
    return ((df["split"] == "test") & (df["fold"] == df["model_fold"])).to_numpy()


def test_masks(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each fold's test-row mask, in sorted fold order."""
    fold, own = df["fold"].to_numpy(), own_test_rows(df)
    return {k: own & (fold == k) for k in fold_ids(df)}


def fold_splits(df: pd.DataFrame, protocol: str = "oof") -> list[FoldSplit]:
    """Tuning and test masks for every fold of a validated score table."""
    if protocol not in TUNING_PROTOCOLS:
        raise InputError(f"tuning protocol '{protocol}' is not one of {list(TUNING_PROTOCOLS)}")
    fold = df["fold"].to_numpy()
    model_fold = df["model_fold"].to_numpy()
    split = df["split"].to_numpy()
    is_test = own_test_rows(df)
    out = []
    for k, test in test_masks(df).items():
        if protocol == "oof":
            tuning = is_test & (fold != k)
        elif protocol == "val":
            tuning = (model_fold == k) & (split == "val")
        else:
            tuning = (model_fold == k) & np.isin(split, ["train", "val"])
        tuning &= fold != k
        if not tuning.any():
            raise InputError(f"fold '{k}': protocol '{protocol}' gives an empty tuning set "
                             f"(needs rows with model_fold={k!r} and split in "
                             f"{'[test] of other folds' if protocol == 'oof' else protocol})")
        out.append(FoldSplit(k, tuning, test))
    return out


def group_sizes(folds: np.ndarray) -> tuple[int, ...]:
    """Rows of each distinct fold in sorted fold order: the held-out groups of an inner estimate on these rows."""
    return tuple(int(n) for n in np.unique(np.asarray(folds).astype(str), return_counts=True)[1])


def tuning_group_sizes(df: pd.DataFrame, protocol: str = "oof") -> dict[str, tuple[int, ...]]:
    """Per fold, :func:`group_sizes` of its tuning rows (what ``ser.tuning.choice.loss_allowed`` scales by)."""
    fold = df["fold"].to_numpy()
    return {s.fold: group_sizes(fold[s.tuning]) for s in fold_splits(df, protocol)}


def scoring_rows(manifest: pd.DataFrame, in_sample: bool = False, val_share: float = 0.1) -> pd.DataFrame:
    """The (utterance, scoring model) rows to infer: each utterance by its own fold's model (split test);
    with ``in_sample``, also by every other fold's model (split train, or val for a stable ``val_share``
    of each model's rows) — what the ``val``/``trainval`` tuning protocols need."""
    own = manifest.assign(model_fold=manifest["fold"], split="test")
    if not in_sample:
        return own
    parts = [own]
    for k in sorted(manifest["fold"].unique()):
        other = manifest[manifest["fold"] != k]
        draw = pd.util.hash_array((other["utt_id"].astype(str) + "|" + str(k)).to_numpy()) % 10_000
        parts.append(other.assign(model_fold=k, split=np.where(draw < val_share * 10_000, "val", "train")))
    return pd.concat(parts, ignore_index=True)
