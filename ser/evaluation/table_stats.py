"""Summary statistics of a score table: the figures a synthetic generator is calibrated to.

They describe one utterance per row (each fold's own test rows): fold sizes and label shares, the speech
model's per-fold scores, confusion and calibration, the sentiment model's labels by gold class and its
confidence, how its errors go with the speech model's, and what a fixed one-weight fusion gains per fold.
Figures are fractions (0.654, not 65.4); gains are fractions of the fold's macro-F1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ser.data.arrays import ScoreArrays
from ser.data.folds import own_test_rows
from ser.fusion.rules import LogLinearRule
from ser.fusion.text import TextDistribution
from ser.data.labels import DEFAULT_LABELS, LabelSet
from ser.measures.metrics import fold_scores
from ser.data.uncertainty import entropy

CONFIDENCE_QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90)
ECE_BINS = 15
REFERENCE_FUSION = LogLinearRule(0.3, text=TextDistribution("top", "ratio"))
"""The fixed fusion whose per-fold gain is part of the calibration: ``loglinear[top,ratio]`` at w = 0.3."""


@dataclass(frozen=True)
class TableStats:
    """The calibration figures of one score table (fractions; matrices are rows = gold class)."""

    fold_rows: tuple[int, ...]
    label_shares: tuple[float, ...]
    speech_ua: tuple[float, ...]                # per fold
    speech_macro_f1: tuple[float, ...]          # per fold
    speech_confusion: np.ndarray                # (K, K), rows normalized
    mean_max_prob: float
    accuracy: float
    ece: float
    share_above_90: float
    median_entropy_right: float
    median_entropy_wrong: float
    sentiment_by_class: np.ndarray              # (K, 3: neg neu pos), rows normalized
    polarity_right: float
    confidence_right: float
    confidence_wrong: float
    confidence_quantiles: tuple[float, ...]     # at CONFIDENCE_QUANTILES
    polarity_right_if_speech_right: float
    polarity_right_if_speech_wrong: float
    fusion_gain: tuple[float, ...]              # per fold, macro-F1 of REFERENCE_FUSION − speech


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ over equal-width confidence bins of (bin share) · |accuracy − mean confidence|."""
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = np.bincount(index, weights=correct - confidence, minlength=bins)
    return float(np.abs(gap).sum() / len(confidence))


def table_stats(df: pd.DataFrame, labels: LabelSet = DEFAULT_LABELS) -> TableStats:
    """The calibration figures of a validated score table's own test rows."""
    rows = df.loc[own_test_rows(df)] if "model_fold" in df else df
    a = ScoreArrays.from_table(rows, labels)
    k, y = labels.k, a.y
    folds, fold_index = np.unique(rows["fold"].to_numpy(dtype=str), return_inverse=True)
    speech = fold_scores(y, a.speech, fold_index, len(folds), k)
    fused = fold_scores(y, REFERENCE_FUSION.decide(a).pred, fold_index, len(folds), k)
    confusion = np.bincount(y * k + a.speech, minlength=k * k).reshape(k, k).astype(float)
    top = a.p.max(axis=1)
    right = a.speech == y
    h = entropy(a.p)
    polarity = np.array(labels.polarity)[y]
    by_class = np.bincount(y * 3 + a.sentiment, minlength=k * 3).reshape(k, 3).astype(float)
    text_right = a.sentiment == polarity
    conf = a.q[np.arange(len(a)), a.sentiment]
    return TableStats(
        fold_rows=tuple(int(n) for n in np.bincount(fold_index)),
        label_shares=tuple(float(s) for s in np.bincount(y, minlength=k) / len(y)),
        speech_ua=tuple(map(float, speech["ua"])), speech_macro_f1=tuple(map(float, speech["macro_f1"])),
        speech_confusion=confusion / confusion.sum(axis=1, keepdims=True),
        mean_max_prob=float(top.mean()), accuracy=float(right.mean()),
        ece=expected_calibration_error(top, right.astype(float)), share_above_90=float((top > 0.9).mean()),
        median_entropy_right=float(np.median(h[right])), median_entropy_wrong=float(np.median(h[~right])),
        sentiment_by_class=by_class / by_class.sum(axis=1, keepdims=True),
        polarity_right=float(text_right.mean()), confidence_right=float(conf[text_right].mean()),
        confidence_wrong=float(conf[~text_right].mean()),
        confidence_quantiles=tuple(float(x) for x in np.quantile(conf, CONFIDENCE_QUANTILES)),
        polarity_right_if_speech_right=float(text_right[right].mean()),
        polarity_right_if_speech_wrong=float(text_right[~right].mean()),
        fusion_gain=tuple(map(float, fused["macro_f1"] - speech["macro_f1"])))


