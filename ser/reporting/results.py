"""Typed results of the public API: what ``ser.evaluate``, ``ser.tune``, ``ser.sweep`` and ``ser.load_run`` return.

Each wraps the JSON layout of the file the CLI writes (``.to_dict()``) and offers ``.table()``: a DataFrame
with one row per fold and system, the shape a notebook wants to plot or pivot. ``.save(directory)`` writes
the files the matching CLI command writes, so ``ser.load_run`` and ``ser.write_report`` read a notebook's results
as they read a run directory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ser.reporting.escape import html_text
from ser.reporting.plots import RunOutputs, draw, show_in_notebook
from ser._util.io import InputError, file_set, read_json, write_json, write_parquet
from ser.evaluation.result_types import CrossTransfer, ScoredSystems, TunedSystems

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def fold_table(result: ScoredSystems) -> pd.DataFrame:
    """Per-fold metrics of scored systems: one row per (fold, system), metrics as columns."""
    rows = [{"fold": entry.fold, "system": name, "n": entry.n, **scores.values}
            for entry in result.folds for name, scores in entry.systems.items()]
    return pd.DataFrame(rows)


def _means(result: ScoredSystems, systems: list[str]) -> str:
    """'macro_f1 mean over folds: speech 64.25, tuned 66.62' — the line a result's repr leads with."""
    metric = result.headline_metric
    return f"{metric} mean over folds: " + ", ".join(f"{s} {100 * result.mean[s][metric]:.2f}" for s in systems)


def _plot(name: str, *, tune: "TuneResult | None" = None, evaluation: "Evaluation | None" = None,
          sweep: "SweepResult | None" = None, cross: "CrossResult | None" = None) -> "Figure":
    """The report's figure ``name`` drawn from results in memory (``ser.reporting.plots`` names them)."""
    show_in_notebook()
    outputs = RunOutputs.of("notebook", tune=tune, evaluation=evaluation, sweep=sweep, cross=cross)
    return draw(outputs, name)


@dataclass(frozen=True, repr=False)
class Evaluation:
    """Fixed systems scored on every fold's test rows (``evaluation.json``) and every row's predicted label."""

    result: ScoredSystems
    predictions: pd.DataFrame

    def to_dict(self) -> dict:
        return self.result.to_dict()

    def table(self) -> pd.DataFrame:
        """One row per fold and system: its metrics (fractions in [0, 1], not percent)."""
        return fold_table(self.result)

    def __repr__(self) -> str:
        return f"<Evaluation: {len(self.result.folds)} folds; {_means(self.result, self.result.systems)}>"

    def plot(self, name: str = "folds") -> "Figure":
        """A report figure as a matplotlib Figure: ``folds``, ``confusions``, ``uncertainty``, and with a fusion
        system among the evaluated ones ``gains`` and ``transitions``."""
        return _plot(name, evaluation=self)

    def save(self, directory: str | Path) -> Path:
        """``evaluation.json`` and ``predictions.parquet`` in ``directory`` (what ``ser evaluate`` writes)."""
        out = Path(directory)
        with file_set(out) as staged:
            write_parquet(self.predictions, staged / "predictions.parquet")
            write_json(self.result.to_dict(), staged / "evaluation.json")
        return out

    @property
    def warnings(self) -> list[str]:
        return list(self.result.warnings)


