"""ASR error rates of a transcript column against ``reference_transcript``: WER and CER with jiwer.

Counts (substitutions, deletions, insertions, hits) are kept per utterance, so WER can be pooled over any
grouping (fold, speaker, gold class) as Σ(S + D + I) / Σ N, and so the fusion gain can be studied as a function
of each utterance's WER. A blank hypothesis counts as all deletions; an utterance whose reference is empty or
missing is left out and counted, never silently dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from ser._util.io import InputError

NORMALIZERS = ("basic", "whisper", "none")

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_OTHER = re.compile(r"[^A-Za-z0-9'\s]")


def basic_normalize(text: str) -> str:
    """The normalization the paper's authors used: drop non-ASCII characters and periods, replace every other
    character that is neither alphanumeric nor an apostrophe by a space, upper-case, collapse whitespace."""
    text = _NON_ASCII.sub("", text).replace(".", "")
    return " ".join(_OTHER.sub(" ", text).upper().split())


@dataclass(frozen=True)
class WerNormalizer:
    """How transcripts are normalized before WER/CER: ``kind`` (see :func:`normalizer`) and, for ``whisper``, an
    optional British→American spelling map (Whisper's ``english.json``, which ships with tokenizer files)."""

    kind: str = "whisper"
    spelling: Mapping[str, str] = field(default_factory=dict)
    spelling_source: str | None = None

    @classmethod
    def load(cls, kind: str, spelling_file: str | None = None) -> "WerNormalizer":
        """The normalizer ``evaluate.wer_normalizer`` / ``evaluate.wer_spelling`` name; a spelling file that is
        missing or not a JSON object of strings is an error naming it."""
        if spelling_file is None:
            return cls(kind)
        where = f"evaluate.wer_spelling: {spelling_file}"
        try:
            mapping = json.loads(Path(spelling_file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{where}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{where}: not JSON ({exc})") from None
        if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in mapping.items()):
            raise InputError(f"{where}: expected a JSON object mapping spellings to spellings")
        return cls(kind, mapping, Path(spelling_file).name)

    @property
    def label(self) -> str:
        """What results record as the normalizer."""
        return self.kind if self.spelling_source is None else f"{self.kind} + {self.spelling_source}"

    def function(self) -> Callable[[str], str]:
        return normalizer(self.kind, self.spelling)


def normalizer(kind: str, spelling: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """``basic``, ``whisper`` (transformers' Whisper English normalizer, with ``spelling`` as its British→American
    map: that map ships with tokenizer files, not with the library) or ``none`` (whitespace collapsed only)."""
    if kind == "basic":
        return basic_normalize
    if kind == "whisper":
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        english = EnglishTextNormalizer(dict(spelling or {}))
        return lambda text: " ".join(english(text).split())
    if kind == "none":
        return lambda text: " ".join(text.split())
    raise InputError(f"WER normalizer '{kind}' is not one of {list(NORMALIZERS)}")


def _counts(references: list[str], hypotheses: list[str], process) -> np.ndarray:
    """Per pair (S, D, I, hits) from jiwer's alignment chunks: one jiwer call for all pairs."""
    out = np.zeros((len(references), 4), dtype=np.int64)
    if not references:
        return out
    result = process(references, hypotheses)
    column = {"substitute": 0, "delete": 1, "equal": 3}
    for i, chunks in enumerate(result.alignments):
        for chunk in chunks:
            if chunk.type == "insert":
                out[i, 2] += chunk.hyp_end_idx - chunk.hyp_start_idx
            else:
                out[i, column[chunk.type]] += chunk.ref_end_idx - chunk.ref_start_idx
    return out


def utterance_errors(references: pd.Series, hypotheses: pd.Series, kind: str | WerNormalizer = "whisper"
                     ) -> pd.DataFrame:
    """One row per utterance (index kept): ``scored`` (a non-empty normalized reference), word counts
    ``n_words, sub, del, ins, hits``, ``wer``, and character counts ``n_chars, char_errors``, ``cer``."""
    import jiwer

    norm = (kind if isinstance(kind, WerNormalizer) else WerNormalizer(kind)).function()
    refs = references.fillna("").astype(str).map(norm)
    hyps = hypotheses.fillna("").astype(str).map(norm)
    scored = refs.str.len().to_numpy() > 0
    words = np.zeros((len(refs), 4), dtype=np.int64)
    chars = np.zeros((len(refs), 4), dtype=np.int64)
    idx = np.flatnonzero(scored)
    words[idx] = _counts(list(refs.iloc[idx]), list(hyps.iloc[idx]), jiwer.process_words)
    chars[idx] = _counts(list(refs.iloc[idx]), list(hyps.iloc[idx]), jiwer.process_characters)
    n_words = words[:, [0, 1, 3]].sum(axis=1)                       # reference length = S + D + hits
    n_chars = chars[:, [0, 1, 3]].sum(axis=1)
    errors, char_errors = words[:, :3].sum(axis=1), chars[:, :3].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({"scored": scored, "n_words": n_words, "sub": words[:, 0], "del": words[:, 1],
                             "ins": words[:, 2], "hits": words[:, 3], "wer": np.where(scored, errors / n_words, np.nan),
                             "n_chars": n_chars, "char_errors": char_errors,
                             "cer": np.where(scored, char_errors / n_chars, np.nan)}, index=references.index)


def pooled(errors: pd.DataFrame) -> dict:
    """WER and CER pooled over utterances (Σ errors / Σ reference length) with the counts behind them."""
    e = errors[errors["scored"]]
    n_words, n_chars = int(e["n_words"].sum()), int(e["n_chars"].sum())
    word_errors = int(e[["sub", "del", "ins"]].to_numpy().sum())
    return {"wer": word_errors / n_words if n_words else None,
            "cer": float(e["char_errors"].sum()) / n_chars if n_chars else None,
            "n_words": n_words, "substitutions": int(e["sub"].sum()), "deletions": int(e["del"].sum()),
            "insertions": int(e["ins"].sum()), "n_utterances": int(len(e)),
            "no_reference": int((~errors["scored"]).sum())}


def pooled_by(errors: pd.DataFrame, keys: pd.Series) -> dict[str, dict]:
    """``pooled`` per value of ``keys`` (fold, speaker, gold class), in sorted order."""
    return {str(k): pooled(part) for k, part in errors.groupby(keys.astype(str).to_numpy(), sort=True)}
