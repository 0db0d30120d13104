"""A run's outputs and the figures drawn from them, each named like its file under ``figures/``.

The report (``ser report``) and a result's ``.plot(name)`` in a notebook take every figure from ``draw``, so the
figure a notebook shows is the figure the report puts in a paper.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ser.reporting import figures
from ser.config import EvaluateConfig
from ser.evaluation.result_types import CrossTransfer, ScoredSystems, TunedSystems
from ser.measures.stats import paired_bootstrap
from ser._util.io import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ser.reporting.results import CrossResult, Evaluation, SweepResult, TuneResult

BUILTIN = ("speech", "text", "oracle")


@dataclass(frozen=True)
class RunOutputs:
    """What a run directory, or a notebook's results, holds that the report and its figures read."""

    name: str
    result: ScoredSystems | None    # results.json or evaluation.json; None for a sweep or a cross study alone
    tuned: bool
    predictions: pd.DataFrame | None
    trials: pd.DataFrame | None
    sweep: "SweepResult | None"
    cross: CrossTransfer | None

    @classmethod
    def of(cls, name: str, *, tune: "TuneResult | None" = None, evaluation: "Evaluation | None" = None,
           sweep: "SweepResult | None" = None, cross: "CrossResult | None" = None) -> "RunOutputs":
        """The outputs of typed results: a notebook's, or a run directory's as ``ser.load_run`` reads them."""
        main = tune or evaluation
        predictions = main.predictions if main is not None and len(main.predictions) else None
        return cls(name, main.result if main is not None else None, tune is not None, predictions,
                   tune.trials if tune is not None else None, sweep, cross.result if cross is not None else None)

    @property
    def metric(self) -> str:
        return self.result.headline_metric

    @property
    def main(self) -> str | None:
        """The system the report is about: tuned, else the best fixed system by mean metric (None if only built-ins)."""
        if self.result is None:
            return None
        if self.tuned:
            return "tuned"
        own = [s for s in self.result.systems if s not in BUILTIN]
        return max(own, key=lambda s: self.result.mean[s][self.metric]) if own else None

    @property
    def shown(self) -> list[str]:
        """The systems the per-fold figures and tables show: speech, text and the main system."""
        return [s for s in ("speech", "text", self.main) if s and s in self.result.mean]

    @cached_property
    def gains(self) -> pd.DataFrame | None:
        """Per fold: main − speech with a paired bootstrap 95% CI (points); None without a main system or rows."""
        if self.result is None or self.main is None or self.predictions is None:
            return None
        return fold_gains(self.result, self.predictions, self.main)

    @property
    def primary_trials(self) -> pd.DataFrame:
        """The trials of the primary text path's searches (others are tuned again per path)."""
        trials = self.trials if self.trials is not None else pd.DataFrame()
        return trials[trials["text_path"].isna()] if "text_path" in trials else trials


def label_codes(pred: pd.DataFrame, labels: list[str], column: str) -> np.ndarray:
    return pd.Categorical(pred[column], categories=labels).codes.astype(np.int64)


def fold_gains(result: ScoredSystems, pred: pd.DataFrame, main: str) -> pd.DataFrame:
    """Per fold: main − speech with a paired bootstrap 95% CI (points), from the per-row predictions, resampled as
    often as the result's own comparisons were (``evaluate.bootstrap``)."""
    labels, metric = result.labels, result.headline_metric
    compared = next(iter(result.comparisons.values()), None)
    n_boot = compared.bootstrap.n_boot if compared else EvaluateConfig().bootstrap
    rows = []
    for i, fold in enumerate(f.fold for f in result.folds):
        part = pred[pred["fold"] == fold]
        y = label_codes(part, labels, "label")
        b = paired_bootstrap(y, label_codes(part, labels, "pred_speech"), label_codes(part, labels, f"pred_{main}"),
                             len(labels), metric=metric, n_boot=n_boot, seed=i)
        rows.append({"fold": fold, "gain": 100 * b["diff"], "low": 100 * b["ci_low"], "high": 100 * b["ci_high"]})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class FigureSpec:
    """One figure: what it needs (in words, for the error), whether ``out`` has it, and how it is drawn."""

    needs: str
    available: Callable[[RunOutputs], bool]
    draw: Callable[[RunOutputs], "Figure"]


def _has_result(out: RunOutputs) -> bool:
    return out.result is not None


def _sweep_classes(out: RunOutputs) -> bool:
    return out.sweep is not None and bool((out.sweep.surfaces["scope"] != "global").any())


FIGURES: dict[str, FigureSpec] = {
    "folds": FigureSpec("an evaluation or a tuning", _has_result,
                        lambda out: figures.fold_bars(out.result, out.metric, out.shown)),
    "gains": FigureSpec("a fusion system and its per-row predictions", lambda out: out.gains is not None,
                        lambda out: figures.gain_bars(out.gains, out.metric)),
    "confusions": FigureSpec("an evaluation or a tuning", _has_result,
                             lambda out: figures.confusions(out.result, out.shown, out.metric)),
    "transitions": FigureSpec("a fusion system", lambda out: out.main is not None,
                              lambda out: figures.transitions(out.result, out.main)),
    "uncertainty": FigureSpec("per-row predictions", lambda out: out.predictions is not None,
                              lambda out: figures.uncertainty(out.predictions)),
    "sensitivity": FigureSpec("a sweep", lambda out: out.sweep is not None,
                              lambda out: figures.sensitivity(out.sweep.surfaces, out.sweep.chosen,
                                                              out.sweep.stats["objective"])),
    "sensitivity_classes": FigureSpec("a sweep with per-class scopes", _sweep_classes,
                                      lambda out: figures.class_sensitivity(out.sweep.surfaces,
                                                                            out.sweep.stats["objective"])),
    "trials": FigureSpec("a tuning with its trials",
                         lambda out: isinstance(out.result, TunedSystems) and out.result.baselines is not None
                         and len(out.primary_trials) > 0,
                         lambda out: figures.trial_history(out.primary_trials, out.metric)),
    "cross": FigureSpec("a cross-corpus study", lambda out: out.cross is not None,
                        lambda out: figures.cross_matrix(out.cross)),
    "gain_by_wer": FigureSpec("text paths scored against reference transcripts",
                              lambda out: isinstance(out.result, TunedSystems) and out.result.cascade is not None,
                              lambda out: figures.gain_by_wer(out.result.cascade)),
}


def available(out: RunOutputs) -> list[str]:
    """The names of the figures ``out`` can draw, in the report's order."""
    return [name for name, spec in FIGURES.items() if spec.available(out)]


def show_in_notebook() -> None:
    """Under IPython, let a cell that returns a matplotlib Figure show it as a PNG.

    IPython registers that display only once pyplot's inline backend has loaded, which a Figure built without
    pyplot never triggers. A display already registered for Figure (the inline backend's, the user's) is kept.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return
    from matplotlib.figure import Figure

    formatters = shell.display_formatter.formatters
    for formatter in formatters.values():
        try:
            formatter.lookup_by_type(Figure)
            return
        except KeyError:
            continue
    formatters["image/png"].for_type(Figure, figures.png_bytes)


def draw(out: RunOutputs, name: str) -> "Figure":
    """Figure ``name`` of ``out``; a ValueError names what it needs and which figures ``out`` has."""
    spec = FIGURES.get(name)
    if spec is None:
        raise InputError(f"unknown figure {name!r}; figures are named {', '.join(FIGURES)}")
    if not spec.available(out):
        raise InputError(f"figure {name!r} needs {spec.needs}; this result draws: {', '.join(available(out))}")
    return spec.draw(out)