@dataclass(frozen=True, repr=False)
class TuneResult:
    """A leakage-free search per fold (``results.json``): the kept configuration, the baselines, every trial."""

    result: TunedSystems
    trials: pd.DataFrame
    predictions: pd.DataFrame

    def to_dict(self) -> dict:
        return self.result.to_dict()

    def table(self) -> pd.DataFrame:
        """One row per fold and system: its metrics (fractions in [0, 1], not percent)."""
        return fold_table(self.result)

    def chosen(self) -> pd.DataFrame:
        """One row per fold: the kept configuration in words, its tuning, inner and test scores, optimism
        (fractions in [0, 1], not percent)."""
        return pd.DataFrame([{"fold": f.fold, **{k: v for k, v in f.best.to_dict().items() if k != "config"}}
                             for f in self.result.folds])

    def baselines(self) -> pd.DataFrame:
        """Did the search earn its complexity: the tuned system and each simple baseline in the tuning objective
        (mean, std, vs_speech, folds_better, folds_worse, vs_tuned; fractions)."""
        from ser.tuning.baselines import baseline_table

        return baseline_table(self.result)

    def summary(self) -> str:
        """What ``ser tune`` prints: the table against the simple baselines, the verdict with its CI, whether
        choosing per fold pays, the hindsight ceiling, and the optimism of the kept configurations."""
        from ser.tuning.baselines import format_baselines

        return format_baselines(self.result)

    def __repr__(self) -> str:
        r = self.result
        folds = r.comparisons["tuned"].folds
        verdict = f"; the search {r.baselines.verdict.verdict} the best simple baseline" if r.baselines else ""
        return (f"<TuneResult: {len(r.folds)} folds, {len(self.trials)} trials; {_means(r, ['speech', 'tuned'])} "
                f"(better in {folds.improved}/{len(r.folds)} folds){verdict}>")

    def plot(self, name: str = "gains") -> "Figure":
        """A report figure as a matplotlib Figure: ``gains`` (tuned − speech per fold with its 95% CI), ``folds``,
        ``confusions``, ``transitions``, ``uncertainty`` or ``trials`` (each fold's search history)."""
        return _plot(name, tune=self)

    def _repr_html_(self) -> str:
        """In a notebook cell: the one-line summary and what ``ser tune`` prints against the simple baselines."""
        return f"<pre>{html_text(repr(self))}\n\n{html_text(self.summary())}</pre>"

    def save(self, directory: str | Path, record: dict | None = None) -> Path:
        """``results.json``, ``trials.parquet``, ``predictions.parquet`` (and ``run.json`` from ``record``) in
        ``directory``, replacing an earlier run's as one set (what ``ser tune`` writes, less its saved fold
        searches)."""
        out = Path(directory)
        with file_set(out) as staged:
            write_parquet(self.trials, staged / "trials.parquet")
            write_parquet(self.predictions, staged / "predictions.parquet")
            write_json(self.result.to_dict(), staged / "results.json")
            if record is not None:
                write_json(record, staged / "run.json")
        return out

    @property
    def warnings(self) -> list[str]:
        return list(self.result.warnings)


@dataclass(frozen=True, repr=False)
class SweepResult:
    """Threshold-sensitivity surfaces (``sweep.parquet``), the points a tuner picks per fold, and their stability."""

    surfaces: pd.DataFrame
    chosen: pd.DataFrame
    stats: dict

    def to_dict(self) -> dict:
        return self.stats

    def table(self) -> pd.DataFrame:
        """One row per fold: the thresholds chosen on its tuning rows and their test scores (fractions)."""
        return self.chosen

    def __repr__(self) -> str:
        h, v = self.stats["chosen_tau_h"], self.stats["chosen_tau_v"]
        return (f"<SweepResult: {len(self.chosen)} folds, {len(self.surfaces):,} surface rows; chosen τ_H "
                f"{h['mean']:.3f} ± {h['std']:.3f}, τ_V {v['mean']:.3f} ± {v['std']:.3f}>")

    def plot(self, name: str = "sensitivity") -> "Figure":
        """A report figure as a matplotlib Figure: ``sensitivity`` (the mean test surface with each fold's choice) or
        ``sensitivity_classes`` (one class's thresholds at a time, when the sweep has per-class scopes)."""
        return _plot(name, sweep=self)

    def save(self, directory: str | Path) -> Path:
        """``sweep.parquet``, ``sweep_chosen.parquet`` and ``sweep.json`` in ``directory`` (what ``ser sweep``
        writes; a run directory or its ``sweep/`` folder)."""
        out = Path(directory)
        with file_set(out) as staged:
            write_parquet(self.surfaces, staged / "sweep.parquet")
            write_parquet(self.chosen, staged / "sweep_chosen.parquet")
            write_json(self.stats, staged / "sweep.json")
        return out


