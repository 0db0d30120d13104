"""Threshold-sensitivity studies (``ser sweep``): metric surfaces over a τ_H × τ_V grid per fold.

Surfaces are computed on each fold's test rows over one common absolute grid, so they can be
averaged across folds; the thresholds a leakage-free tuner would pick (argmax of the same grid
on the fold's tuning set) are marked, with the test score they get, the best test score on the
grid (hindsight), and the oracle's score.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ser.data.arrays import ScoreArrays
from ser.config import SweepConfig
from ser.data.folds import fold_splits
from ser.fusion.rules import OracleRule
from ser.fusion.text import NegativeMapping
from ser.fusion.grid import GridSurface, class_surfaces, threshold_surface
from ser.data.labels import LabelSet
from ser.measures.metrics import METRICS, summary
from ser._util.progress import progress
from ser._util.limits import refuse_oversized

log = logging.getLogger(__name__)

def _long(surf: GridSurface, fold: str, scope: str) -> pd.DataFrame:
    th, tv = np.meshgrid(surf.tau_h, surf.tau_v, indexing="ij")
    cols = {"fold": fold, "scope": scope, "tau_h": th.ravel(), "tau_v": tv.ravel()}
    cols.update({m: surf.metrics[m].ravel() for m in METRICS})
    cols["switch_rate"] = surf.switch_rate.ravel()
    return pd.DataFrame(cols)


def sweep(df: pd.DataFrame, sweep_cfg: SweepConfig, labels: LabelSet, protocol: str = "oof",
          objective: str = "macro_f1") -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(surfaces, chosen, summary): long-format surfaces incl. fold 'mean', per-fold chosen points, stability."""
    a_all = ScoreArrays.from_table(df, labels)
    labels = a_all.labels
    th = sweep_cfg.tau_h.values(np.array([]))
    tv = sweep_cfg.tau_v.values(np.array([]))
    scopes = 1 + labels.k * sweep_cfg.per_class
    refuse_oversized("sweep.tau_h/tau_v steps", f"a {len(th) * len(tv):,}-cell grid over {df['fold'].nunique()} folds",
                     len(th) * len(tv) * scopes * (df["fold"].nunique() + 1) * 16 * 8)    # its long table's rows
    gate = sweep_cfg.gate
    refer = NegativeMapping.from_config("refer", labels)
    frames, chosen = [], []
    splits = fold_splits(df, protocol)
    with progress(len(splits), "sweep", "folds") as advance:
        for split in splits:
            test, tuning = a_all.take(split.test), a_all.take(split.tuning)
            surf = threshold_surface(test, th, tv, gate)
            frames.append(_long(surf, split.fold, "global"))
            if sweep_cfg.per_class:
                for c, cs in zip(labels.classes, class_surfaces(test, th, tv, gate)):
                    frames.append(_long(cs, split.fold, c))
            tune_surf = threshold_surface(tuning, th, tv, gate)
            i, j = np.unravel_index(np.argmax(tune_surf.metrics[objective]), tune_surf.metrics[objective].shape)
            bi, bj = np.unravel_index(np.argmax(surf.metrics[objective]), surf.metrics[objective].shape)
            oracle = summary(test.y, OracleRule(refer).decide(test).pred, labels.k)[objective]
            speech = summary(test.y, test.speech, labels.k)[objective]
            chosen.append({"fold": split.fold, "tau_h": th[i], "tau_v": tv[j],
                           "tuning_score": tune_surf.metrics[objective][i, j],
                           "test_score": surf.metrics[objective][i, j], "switch_rate": surf.switch_rate[i, j],
                           "best_tau_h": th[bi], "best_tau_v": tv[bj], "best_test_score": surf.metrics[objective][bi, bj],
                           "speech_score": speech, "oracle_score": oracle})
            log.debug(f"fold {split.fold}: chosen τ_H={th[i]:.3f} τ_V={tv[j]:.3f} → test {objective} "
                      f"{surf.metrics[objective][i, j]:.4f} (speech {speech:.4f}, best on grid "
                      f"{surf.metrics[objective][bi, bj]:.4f}, oracle {oracle:.4f})")
            advance(1)
    surfaces = pd.concat(frames, ignore_index=True)
    value_cols = list(METRICS) + ["switch_rate"]
    mean = surfaces.groupby(["scope", "tau_h", "tau_v"], sort=False, as_index=False)[value_cols].mean()
    surfaces = pd.concat([surfaces, mean.assign(fold="mean")[surfaces.columns]], ignore_index=True)
    chosen_df = pd.DataFrame(chosen)
    stats = {
        "gate": gate, "objective": objective, "protocol": protocol,
        "chosen_tau_h": {"mean": float(chosen_df["tau_h"].mean()), "std": float(chosen_df["tau_h"].std(ddof=1))},
        "chosen_tau_v": {"mean": float(chosen_df["tau_v"].mean()), "std": float(chosen_df["tau_v"].std(ddof=1))},
        "mean_test_score": float(chosen_df["test_score"].mean()),
        "mean_speech_score": float(chosen_df["speech_score"].mean()),
        "mean_best_on_grid": float(chosen_df["best_test_score"].mean()),
        "mean_oracle_score": float(chosen_df["oracle_score"].mean()),
        "gap_to_oracle": float((chosen_df["oracle_score"] - chosen_df["test_score"]).mean()),
        "gap_to_best_on_grid": float((chosen_df["best_test_score"] - chosen_df["test_score"]).mean()),
    }
    return surfaces, chosen_df, stats