def _summary(values: tuple[float, ...]) -> tuple[float, float, float, float]:
    v = np.asarray(values)
    return float(v.mean()), float(v.std(ddof=1)), float(v.min()), float(v.max())


CLASSES = DEFAULT_LABELS.classes
IEMOCAP_TARGETS: dict[str, float] = {
    "fold rows, min": 481, "fold rows, max": 651,
    **{f"share {c}": v for c, v in zip(CLASSES, (0.20, 0.30, 0.31, 0.20))},
    "speech UA per fold, mean": 0.654, "speech UA per fold, SD": 0.050,
    "speech UA per fold, min": 0.56, "speech UA per fold, max": 0.71,
    "speech macro-F1 per fold, mean": 0.640, "speech macro-F1 per fold, SD": 0.063,
    "speech macro-F1 per fold, min": 0.50, "speech macro-F1 per fold, max": 0.70,
    **{f"speech {g}→{p}": v for g, row in zip(CLASSES, ((.79, .10, .09, .02), (.16, .52, .23, .09),
                                                        (.05, .17, .65, .14), (.03, .06, .24, .68)))
       for p, v in zip(CLASSES, row)},
    "mean max probability": 0.715, "accuracy": 0.644, "ECE": 0.071, "share of rows above 0.9": 0.075,
    "median entropy, speech right": 0.73, "median entropy, speech wrong": 0.91,
    **{f"sentiment {s} | {g}": v for g, row in zip(CLASSES, ((.53, .40, .07), (.25, .44, .31), (.27, .64, .09),
                                                             (.43, .46, .11)))
       for s, v in zip(("neg", "neu", "pos"), row)},
    "polarity right": 0.477, "confidence when right": 0.645, "confidence when wrong": 0.582,
    **{f"confidence {int(100 * q)}% quantile": v for q, v in zip(CONFIDENCE_QUANTILES, (0.44, 0.49, 0.59, 0.72, 0.85))},
    "polarity right | speech right": 0.505, "polarity right | speech wrong": 0.426,
    "top,ratio w=0.3 gain per fold, mean": 0.0206, "top,ratio w=0.3 gain per fold, SD": 0.0155,
    "top,ratio w=0.3 gain per fold, min": 0.0035, "top,ratio w=0.3 gain per fold, max": 0.0582,
}
"""Summary figures of the released IEMOCAP outputs (5531 utterances, 10 speaker folds; the tables stay held out),
the targets of ``ser synth --profile iemocap-like`` (docs/design.md §9 compares them)."""


def named_figures(stats: TableStats) -> dict[str, float]:
    """The figures of :data:`IEMOCAP_TARGETS`, by the same names, for one table."""
    ua, f1, gain = _summary(stats.speech_ua), _summary(stats.speech_macro_f1), _summary(stats.fusion_gain)
    out: dict[str, float] = {"fold rows, min": min(stats.fold_rows), "fold rows, max": max(stats.fold_rows)}
    out.update({f"share {c}": s for c, s in zip(CLASSES, stats.label_shares)})
    for name, values in (("speech UA per fold", ua), ("speech macro-F1 per fold", f1),
                         ("top,ratio w=0.3 gain per fold", gain)):
        out.update({f"{name}, {part}": v for part, v in zip(("mean", "SD", "min", "max"), values)})
    out.update({f"speech {g}→{p}": float(stats.speech_confusion[i, j])
                for i, g in enumerate(CLASSES) for j, p in enumerate(CLASSES)})
    out.update({"mean max probability": stats.mean_max_prob, "accuracy": stats.accuracy, "ECE": stats.ece,
                "share of rows above 0.9": stats.share_above_90,
                "median entropy, speech right": stats.median_entropy_right,
                "median entropy, speech wrong": stats.median_entropy_wrong})
    out.update({f"sentiment {s} | {g}": float(stats.sentiment_by_class[i, j])
                for i, g in enumerate(CLASSES) for j, s in enumerate(("neg", "neu", "pos"))})
    out.update({"polarity right": stats.polarity_right, "confidence when right": stats.confidence_right,
                "confidence when wrong": stats.confidence_wrong})
    out.update({f"confidence {int(100 * q)}% quantile": v
                for q, v in zip(CONFIDENCE_QUANTILES, stats.confidence_quantiles)})
    out.update({"polarity right | speech right": stats.polarity_right_if_speech_right,
                "polarity right | speech wrong": stats.polarity_right_if_speech_wrong})
    return out