@dataclass(frozen=True, repr=False)
class CrossResult:
    """Cross-corpus transfer (``cross.json``): tuned on the row corpus, tested on the column corpus."""

    result: CrossTransfer

    def to_dict(self) -> dict:
        return self.result.to_dict()

    def table(self) -> pd.DataFrame:
        """One row per (tuned on, tested on) pair: its scores and gain over speech (fractions in [0, 1])."""
        return pd.DataFrame([{"tuned_on": src, "tested_on": dst, **asdict(cell)}
                             for src, row in self.result.matrix.items() for dst, cell in row.items()])

    def __repr__(self) -> str:
        return f"<CrossResult: tuned on × tested on {', '.join(self.result.matrix)}>"

    def plot(self, name: str = "cross") -> "Figure":
        """The transfer matrix as a matplotlib Figure: gain over speech per (tuned on, tested on) pair."""
        return _plot(name, cross=self)

    def save(self, directory: str | Path) -> Path:
        """``cross.json`` in ``directory`` (what ``ser cross`` writes)."""
        out = Path(directory)
        write_json(self.result.to_dict(), out / "cross.json")
        return out


@dataclass(frozen=True, repr=False)
class Run:
    """A run directory read back: its record (``run.json``) and whichever results it holds."""

    path: Path
    record: dict
    tune: TuneResult | None = None
    evaluation: Evaluation | None = None
    sweep: SweepResult | None = None
    cross: CrossResult | None = None

    def to_dict(self) -> dict:
        return {"run": self.record, **{name: part.to_dict() for name, part in self._parts().items()}}

    def __repr__(self) -> str:
        return f"<Run {self.path}: {', '.join(self._parts())}>"

    def table(self) -> pd.DataFrame:
        """Per-fold metrics of the tuned results, else of the evaluation."""
        main = self.tune or self.evaluation
        if main is None:
            raise InputError(f"{self.path} holds neither results.json nor evaluation.json")
        return main.table()

    def plot(self, name: str) -> "Figure":
        """Any figure of the run's report by its file name under ``figures/`` (``gains``, ``sensitivity``, ...)."""
        return _plot(name, tune=self.tune, evaluation=self.evaluation, sweep=self.sweep, cross=self.cross)

    def _parts(self) -> dict:
        parts = {"tune": self.tune, "evaluation": self.evaluation, "sweep": self.sweep, "cross": self.cross}
        return {k: v for k, v in parts.items() if v is not None}


def run_outputs(run: Path) -> RunOutputs:
    """A run directory's outputs, which the report needs to hold a tuning or an evaluation."""
    if not (run / "results.json").exists() and not (run / "evaluation.json").exists():
        raise FileNotFoundError(f"{run} holds neither results.json nor evaluation.json: run `ser tune`, "
                                f"`ser evaluate` or `ser run` into it first")
    loaded = load_run(run)
    return RunOutputs.of(run.name, tune=loaded.tune, evaluation=loaded.evaluation, sweep=loaded.sweep,
                         cross=loaded.cross)



def _parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory written by ``ser run``, ``ser tune``, ``ser evaluate``, ``ser sweep`` or ``ser cross``."""
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(f"run directory {run} does not exist")
    results, evaluation = read_json(run / "results.json"), read_json(run / "evaluation.json")
    sweep_dir = run / "sweep" if (run / "sweep" / "sweep.json").exists() else run
    sweep_stats, cross = read_json(sweep_dir / "sweep.json"), read_json(run / "cross.json")
    predictions = _parquet(run / "predictions.parquet")
    try:
        tuned = TunedSystems.from_dict(results) if results else None
        scored = ScoredSystems.from_dict(evaluation) if evaluation else None
        transfer = CrossTransfer.from_dict(cross) if cross else None
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{run}: its results lack {exc} (damaged, or written by another ser version); rerun the "
                         f"command that wrote them") from exc
    loaded = Run(
        path=run, record=read_json(run / "run.json") or {},
        tune=TuneResult(tuned, _parquet(run / "trials.parquet"), predictions) if tuned else None,
        evaluation=Evaluation(scored, predictions) if scored else None,
        sweep=SweepResult(_parquet(sweep_dir / "sweep.parquet"), _parquet(sweep_dir / "sweep_chosen.parquet"),
                          sweep_stats) if sweep_stats else None,
        cross=CrossResult(transfer) if transfer else None)
    if not loaded._parts():
        raise InputError(f"{run} holds no ser results (results.json, evaluation.json, sweep.json or cross.json)")
    return loaded
