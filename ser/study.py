"""The orchestration layer: one function per stage, writing its outputs atomically, used by the CLI and ``ser run``.

``run_study`` chains prepare → infer → tune → sweep → [cross] → report. Each stage records a signature
(a hash of its settings, of its inputs' signatures and of the exact models it loads) in ``run.json``; a
rerun skips stages whose signature is unchanged and whose outputs are intact, unless ``force``. The fusion
stages (tune, sweep, cross) also sign ser's code (version and source digest, ``provenance.code_version``), so an
upgrade or an edit recomputes them (seconds to minutes); inference does not depend on the fusion code and costs
GPU-hours, so it is kept.
``run.json`` also holds the resolved config, seed, package versions, git commit, model versions and
per-stage timings.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from ser.api import ConfigLike, cross, evaluate_table, sweep_table, tune_table
from ser.config import PrepareConfig, StudyConfig, load_config
from ser._util.io import DamagedFile, InputError, file_digest, read_json, signature, write_json, write_parquet
from ser.tuning.optuna_store import storage_url
from ser._util.provenance import code_version, run_record
from ser.evaluation.result_types import ScoredSystems, TunedSystems
from ser.reporting.results import CrossResult, Evaluation, SweepResult, TuneResult, load_run
from ser.reporting.tracking import check_tracker, cross_log, files_log, log_stage, stage_log

log = logging.getLogger(__name__)


def prepare_stage(spec: PrepareConfig, cfg: StudyConfig, manifest: Path) -> pd.DataFrame:
    """A corpus → ``manifest`` (utterances, labels, folds)."""
    from ser.inference.prepare import prepare

    df = prepare(spec, labels=cfg.label_set)
    write_parquet(df, manifest)
    return df


def infer_stage(manifest: pd.DataFrame, cfg: StudyConfig, out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A manifest → ``out/scores.parquet`` and ``out/errors.parquet`` (Ray Data; resumable)."""
    from ser.engine import run_inference

    return run_inference(manifest, cfg.infer, cfg.label_set, out)


def evaluate_stage(df: pd.DataFrame, cfg: StudyConfig, out: Path) -> Evaluation:
    """Fixed systems → ``evaluation.json`` and ``predictions.parquet``."""
    check_tracker(cfg.track)
    evaluation = evaluate_table(df, cfg)
    evaluation.save(out)
    log_stage(cfg.track, out, stage_log("evaluate", cfg, out, evaluation.result, (out / "evaluation.json",)))
    return evaluation


def tune_stage(df: pd.DataFrame, cfg: StudyConfig, out: Path, *, resume: bool = True,
               experiment_dir: Path | None = None, record: Callable[[TunedSystems], dict] | None = None
               ) -> TuneResult:
    """Per-fold search → ``results.json``, ``trials.parquet``, ``predictions.parquet`` and, with ``record``
    (the result → the run's record), ``run.json``, as one set (finished folds kept in ``out/folds`` and reused
    when ``resume``)."""
    check_tracker(cfg.track)
    if cfg.tune.storage:
        cfg = replace(cfg, tune=replace(cfg.tune, storage=storage_url(cfg.tune.storage, out)))
    result = tune_table(df, cfg, state_dir=out / "folds", reuse=resume, experiment_dir=experiment_dir)
    result.save(out, None if record is None else record(result.result))
    log_stage(cfg.track, out, stage_log("tune", cfg, out, result.result, (out / "results.json", out / "trials.parquet")))
    return result


def sweep_stage(df: pd.DataFrame, cfg: StudyConfig, out: Path) -> SweepResult:
    """Threshold surfaces → ``sweep.parquet``, ``sweep_chosen.parquet``, ``sweep.json``."""
    result = sweep_table(df, cfg)
    result.save(out)
    return result


def cross_stage(tables: Mapping[str, pd.DataFrame], config: ConfigLike, out: Path, *,
                in_corpus: Mapping[str, ScoredSystems] | None = None, state_dirs: Mapping[str, Path] | None = None,
                reuse: bool = True) -> CrossResult:
    """Transfer matrix → ``cross.json`` (each corpus' per-fold searches kept in ``state_dirs[corpus]``)."""
    cfg = load_config(config)
    check_tracker(cfg.track)
    result = cross(tables, config, in_corpus=in_corpus, state_dirs=state_dirs, reuse=reuse)
    result.save(out)
    log_stage(cfg.track, out, cross_log(cfg, out, result.result, (out / "cross.json",)))
    return result


def report_stage(run: Path, formats: tuple[str, ...] = ("png",)) -> tuple[Path, Path]:
    """``report.md``, ``report.html``, figures and tables of a run directory."""
    from ser.reporting.report import write_report

    return write_report(run, formats)


def _read_json(path: Path) -> Any:
    """A JSON output's content, or None when it is missing or damaged (then whatever wrote it runs again)."""
    try:
        return read_json(path)
    except DamagedFile:
        return None


def _intact(path: Path) -> bool:
    """An output a finished stage left behind: present and, for JSON and Parquet, readable."""
    if path.suffix == ".json":
        return _read_json(path) is not None
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            pq.read_metadata(path)
            return True
        except (OSError, ValueError):
            return False
    return path.exists()


