"""Score tables as precomputed numpy arrays: the form every fusion rule and search works on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ser.data.labels import DEFAULT_LABELS, SENTIMENTS, LabelSet
from ser.data.schema import TEXT_COLUMNS, text_path_names
from ser.data.uncertainty import entropy_varentropy
from ser._util.io import InputError


@dataclass(frozen=True)
class ScoreArrays:
    """Whole-table arrays computed once: labels as ints, probabilities, H, V and argmaxes.

    ``y`` gold class index; ``p`` speech probabilities (n, K); ``q`` sentiment (n, 3: neg neu pos);
    ``h``/``v`` entropy/varentropy of ``p``; ``speech`` argmax of ``p``; ``sentiment`` argmax of ``q``;
    ``group`` an integer code of each row's fold (the groups of inner cross-validation on a tuning set);
    ``texts`` the sentiment (n, 3) of each further text path (``text_*:NAME`` columns), by path name.
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
    texts: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_table(cls, df: pd.DataFrame, labels: LabelSet = DEFAULT_LABELS) -> "ScoreArrays":
        """Build from a validated score table."""
        p = df[labels.speech_columns].to_numpy(dtype=np.float64)
        q = df[TEXT_COLUMNS].to_numpy(dtype=np.float64)
        codes = {c: i for i, c in enumerate(labels.classes)}
        y = df["label"].map(codes).to_numpy(dtype=np.int64)
        group = np.unique(df["fold"].to_numpy(dtype=str), return_inverse=True)[1] if "fold" in df else None
        texts = {name: df[[f"text_{s}:{name}" for s in SENTIMENTS]].to_numpy(dtype=np.float64)
                 for name in text_path_names(df.columns)}
        return cls.from_probs(labels, y, p, q, group, texts)

    @classmethod
    def from_probs(cls, labels: LabelSet, y: np.ndarray, p: np.ndarray, q: np.ndarray,
                   group: np.ndarray | None = None, texts: dict[str, np.ndarray] | None = None) -> "ScoreArrays":
        h, v = entropy_varentropy(p)
        group = np.zeros(len(y), dtype=np.int64) if group is None else np.asarray(group, dtype=np.int64)
        return cls(labels, np.asarray(y, dtype=np.int64), p, q, h, v,
                   np.argmax(p, axis=1), np.argmax(q, axis=1), group, dict(texts or {}))

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> "ScoreArrays":
        """Rows selected by an integer index or boolean mask."""
        return ScoreArrays(self.labels, self.y[index], self.p[index], self.q[index], self.h[index],
                           self.v[index], self.speech[index], self.sentiment[index], self.group[index],
                           {name: q[index] for name, q in self.texts.items()})

    def text(self, path: str) -> np.ndarray:
        """The sentiment (n, 3) of text path ``path``: :data:`PRIMARY_PATH` or a further path's name."""
        if path == PRIMARY_PATH:
            return self.q
        if path not in self.texts:
            raise InputError(f"text path '{path}' is not in the score table (its paths: "
                             f"{[PRIMARY_PATH, *self.texts]}; a further path NAME has columns text_neg:NAME, ...)")
        return self.texts[path]

    @property
    def paths(self) -> list[str]:
        """Every text path: the primary one, then the further ones in column order."""
        return [PRIMARY_PATH, *self.texts]


PRIMARY_PATH = "primary"
"""How a joint fusion names the table's unsuffixed text path (``text_neg``, ``text_neu``, ``text_pos``)."""


def same_on_every_row(values: np.ndarray) -> bool:
    """Whether a (rows, columns) array is one row repeated: a text path that says the same for every utterance."""
    return bool((np.ptp(values, axis=0) == 0).all()) if len(values) else True
