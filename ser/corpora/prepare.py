"""``ser prepare``: any supported corpus → manifest with a ``fold`` column from the fold protocol."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ser.config import CORPORA, PrepareConfig
from ser.corpora import check_labels, label_counts
from ser.folds import assign_folds
from ser.labels import DEFAULT_LABELS, LabelSet
from ser.io import InputError

log = logging.getLogger(__name__)



def prepare(cfg: PrepareConfig, labels: LabelSet = DEFAULT_LABELS) -> pd.DataFrame:
    """Build the manifest described by a ``prepare`` config section; labels outside ``labels`` are refused."""
    corpus = cfg.corpus
    if not corpus:
        raise InputError(f"prepare.corpus is required: one of {list(CORPORA)}")
    if corpus.startswith("demo"):
        from ser.corpora.demo import generate_demo

        if not cfg.root:
            raise InputError("prepare.root: where to write the demo corpus' audio is required")
        df = generate_demo(cfg.root, corpus, per_speaker=cfg.per_speaker)
    elif corpus == "iemocap":
        from ser.corpora.iemocap import STANDARD_4CLASS_SIZE, prepare_iemocap

        df = prepare_iemocap(_root(cfg), cfg.labels)
        if cfg.labels is None and len(df) != STANDARD_4CLASS_SIZE:
            log.warning(f"the standard 4-class IEMOCAP set has {STANDARD_4CLASS_SIZE} utterances; found {len(df)}")
    elif corpus == "msp_improv":
        from ser.corpora.msp_improv import prepare_msp_improv

        df = prepare_msp_improv(_root(cfg), cfg.labels)
    else:
        from ser.corpora.manifest import prepare_manifest

        if not cfg.table:
            raise InputError("prepare.table: the manifest file (CSV/JSONL/Parquet) is required for corpus 'manifest'")
        df = prepare_manifest(cfg.table, cfg.columns, None, cfg.labels)
    check_labels(df, labels, f"prepare ({corpus})")
    df = assign_folds(df, cfg.folds)
    log.info(f"{corpus}: {label_counts(df)}; {df['fold'].nunique()} folds on '{cfg.folds}'")
    return df


def _root(cfg: PrepareConfig) -> Path:
    if not cfg.root:
        raise InputError(f"prepare.root: the {cfg.corpus} directory is required")
    root = Path(cfg.root)
    if not root.is_dir():
        raise InputError(f"prepare.root: {root} is not a directory")
    return root
