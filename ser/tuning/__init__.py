"""Leakage-free per-fold tuning: the search and its variants, the choice among trials, the simple
baselines, the engines (in process or Ray Tune), threshold sensitivity, cross-corpus transfer and
Optuna storage."""
