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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ser.data.folds import scoring_rows
from ser.data.labels import DEFAULT_LABELS
from ser._util.io import InputError

AROUSAL = np.array([1.0, 1.0, -1.0, -1.0])     # ang hap neu sad
VALENCE = np.array([-1.0, 1.0, 0.0, -1.0])
SENTIMENT_OF_CLASS = np.array([0, 2, 1, 0])     # neg pos neu neg
CLASS_SHARES = np.array([0.20, 0.29, 0.31, 0.20])
PROFILES = ("iemocap-like", "weak-text", "text-strong", "useless-text")

IEMOCAP_SHARES = np.array([0.200, 0.296, 0.309, 0.195])     # ang, hap+exc, neu, sad of the 5531 utterances

# iemocap-like speech, fitted to the released outputs' summary figures (ser.evaluation.table_stats.IEMOCAP_TARGETS; docs/design.md
# §9): per-row logits strength_speaker · (1 − DIFFICULTY_SLOPE · difficulty) · prototype[gold] + N(0, 1) + speaker bias
SPEECH_PROTOTYPES = np.array([[1.43, 0.25, 0.11, -0.32],    # mean speech logits per gold class (rows):
                              [0.27, 0.86, 0.46, -0.16],    # neighbours in arousal/valence share mass
                              [-0.12, 0.42, 1.24, 0.42],
                              [-0.44, -0.10, 0.61, 1.27]])
SPEAKER_STRENGTH = (1.85, 3.05)
DIFFICULTY_SLOPE = 0.74
SPEAKER_BIAS_SD = 0.40
TOP_PROBABILITY = (3.98, 2.44)
"""The speech model's top probability is 0.25 + 0.75 · Beta(3.98, 2.44) (mean 0.715, 7.5 % above 0.9), assigned to
rows in the order of their logits' confidence: overconfident as the released model is, and as informative."""
SENTIMENT_BY_CLASS = np.array([[0.53, 0.40, 0.07],          # P(sentiment neg, neu, pos | gold class)
                               [0.25, 0.44, 0.31],
                               [0.27, 0.64, 0.09],
                               [0.43, 0.46, 0.11]])
SHARED_DIFFICULTY = 0.45
"""How much the sentiment's chance of the right polarity falls from the easiest to the hardest utterance (shared with
the speech model's difficulty: their errors correlate)."""
SPEAKER_TEXT_SD = 0.03
"""Per-speaker shift of that chance: how much text helps differs by speaker."""
CONFIDENCE_RIGHT, CONFIDENCE_WRONG = (0.95, 1.08), (3.17, 5.31)
"""The sentiment's top-label confidence is 1/3 + 2/3 · Beta(·) when its polarity is right / wrong."""


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fold_sizes(n_folds: int, per_fold: int, spread: bool) -> np.ndarray:
    """Rows per fold: ``per_fold`` each, or (``spread``) from 0.87 to 1.18 × ``per_fold`` (481–651 at 553, as the
    released IEMOCAP folds), about ``per_fold`` on average."""
    if not spread:
        return np.full(n_folds, per_fold)
    return np.maximum(1, np.round(per_fold * (0.87 + 0.307 * np.linspace(0, 1, n_folds) ** 1.35)).astype(int))


