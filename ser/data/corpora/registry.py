"""The one corpus registry: ``prepare.corpus`` name → the parser that turns the corpus into a manifest.

A parser takes the ``prepare`` config section and returns manifest rows (``ser.data.corpora.MANIFEST_COLUMNS``);
``ser prepare`` then checks the labels and assigns folds, the same for every corpus. Adding a corpus is a module
with its parser and one ``register`` line below; ``prepare.corpus`` validation, the config reference and
``ser prepare --help`` list what is registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import pandas as pd

from ser.data.corpora import demo, hf, iemocap, manifest, msp_improv

if TYPE_CHECKING:
    from ser.config import PrepareConfig


@dataclass(frozen=True)
class Corpus:
    """A registered corpus: its name, a one-line description and its parser."""

    name: str
    description: str
    parse: Callable[["PrepareConfig"], pd.DataFrame]


CORPORA: dict[str, Corpus] = {}


def register(name: str, description: str, parse: Callable[["PrepareConfig"], pd.DataFrame]) -> Corpus:
    """Add a corpus under ``name`` (a name registered twice is a bug in the registering code)."""
    if name in CORPORA:
        raise ValueError(f"corpus '{name}' is already registered")
    CORPORA[name] = corpus = Corpus(name, description, parse)
    return corpus


for _variant, _what in (("demo", "generated two-speaker-per-fold corpus (the demo)"),
                        ("demo-a", "generated demo corpus A (text stronger than speech)"),
                        ("demo-b", "generated demo corpus B, other speakers and channel")):
    register(_variant, _what, demo.from_config)
register("iemocap", "IEMOCAP full release (prepare.root: the directory with Session1..5)", iemocap.from_config)
register("msp_improv", "MSP-IMPROV (prepare.root: the directory with Evaluation.txt and the WAVs)",
         msp_improv.from_config)
register("manifest", "your own CSV/JSONL/Parquet manifest (prepare.table, prepare.columns)", manifest.from_config)
register("hf", "a Hugging Face dataset with an Audio column (prepare.dataset, split, columns; audio written under "
         "prepare.root)", hf.from_config)
