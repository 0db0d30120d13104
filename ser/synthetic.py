"""Synthetic score tables with the confusion structure of real corpora, for demos, tests and benchmarks.

Four regimes (``profile``):

- ``iemocap-like`` — matched to released IEMOCAP outputs: speech strong (UA ≈ 65, varying by
  speaker from about 52 to 77), text weak (sentiment mapped to emotions UA ≈ 46), oracle switch
  ≈ 78; the sentiment is a top label plus its confidence only; hard utterances are hard for both
  models. Defaults that help here have a chance on real corpora.
- ``text-strong`` — the speech model hears arousal well and valence poorly (ang↔hap, neu↔sad)
  and the sentiment model reads valence well: text is *stronger* than speech, like the demo
  corpus and unlike real corpora. Useful to show fusion working, misleading to tune defaults on.
- ``weak-text`` — iemocap-like with a weaker sentiment model (its polarity right 10 points less often:
  text-mapped UA ≈ 38): text helps a little (about half a point) in most folds, the regime where a choice
  rule that asks too much of the text forfeits what it offers.
- ``useless-text`` — iemocap-like speech beside a near-useless sentiment model that says
  "positive" for 96% of utterances (confidence 0.5–0.99 whatever it says): fusion should cost
  nothing here, so a search must be able to keep speech alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser.labels import DEFAULT_LABELS

AROUSAL = np.array([1.0, 1.0, -1.0, -1.0])     # ang hap neu sad
VALENCE = np.array([-1.0, 1.0, 0.0, -1.0])
SENTIMENT_OF_CLASS = np.array([0, 2, 1, 0])     # neg pos neu neg
CLASS_SHARES = np.array([0.20, 0.29, 0.31, 0.20])
PROFILES = ("iemocap-like", "weak-text", "text-strong", "useless-text")

IEMOCAP_SHARES = np.array([0.200, 0.296, 0.309, 0.195])     # ang, hap+exc, neu, sad of the 5531 utterances
SPEECH_PROTOTYPES = np.array([[1.00, 0.45, 0.10, -0.30],    # mean speech logits per gold class (rows):
                              [0.35, 1.00, 0.55, -0.20],    # neighbours in arousal/valence share mass
                              [-0.10, 0.35, 1.00, 0.50],
                              [-0.35, -0.10, 0.55, 1.00]])
TEXT_RIGHT = np.array([0.47, 0.47, 0.52, 0.42])            # P(sentiment polarity right) per gold class


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def synthetic_scores(n_folds: int = 10, per_fold: int = 553, seed: int = 0, corpus: str = "synthetic",
                     profile: str = "iemocap-like") -> pd.DataFrame:
    """A validated-shape score table: ``n_folds`` speaker folds of ``per_fold`` utterances each."""
    if profile not in PROFILES:
        raise ValueError(f"unknown synthetic profile '{profile}' (one of {list(PROFILES)})")
    rng = np.random.default_rng(seed)
    fold = np.repeat(np.arange(n_folds), per_fold)
    y, p, q = {"iemocap-like": _iemocap_like, "weak-text": _weak_text, "text-strong": _text_strong,
               "useless-text": _useless_text}[profile](rng, fold, n_folds)
    return _table(corpus, n_folds, fold, y, p, q)


def _iemocap_like(rng: np.random.Generator, fold: np.ndarray, n_folds: int,
                  text_shift: float = 0.0) -> tuple[np.ndarray, ...]:
    """Speech strong and speaker-dependent, text weak and given as top label + confidence; ``text_shift`` moves
    the chance that the sentiment polarity is right."""
    n = len(fold)
    y = rng.choice(4, size=n, p=IEMOCAP_SHARES)
    strength = np.linspace(1.5, 2.5, n_folds)[rng.permutation(n_folds)][fold]
    difficulty = rng.random(n)                               # shared by both models: errors correlate
    logits = (strength * (1 - 0.6 * difficulty))[:, None] * SPEECH_PROTOTYPES[y] \
        + rng.normal(0, 0.7, size=(n, 4)) + rng.normal(0, 0.25, size=(n_folds, 4))[fold]
    p = _softmax(2.6 * logits)
    true = SENTIMENT_OF_CLASS[y]
    right = rng.random(n) < np.clip(TEXT_RIGHT[y] + text_shift + 1.0 * (0.5 - difficulty), 0, 1)
    # a wrong emotional sentiment is mostly neutral; a wrong neutral one is positive or negative
    wrong = np.where(true == 1, rng.choice([0, 2], size=n), np.where(rng.random(n) < 0.75, 1, 2 - true))
    sent = np.where(right, true, wrong)
    conf = 0.34 + 0.66 * np.where(right, rng.beta(6, 2, n), rng.beta(4, 2.5, n))
    return y, p, _label_and_confidence(sent, conf)


def _weak_text(rng: np.random.Generator, fold: np.ndarray, n_folds: int) -> tuple[np.ndarray, ...]:
    """iemocap-like, with the sentiment polarity right 10 points less often."""
    return _iemocap_like(rng, fold, n_folds, text_shift=-0.10)


def _useless_text(rng: np.random.Generator, fold: np.ndarray, n_folds: int) -> tuple[np.ndarray, ...]:
    """iemocap-like speech; a sentiment top label that is "positive" 96% of the time, with a random confidence."""
    y, p, _ = _iemocap_like(rng, fold, n_folds)
    n = len(y)
    sent = np.where(rng.random(n) < 0.96, 2, rng.integers(0, 2, n))
    return y, p, _label_and_confidence(sent, rng.uniform(0.5, 0.99, n))


def _label_and_confidence(sent: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """A sentiment given as top label + confidence as an importer reads it: conf on the label, the rest shared."""
    q = np.repeat(((1 - conf) / 2)[:, None], 3, axis=1)
    q[np.arange(len(sent)), sent] = conf
    return q


def _text_strong(rng: np.random.Generator, fold: np.ndarray, n_folds: int) -> tuple[np.ndarray, ...]:
    """Speech hears arousal (strength 2.2), not valence (0.6); the sentiment polarity is right half the time."""
    arousal_strength, valence_strength, text_accuracy = 2.2, 0.6, 0.5
    n = len(fold)
    y = rng.choice(4, size=n, p=CLASS_SHARES)
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
    return y, p, _softmax(text_logits)


def _table(corpus: str, n_folds: int, fold: np.ndarray, y: np.ndarray, p: np.ndarray, q: np.ndarray) -> pd.DataFrame:
    n = len(y)
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