@dataclass(frozen=True)
class SecondPath:
    """A further text path ``text_*:NAME`` beside the primary one: its sentiment polarity is right in about
    ``strength`` of the rows (1/3: it says nothing of the emotion; the iemocap-like primary path ≈ 0.48), and each
    row repeats the primary path's label and confidence with probability ``correlation`` (1: a copy)."""

    name: str = "second"
    strength: float = 0.7
    correlation: float = 0.0

    def __post_init__(self) -> None:
        for key in ("strength", "correlation"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise InputError(f"second path {key} must be in [0, 1], got {getattr(self, key)}")
        if not self.name or ":" in self.name or self.name == "primary":
            raise InputError(f"second path name {self.name!r} must be non-empty, without ':' and not 'primary'")


def synthetic_scores(n_folds: int = 10, per_fold: int = 553, seed: int = 0, corpus: str = "synthetic",
                     profile: str = "iemocap-like", second: SecondPath | None = None) -> pd.DataFrame:
    """A validated-shape score table: ``n_folds`` speaker folds of about ``per_fold`` utterances each; with
    ``second``, a further text path (drawn after the rest, so the other columns do not change)."""
    if profile not in PROFILES:
        raise InputError(f"unknown synthetic profile '{profile}' (one of {list(PROFILES)})")
    rng = np.random.default_rng(seed)
    fold = np.repeat(np.arange(n_folds), fold_sizes(n_folds, per_fold, spread=profile != "text-strong"))
    y, p, q = {"iemocap-like": _iemocap_like, "weak-text": _weak_text, "text-strong": _text_strong,
               "useless-text": _useless_text}[profile](rng, fold, n_folds)
    df = _table(corpus, n_folds, fold, y, p, q)
    if second is not None:
        extra = _second_path(rng, y, q, second)
        for j, s in enumerate(("neg", "neu", "pos")):
            df[f"text_{s}:{second.name}"] = extra[:, j]
        df[f"transcript:{second.name}"] = ""
        df[f"transcript_source:{second.name}"] = f"synthetic:{second.name}"
    return df


def _second_path(rng: np.random.Generator, y: np.ndarray, primary: np.ndarray, spec: SecondPath) -> np.ndarray:
    """A second sentiment (n, 3), top label + confidence: right polarity with chance ``strength`` (a wrong one is
    either other label), repeating ``primary``'s row with chance ``correlation``."""
    n = len(y)
    true = SENTIMENT_OF_CLASS[y]
    right = rng.random(n) < spec.strength
    sent = np.where(right, true, (true + rng.integers(1, 3, n)) % 3)
    conf = 1 / 3 + 2 / 3 * np.where(right, rng.beta(*CONFIDENCE_RIGHT, n), rng.beta(*CONFIDENCE_WRONG, n))
    return np.where((rng.random(n) < spec.correlation)[:, None], primary, _label_and_confidence(sent, conf))


def _overconfident(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
    """Probabilities with the logits' argmax and confidence order, their top probability drawn from
    :data:`TOP_PROBABILITY` and the rest of the mass shared as the logits share it (flattened where it must be so
    the top class stays on top)."""
    n, k = logits.shape
    raw = _softmax(logits)
    top = raw.argmax(axis=1)
    t = np.empty(n)
    t[np.argsort(raw.max(axis=1), kind="stable")] = np.sort(0.25 + 0.75 * rng.beta(*TOP_PROBABILITY, n))
    rest = raw.copy()
    rest[np.arange(n), top] = 0.0
    share = rest / rest.sum(axis=1, keepdims=True)
    r, even = share.max(axis=1), 1.0 / (k - 1)
    # the largest mix λ·share + (1 − λ)·even whose biggest part, times (1 − t), stays below t
    lam = np.clip((t / (1 - t) - even) / np.maximum(r - even, 1e-12), 0.0, 1.0)
    share = lam[:, None] * share + (1 - lam[:, None]) * even
    share[np.arange(n), top] = 0.0
    p = share * (1 - t)[:, None]
    p[np.arange(n), top] = t
    return p


def _iemocap_like(rng: np.random.Generator, fold: np.ndarray, n_folds: int,
                  text_shift: float = 0.0) -> tuple[np.ndarray, ...]:
    """Speech strong and speaker-dependent, text weak and given as top label + confidence; ``text_shift`` moves
    the chance that the sentiment polarity is right."""
    n = len(fold)
    y = rng.choice(4, size=n, p=IEMOCAP_SHARES)
    strength = np.linspace(*SPEAKER_STRENGTH, n_folds)[rng.permutation(n_folds)][fold]
    difficulty = rng.random(n)                               # shared by both models: errors correlate
    logits = (strength * (1 - DIFFICULTY_SLOPE * difficulty))[:, None] * SPEECH_PROTOTYPES[y] \
        + rng.normal(0, 1.0, size=(n, 4)) + rng.normal(0, SPEAKER_BIAS_SD, size=(n_folds, 4))[fold]
    p = _overconfident(rng, logits)
    true = SENTIMENT_OF_CLASS[y]
    by_class = SENTIMENT_BY_CLASS[y]
    chance = by_class[np.arange(n), true] + text_shift + SHARED_DIFFICULTY * (0.5 - difficulty) \
        + rng.normal(0, SPEAKER_TEXT_SD, n_folds)[fold]
    right = rng.random(n) < np.clip(chance, 0, 1)
    # a wrong sentiment is one of the other two, as often as the released outputs give each for this class
    others = by_class.copy()
    others[np.arange(n), true] = 0.0
    cumulative = np.cumsum(others / others.sum(axis=1, keepdims=True), axis=1)
    wrong = (rng.random(n)[:, None] > cumulative).sum(axis=1)
    sent = np.where(right, true, wrong)
    conf = 1 / 3 + 2 / 3 * np.where(right, rng.beta(*CONFIDENCE_RIGHT, n), rng.beta(*CONFIDENCE_WRONG, n))
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
    the rows ``ser infer`` writes with ``in_sample: true`` (same expansion: ser.data.folds.scoring_rows).

    In-sample speech scores are sharper (p^sharpen, renormalized) than out-of-sample ones, as a
    fine-tuned model is more confident on its own training data; text scores do not depend on k.
    """

    rows = scoring_rows(df, in_sample=True, val_share=val_share)
    speech_cols = [f"speech_{c}" for c in DEFAULT_LABELS.classes]
    inside = (rows["split"] != "test").to_numpy()
    p = rows.loc[inside, speech_cols].to_numpy() ** sharpen
    rows.loc[inside, speech_cols] = p / p.sum(axis=1, keepdims=True)
    return rows
