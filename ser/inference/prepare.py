"""``ser prepare``: any registered corpus → manifest with a ``fold`` column from the fold protocol."""

from __future__ import annotations

import logging

import pandas as pd

from ser.config import PrepareConfig
from ser.data.corpora import check_labels, label_counts
from ser.data.corpora.registry import CORPORA
from ser.data.folds import assign_folds
from ser._util.io import InputError
from ser.data.labels import DEFAULT_LABELS, LabelSet

log = logging.getLogger(__name__)


def prepare(cfg: PrepareConfig, labels: LabelSet = DEFAULT_LABELS) -> pd.DataFrame:
    """Build the manifest described by a ``prepare`` config section; labels outside ``labels`` are refused."""
    if not cfg.corpus:
        raise InputError(f"prepare.corpus is required: one of {list(CORPORA)}")
    df = CORPORA[cfg.corpus].parse(cfg)
    check_labels(df, labels, f"prepare ({cfg.corpus})")
    df = assign_folds(df, cfg.folds)
    log.info(f"{cfg.corpus}: {label_counts(df)}; {df['fold'].nunique()} folds on '{cfg.folds}'")
    return df
