"""Entropy and varentropy of probability rows (natural log), vectorized and safe at p = 0."""

from __future__ import annotations

import numpy as np


def _surprisal(p: np.ndarray) -> np.ndarray:
    """-ln p with the convention that terms where p = 0 contribute nothing (returns 0 there)."""
    with np.errstate(divide="ignore"):
        s = -np.log(p)
    return np.where(p > 0, s, 0.0)


def entropy(p: np.ndarray) -> np.ndarray:
    """H(p) = -Σ p_i ln p_i over the last axis; 0 ≤ H ≤ ln K."""
    p = np.asarray(p, dtype=np.float64)
    return np.sum(p * _surprisal(p), axis=-1)


def varentropy(p: np.ndarray) -> np.ndarray:
    """V(p) = Σ p_i (ln p_i + H)², the variance of the surprisal -ln p under p."""
    return entropy_varentropy(p)[1]


def entropy_varentropy(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both measures in one pass over the surprisals."""
    p = np.asarray(p, dtype=np.float64)
    s = _surprisal(p)
    h = np.sum(p * s, axis=-1)
    v = np.sum(p * (s - h[..., None]) ** 2, axis=-1)
    return h, v
