"""Shared fixtures: small crafted tables and a synthetic 10-fold score table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser.data.labels import DEFAULT_LABELS
from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores


def make_table(labels, speech, text, folds=None, **extra) -> pd.DataFrame:
    """A score table from per-row gold labels, speech probability rows and sentiment rows."""
    n = len(labels)
    df = pd.DataFrame({"utt_id": [f"u{i}" for i in range(n)], "corpus": "t", "label": labels,
                       "fold": folds if folds is not None else ["f0"] * n})
    speech, text = np.asarray(speech, float), np.asarray(text, float)
    for j, c in enumerate(DEFAULT_LABELS.classes):
        df[f"speech_{c}"] = speech[:, j]
    for j, s in enumerate(("neg", "neu", "pos")):
        df[f"text_{s}"] = text[:, j]
    for k, v in extra.items():
        df[k] = v
    return df


@pytest.fixture(scope="session")
def synth_table() -> pd.DataFrame:
    return validate(synthetic_scores(n_folds=10, per_fold=300, seed=1, profile="text-strong"))


@pytest.hookimpl(tryfirst=True)       # before xdist's own hook reads the groups (else every test is ungrouped)
def pytest_collection_modifyitems(items):
    """Tests that start a Ray run in turn on one xdist worker (``make test``: ``-n 2 --dist loadgroup``), sharing the
    session's Ray; the other worker runs the rest meanwhile."""
    for item in items:
        if item.get_closest_marker("ray"):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session: 2 CPUs and 2 fake GPUs (for pinning tests), no dashboard."""
    import ray

    from jobs.ray_env import ensure_ray

    ensure_ray(num_cpus=2, num_gpus=2)
    yield ray
    ray.shutdown()