class RunState:
    """Stage signatures and timings persisted in ``run.json`` (rewritten atomically after each stage)."""

    def __init__(self, out: Path, cfg: StudyConfig, force: bool):
        self.path, self.force = out / "run.json", force
        old = _read_json(self.path) or {}
        self.stages: dict = {} if force else old.get("stages", {})
        self.models: dict = {}
        self.record = run_record("run", cfg)

    def run(self, name: str, stage_signature: str, outputs: list[Path], fn: Callable[[], object]) -> None:
        done = self.stages.get(name, {})
        if done.get("signature") == stage_signature and all(_intact(p) for p in outputs):
            log.info(f"== {name}: up to date, skipped (--force reruns)")
            return
        log.info(f"== {name}")
        t0 = time.perf_counter()
        fn()
        self.stages[name] = {"signature": stage_signature, "seconds": round(time.perf_counter() - t0, 2)}
        self.save()

    def save(self) -> None:
        write_json({**self.record, "models": self.models, "stages": self.stages}, self.path)


def _corpus_stages(state: RunState, name: str, spec: PrepareConfig, cfg: StudyConfig, root: Path
                   ) -> tuple[Path, str]:
    """prepare + infer for one corpus under ``root``; returns (scores path, signature)."""
    from ser.inference.pipeline import model_versions

    sig_prepare = signature(spec)                 # before the demo's root is placed: a copied run stays up to date
    if spec.corpus and spec.corpus.startswith("demo") and not spec.root:
        spec = replace(spec, root=str(root / "corpus"))
    manifest, scores = root / "manifest.parquet", root / "infer" / "scores.parquet"
    state.run(f"prepare[{name}]", sig_prepare, [manifest], lambda: prepare_stage(spec, cfg, manifest))
    folds = sorted(pd.read_parquet(manifest, columns=["fold"])["fold"].astype(str).unique())
    state.models[name] = model_versions(cfg.infer, folds)
    sig_infer = signature(sig_prepare, cfg.infer.to_dict(), cfg.label_set, state.models[name])
    state.run(f"infer[{name}]", sig_infer, [scores],
              lambda: infer_stage(pd.read_parquet(manifest), cfg, root / "infer"))
    return scores, sig_infer


def _table_signature(path: Path) -> str:
    """A score table's content digest: the same table copied or moved is up to date, an edited one is not."""
    return file_digest(path)


def run_study(cfg: StudyConfig, out: Path, force: bool = False) -> TuneResult:
    """Run every stage of a study config into ``out``; returns the per-fold tuning results."""
    from ser.evaluation.scoring import format_table
    from ser.data.schema import read_scores
    from ser.tuning.transfer import format_matrix
    from ser.tuning.baselines import format_baselines, format_verdict

    check_tracker(cfg.track)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = RunState(out, cfg, force)
    state.save()
    labels = cfg.label_set
    if cfg.scores:
        scores_path = Path(cfg.scores)
        sig_scores = _table_signature(scores_path)
    elif cfg.prepare.corpus:
        scores_path, sig_scores = _corpus_stages(state, cfg.prepare.corpus, cfg.prepare, cfg, out)
    else:
        raise InputError("ser run: the config needs 'prepare' (a corpus to score) or 'scores' (a score table)")
    primary = read_scores(scores_path, labels)

    def do_tune() -> None:
        result = tune_stage(primary, cfg, out)
        log.debug(format_table(result.result))              # every metric and CI: in ser.log and the report
        log.debug(format_baselines(result.result))
        log.info(format_verdict(result.result))

    sig_tune = signature(sig_scores, cfg.tune, cfg.seed, cfg.evaluate, code_version())
    state.run("tune", sig_tune, [out / "results.json", out / "predictions.parquet"], do_tune)
    state.run("sweep", signature(sig_scores, cfg.sweep, cfg.tune.protocol, cfg.tune.objective, code_version()),
              [out / "sweep" / "sweep.json"], lambda: sweep_stage(primary, cfg, out / "sweep"))

    if cfg.cross.corpora:
        tables, sigs = {str(primary["corpus"].iloc[0]): primary}, [sig_tune]
        state_dirs = {next(iter(tables)): out / "folds"}      # the tune stage's searches, reused on the diagonals
        for name, spec in cfg.cross.corpora.items():
            if isinstance(spec, dict):
                path, sig = _corpus_stages(state, name, cfg.cross.prepare_for(name, cfg.prepare), cfg,
                                           out / "corpora" / name)
            else:
                path, sig = Path(spec), _table_signature(Path(spec))
            tables[name], sigs = read_scores(path, labels), sigs + [sig]
            state_dirs[name] = out / "corpora" / name / "folds"

        def do_cross() -> None:
            in_corpus = {next(iter(tables)): TunedSystems.from_dict(read_json(out / "results.json"))}
            log.info(format_matrix(cross_stage(tables, cfg, out, in_corpus=in_corpus, state_dirs=state_dirs).result))

        state.run("cross", signature(*sigs, cfg.tune), [out / "cross.json"], do_cross)

    t0 = time.perf_counter()
    md, page = report_stage(out)
    log_stage(cfg.track, out, files_log("report", cfg, out, (md, page, out / "figures", out / "tables")))
    state.stages["report"] = {"seconds": round(time.perf_counter() - t0, 2)}
    state.save()
    log.info(f"report: {md} and {page}")
    return load_run(out).tune

