"""Text sentiment stages: a transformers classifier (XLM-R) or the VADER lexicon (CPU default).

Both write text_neg / text_neu / text_pos. A blank transcript carries no text evidence and gets
the neutral distribution (0, 1, 0), recorded as such — never a crash.
"""

from __future__ import annotations

import re

import numpy as np

from ser.inference.backends import Batch, map_label_names, text_rows
from ser.inference.backends.hub import locate_model
from ser.data.labels import SENTIMENTS

SENTIMENT_LABEL_MAP = {"negative": "neg", "neutral": "neu", "positive": "pos",
                       "label_0": "neg", "label_1": "neu", "label_2": "pos"}
BLANK = np.array([0.0, 1.0, 0.0])


def normalize_text(text: str, lowercase: bool = False) -> str:
    """Collapse whitespace and strip; optionally lowercase."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text.lower() if lowercase else text


class SentimentStage:
    """Base of the sentiment stages: reads the transcript column ``source`` and writes ``text_{neg,neu,pos}`` plus
    ``suffix`` (``:NAME`` for a further text path). Each distinct non-blank transcript of a batch is scored once;
    subclasses implement ``score(texts) -> (len(texts), 3)`` probabilities."""

    def __init__(self, lowercase: bool = False, source: str = "transcript", suffix: str = ""):
        self.lowercase, self.source, self.suffix = lowercase, source, suffix

    def score(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, batch: Batch) -> Batch:
        texts = np.array([normalize_text(t, self.lowercase) for t in batch[self.source]], dtype=object)
        probs = np.tile(BLANK, (len(texts), 1))
        todo = text_rows(batch) & (texts != "")
        if todo.any():
            distinct, inverse = np.unique(texts[todo], return_inverse=True)
            probs[todo] = self.score(list(distinct))[inverse]
        probs[~text_rows(batch)] = np.nan          # filled from the utterance's test row at merge
        out = dict(batch)
        for j, s in enumerate(SENTIMENTS):
            out[f"text_{s}{self.suffix}"] = probs[:, j]
        return out


class HFSentimentStage(SentimentStage):
    def __init__(self, model: str, revision: str | None = None, label_map: dict[str, str] | None = None,
                 lowercase: bool = False, max_length: int = 128, sub_batch: int = 32, fp16: bool = True,
                 device: str | None = None, source: str = "transcript", suffix: str = ""):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        super().__init__(lowercase, source, suffix)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if fp16 and self.device.startswith("cuda") else torch.float32
        model = locate_model(model, "sentiment model")
        self.tokenizer = AutoTokenizer.from_pretrained(model, revision=revision)
        self.model = AutoModelForSequenceClassification.from_pretrained(model, revision=revision, dtype=dtype) \
            .to(self.device).eval()
        names = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        codes = map_label_names(names, {**SENTIMENT_LABEL_MAP, **(label_map or {})}, SENTIMENTS,
                                f"sentiment model {model}")
        self.order = [codes.index(s) for s in SENTIMENTS]
        self.max_length, self.sub_batch = max_length, sub_batch

    def score(self, texts: list[str]) -> np.ndarray:
        import torch

        probs = np.empty((len(texts), len(SENTIMENTS)))
        for start in range(0, len(texts), self.sub_batch):
            chunk = texts[start:start + self.sub_batch]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)
            enc.pop("token_type_ids", None)
            with torch.inference_mode():
                logits = self.model(**enc).logits.float()
            probs[start:start + len(chunk)] = torch.softmax(logits, dim=-1).cpu().numpy()[:, self.order]
        return probs


class VaderStage(SentimentStage):
    """VADER compound score s → (neg, neu, pos) = (a·[s<0], 1 − a, a·[s>0]), a = min(1, |s| / 0.1).

    The label flips away from neutral at |s| = 0.05, VADER's own neutral band.
    """

    def __init__(self, lowercase: bool = False, source: str = "transcript", suffix: str = ""):
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        super().__init__(lowercase, source, suffix)
        self.analyzer = SentimentIntensityAnalyzer()

    def score(self, texts: list[str]) -> np.ndarray:
        s = np.array([self.analyzer.polarity_scores(t)["compound"] for t in texts])
        a = np.minimum(1.0, np.abs(s) / 0.1)
        return np.stack([a * (s < 0), 1 - a, a * (s > 0)], axis=1)
