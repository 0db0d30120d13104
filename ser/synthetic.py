"""Synthetic score tables with the confusion structure of real corpora, for demos, tests and benchmarks.

The speech model hears arousal well and valence poorly (it confuses ang↔hap and neu↔sad);
the sentiment model reads valence from the words, with noise. So text carries exactly the
information speech lacks, as on IEMOCAP.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser.labels import DEFAULT_LABELS

AROUSAL = np.array([1.0, 1.0, -1.0, -1.0])     # ang hap neu sad
VALENCE = np.array([-1.0, 1.0, 0.0, -1.0])
SENTIMENT_OF_CLASS = np.array([0, 2, 1, 0])     # neg pos neu neg
CLASS_SHARES = np.array([0.20, 0.29, 0.31, 0.20])


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def synthetic_scores(n_folds: int = 10, per_fold: int = 553, seed: int = 0, corpus: str = "synthetic",
                     arousal_strength: float = 2.2, valence_strength: float = 0.6,
                     text_accuracy: float = 0.5) -> pd.DataFrame:
    """A validated-shape score table: ``n_folds`` speaker folds of ``per_fold`` utterances each."""
    rng = np.random.default_rng(seed)
    n = n_folds * per_fold
    y = rng.choice(4, size=n, p=CLASS_SHARES)
    fold = np.repeat(np.arange(n_folds), per_fold)
    speaker_bias = rng.normal(0, 0.4, size=(n_folds, 4))[fold]
    sharpness = rng.gamma(4.0, 0.3, size=(n, 1))
    logits = (arousal_strength * AROUSAL[None, :] * AROUSAL[y][:, None]
              + valence_strength * VALENCE[None, :] * VALENCE[y][:, None]
              + speaker_bias + rng.normal(0, 1.0, size=(n, 4)))
    p = _softmax(sharpness * logits)

    true_sent = SENTIMENT_OF_CLASS[y]
    draw = rng.random(n)
    sent = np.where(draw < text_accuracy, true_sent,
                    np.where(draw < text_accuracy + (1 - text_accuracy) / 2, 1, rng.integers(0, 3, size=n)))
    text_logits = rng.normal(0, 0.7, size=(n, 3))
    text_logits[np.arange(n), sent] += rng.uniform(1.0, 3.5, size=n)
    q = _softmax(text_logits)

    speakers = np.array([f"{corpus}_S{i:02d}" for i in range(n_folds)])[fold]
    df = pd.DataFrame({
        "utt_id": [f"{corpus}_{i:06d}" for i in range(n)],
        "corpus": corpus,
        "label": np.array(DEFAULT_LABELS.classes)[y],
        "fold": speakers,
        "speaker": speakers,
        "session": np.array([f"{corpus}_Ses{i // 2 + 1}" for i in range(n_folds)])[fold],
    })
    for j, c in enumerate(DEFAULT_LABELS.classes):
        df[f"speech_{c}"] = p[:, j]
    for j, s in enumerate(("neg", "neu", "pos")):
        df[f"text_{s}"] = q[:, j]
    df["transcript"] = ""
    df["transcript_source"] = "synthetic"
    return df


def with_model_folds(df: pd.DataFrame, val_share: float = 0.1, sharpen: float = 1.6) -> pd.DataFrame:
    """Add, for every fold k, fold k's model's scores of the other folds' rows (split train/val),
    the rows ``ser infer`` writes with ``in_sample: true`` (same expansion: ser.pipeline.scoring_rows).

    In-sample speech scores are sharper (p^sharpen, renormalized) than out-of-sample ones, as a
    fine-tuned model is more confident on its own training data; text scores do not depend on k.
    """
    from ser.pipeline import scoring_rows

    rows = scoring_rows(df, in_sample=True, val_share=val_share)
    speech_cols = [f"speech_{c}" for c in DEFAULT_LABELS.classes]
    inside = (rows["split"] != "test").to_numpy()
    p = rows.loc[inside, speech_cols].to_numpy() ** sharpen
    rows.loc[inside, speech_cols] = p / p.sum(axis=1, keepdims=True)
    return rows
