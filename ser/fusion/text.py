"""How a text path becomes evidence a fusion rule reads: a negative sentiment mapped onto one of the negative emotion
classes (:class:`NegativeMapping`, :func:`text_labels`), and the 3-class sentiment read as a distribution over the
K emotion classes (:class:`TextDistribution`: spread, negative split, prior, uniform mixing)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from ser.data.arrays import PRIMARY_PATH, ScoreArrays
from ser._util.io import InputError, check_keys
from ser.data.labels import LabelSet

EPS = 1e-6
"""Floor of a probability before its logarithm or a division."""


@dataclass(frozen=True)
class NegativeMapping:
    """How a negative sentiment becomes one of the negative classes, per speech-predicted class.

    ``refer``: the negative class the speech model rates highest. ``score-split``: negative
    confidence ≤ t → first negative class (ang) else the second (sad); ``flip`` swaps them.
    """

    split: np.ndarray   # (K,) bool: score-split instead of refer
    t: np.ndarray       # (K,) float threshold on the negative confidence
    flip: np.ndarray    # (K,) bool

    @classmethod
    def from_config(cls, raw: Any, labels: LabelSet) -> "NegativeMapping":
        """``'refer'``, ``{mode: score-split, t: .5, flip: false}``, or ``{class: one of those}``."""
        raw = "refer" if raw is None else raw
        if isinstance(raw, Mapping) and set(raw) <= set(labels.classes) and raw:
            missing = sorted(set(labels.classes) - set(raw))
            if missing:
                raise InputError(f"negative: per-class mapping is missing {missing}")
            parts = [cls._one(raw[c], labels) for c in labels.classes]
        else:
            parts = [cls._one(raw, labels)] * labels.k
        split, t, flip = zip(*parts)
        return cls(np.array(split), np.array(t, dtype=float), np.array(flip))

    @staticmethod
    def _one(raw: Any, labels: LabelSet) -> tuple[bool, float, bool]:
        if raw == "refer":
            return False, 0.0, False
        if isinstance(raw, Mapping) and raw.get("mode") == "score-split":
            check_keys(raw, {"mode", "t", "flip"}, "negative (score-split)")
            if len(labels.negative) != 2:
                raise InputError("negative: score-split needs exactly two negative classes")
            t = float(raw.get("t", 0.5))
            if not 0.0 <= t <= 1.0:
                raise InputError(f"negative: score-split t must be in [0, 1], got {t}")
            return True, t, bool(raw.get("flip", False))
        raise InputError(f"negative: expected 'refer' or {{mode: score-split, t, flip}}, got {raw!r}")

    def apply(self, a: ScoreArrays) -> np.ndarray:
        """Negative class index for every row (used where the sentiment is negative)."""
        labels = a.labels
        neg_idx = np.array([labels.index(c) for c in labels.negative])
        refer = neg_idx[np.argmax(a.p[:, neg_idx], axis=1)]
        if not self.split.any():
            return refer
        c = a.speech
        first_is_low = (a.q[:, 0] <= self.t[c]) ^ self.flip[c]
        by_score = np.where(first_is_low, neg_idx[0], neg_idx[-1])
        return np.where(self.split[c], by_score, refer)


REFER = "refer"


def text_labels(a: ScoreArrays, negative: NegativeMapping) -> np.ndarray:
    """Sentiment argmax mapped to emotion classes: pos → positive, neu → neutral, neg → by ``negative``."""
    labels = a.labels
    mapped = np.array([-1, labels.index(labels.neutral), labels.index(labels.positive)])[a.sentiment]
    return np.where(a.sentiment == 0, negative.apply(a), mapped)


SPREADS = ("probs", "top")
NEGATIVE_SPLITS = ("even", "ratio")
PRIORS = ("keep", "divide")


@dataclass(frozen=True)
class TextDistribution:
    """How the 3-class sentiment becomes a distribution q over the K emotion classes (soft fusion).

    ``spread``: ``probs`` spreads the sentiment probabilities as given; ``top`` puts the top
    label's confidence c on its mapped class and (1 − c)/K on every class — the natural reading
    of a sentiment model reported as top label + confidence. ``negative_split``: negative mass
    goes to the negative classes ``even``ly or in the ``ratio`` of the speech model's
    probabilities for them (p_ang : p_sad). ``prior``: ``keep`` q as mapped, or ``divide`` it by its
    mean over the rows the fusion was fitted on (``base``, per text path), so the text adds only its
    evidence beyond what it says on average, as Bayes' rule for two posteriors divides by the prior
    (a sentiment model that says "neutral" for half the corpus does not push every row toward neu).
    ``uniform``: mixing weight λ, q ← (1 − λ)·q + λ/K.
    """

    spread: str = "probs"
    negative_split: str = "even"
    uniform: float = 0.0
    prior: str = "keep"
    base: tuple[tuple[str, tuple[float, ...]], ...] | None = None
    """``divide``: each path's mean mapped distribution on the fitting rows (label-free; None: the rows at hand)."""

    def __post_init__(self) -> None:
        if self.spread not in SPREADS:
            raise InputError(f"text.spread '{self.spread}' is not one of {list(SPREADS)}")
        if self.negative_split not in NEGATIVE_SPLITS:
            raise InputError(f"text.negative_split '{self.negative_split}' is not one of {list(NEGATIVE_SPLITS)}")
        if not 0.0 <= self.uniform <= 1.0:
            raise InputError(f"text.uniform must be in [0, 1], got {self.uniform}")
        if self.prior not in PRIORS:
            raise InputError(f"text.prior '{self.prior}' is not one of {list(PRIORS)}")
        if self.base is not None and (self.prior != "divide" or any(
                not v or not all(np.isfinite(x) and x > 0 for x in v) for _, v in self.base)):
            raise InputError("text.base must map each text path to positive class means, with prior: divide; got "
                             f"{dict(self.base)!r}")

    @classmethod
    def from_config(cls, raw: Any) -> "TextDistribution":
        """``{spread, negative_split, uniform, prior, base}`` (all optional); unknown keys are errors."""
        raw = raw or {}
        if not isinstance(raw, Mapping):
            raise InputError(f"text must be a mapping {{spread, negative_split, uniform, prior}}, got {raw!r}")
        check_keys(raw, {"spread", "negative_split", "uniform", "prior", "base"}, "text")
        base = raw.get("base")
        if base is not None and not isinstance(base, Mapping):
            raise InputError(f"text.base must map text paths to class means (e.g. {{{PRIMARY_PATH}: [...]}}), "
                             f"got {base!r}")
        return cls(str(raw.get("spread", "probs")), str(raw.get("negative_split", "even")),
                   float(raw.get("uniform", 0.0)), str(raw.get("prior", "keep")),
                   None if base is None else tuple((str(path), tuple(float(x) for x in values))
                                                   for path, values in base.items()))

    def to_config(self) -> dict:
        out = {"spread": self.spread, "negative_split": self.negative_split, "uniform": self.uniform}
        if self.prior != "keep":
            out["prior"] = self.prior
        if self.base is not None:
            out["base"] = {path: list(values) for path, values in self.base}
        return out

    def fitted(self, a: ScoreArrays, paths: list[str]) -> "TextDistribution":
        """With ``prior: divide``, the same reading with ``base`` measured on these (fitting) rows; else itself."""
        if self.prior != "divide":
            return self
        means = {path: np.round(np.maximum(self._mapped(a, path).mean(axis=0), EPS), 6) for path in paths}
        return replace(self, base=tuple((path, tuple(map(float, m))) for path, m in means.items()))

    def apply(self, a: ScoreArrays, path: str = PRIMARY_PATH) -> np.ndarray:
        """(n, K) rows summing to 1, from text path ``path``'s sentiment."""
        q = self._mapped(a, path)
        if self.prior == "divide":
            bases = dict(self.base or ())
            if self.base is not None and path not in bases:
                raise InputError(f"text.base has no means for text path '{path}' (it has {list(bases)})")
            base = np.asarray(bases[path]) if path in bases else np.maximum(q.mean(axis=0), EPS)
            if base.shape != (q.shape[1],):
                raise InputError(f"text.base for path '{path}' has {base.size} values for {q.shape[1]} classes")
            q = q / base
            q /= q.sum(axis=1, keepdims=True)
        return (1.0 - self.uniform) * q + self.uniform / a.labels.k

    def _mapped(self, a: ScoreArrays, path: str) -> np.ndarray:
        """The sentiment mapped onto the K classes (spread and negative split), before prior and uniform mixing."""
        labels, n = a.labels, len(a)
        sentiment = a.text(path)
        neg_idx = np.array([labels.index(c) for c in labels.negative])
        if self.negative_split == "ratio":
            p_neg = a.p[:, neg_idx]
            total = p_neg.sum(axis=1, keepdims=True)
            share = np.where(total > 0, p_neg / np.where(total > 0, total, 1.0), 1.0 / len(neg_idx))
        else:
            share = np.full((n, len(neg_idx)), 1.0 / len(neg_idx))
        if self.spread == "top":
            top_label = a.sentiment if path == PRIMARY_PATH else np.argmax(sentiment, axis=1)
            conf = sentiment[np.arange(n), top_label]
            mass = np.zeros_like(sentiment)
            mass[np.arange(n), top_label] = conf
            floor = (1.0 - conf) / labels.k
        else:
            mass, floor = sentiment, np.zeros(n)
        q = np.zeros((n, labels.k))
        q[:, neg_idx] += mass[:, [0]] * share
        q[:, labels.index(labels.neutral)] += mass[:, 1]
        q[:, labels.index(labels.positive)] += mass[:, 2]
        return q + floor[:, None]
