"""Score tables as precomputed numpy arrays: the form every fusion rule and search works on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ser.labels import DEFAULT_LABELS, LabelSet
from ser.schema import TEXT_COLUMNS
from ser.uncertainty import entropy_varentropy


@dataclass(frozen=True)
class ScoreArrays:
    """Whole-table arrays computed once: labels as ints, probabilities, H, V and argmaxes.

    ``y`` gold class index; ``p`` speech probabilities (n, K); ``q`` sentiment (n, 3: neg neu pos);
    ``h``/``v`` entropy/varentropy of ``p``; ``speech`` argmax of ``p``; ``sentiment`` argmax of ``q``;
    ``group`` an integer code of each row's fold (the groups of inner cross-validation on a tuning set).
    """

    labels: LabelSet
    y: np.ndarray
    p: np.ndarray
    q: np.ndarray
    h: np.ndarray
    v: np.ndarray
    speech: np.ndarray
    sentiment: np.ndarray
    group: np.ndarray

    @classmethod
    def from_table(cls, df: pd.DataFrame, labels: LabelSet = DEFAULT_LABELS) -> "ScoreArrays":
        """Build from a validated score table."""
        p = df[labels.speech_columns].to_numpy(dtype=np.float64)
        q = df[TEXT_COLUMNS].to_numpy(dtype=np.float64)
        codes = {c: i for i, c in enumerate(labels.classes)}
        y = df["label"].map(codes).to_numpy(dtype=np.int64)
        group = np.unique(df["fold"].to_numpy(dtype=str), return_inverse=True)[1] if "fold" in df else None
        return cls.from_probs(labels, y, p, q, group)

    @classmethod
    def from_probs(cls, labels: LabelSet, y: np.ndarray, p: np.ndarray, q: np.ndarray,
                   group: np.ndarray | None = None) -> "ScoreArrays":
        h, v = entropy_varentropy(p)
        group = np.zeros(len(y), dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
        return cls(labels, np.asarray(y, dtype=np.int64), p, q, h, v,
                   np.argmax(p, axis=1), np.argmax(q, axis=1), group)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> "ScoreArrays":
        """Rows selected by an integer index or boolean mask."""
        return ScoreArrays(self.labels, self.y[index], self.p[index], self.q[index], self.h[index],
                           self.v[index], self.speech[index], self.sentiment[index], self.group[index])
