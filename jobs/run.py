"""``ser run``: prepare → infer → tune → sweep → [cross] → report in one command.

Every stage writes its outputs atomically under the run directory and records a signature
(a hash of its settings and of its inputs' signatures) in ``run.json``; a rerun skips stages
whose signature is unchanged and whose outputs exist, unless ``force``. ``run.json`` also holds
the resolved config, seed, package versions, git commit and per-stage timings.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from ser.config import resolved
from ser.io import write_json, write_parquet
from ser.provenance import provenance


def _sig(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict | None:
    """A JSON file's content, or None when it is missing or damaged (then whatever wrote it runs again)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
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

    def __init__(self, out: Path, cfg: dict, force: bool):
        self.path, self.force = out / "run.json", force
        old = _read_json(self.path) or {}
        self.stages: dict = {} if force else old.get("stages", {})
        self.record = {"command": "run", "config": resolved(cfg), "seed": cfg["seed"], **provenance()}

    def run(self, name: str, signature: str, outputs: list[Path], fn: Callable[[], None], log) -> None:
        done = self.stages.get(name, {})
        if done.get("signature") == signature and all(_intact(p) for p in outputs):
            log(f"== {name}: up to date, skipped (--force reruns)")
            return
        log(f"== {name}")
        t0 = time.perf_counter()
        fn()
        self.stages[name] = {"signature": signature, "seconds": round(time.perf_counter() - t0, 2)}
        self.save()

    def save(self) -> None:
        write_json({**self.record, "stages": self.stages}, self.path)


def _corpus_stages(state: RunState, name: str, prepare_cfg: dict, cfg: dict, root: Path, log) -> tuple[Path, str]:
    """prepare + infer for one corpus under ``root``; returns (scores path, signature)."""
    from jobs.infer import run_infer
    from ser.corpora.prepare import prepare

    spec = {**prepare_cfg}
    if spec["corpus"] and spec["corpus"].startswith("demo") and not spec["root"]:
        spec["root"] = str(root / "corpus")
    manifest, scores = root / "manifest.parquet", root / "infer" / "scores.parquet"
    sig_prepare = _sig(spec)
    state.run(f"prepare[{name}]", sig_prepare, [manifest], lambda: write_parquet(prepare(spec, log=log, labels=cfg["labels"]), manifest), log)
    sig_infer = _sig(sig_prepare, cfg["infer"], cfg["labels"])
    state.run(f"infer[{name}]", sig_infer, [scores],
              lambda: run_infer(pd.read_parquet(manifest), cfg["infer"], cfg["labels"], root / "infer", log=log), log)
    return scores, sig_infer


def run_study(cfg: dict, out: Path, force: bool = False, log: Callable[[str], None] = print) -> dict:
    """Run every stage of a study config into ``out``; returns the per-fold tuning results."""
    from jobs.tune import engine_for
    from ser.evaluate import format_table
    from ser.report import write_report
    from ser.schema import read_scores
    from ser.sweep import sweep, write_sweep
    from ser.transfer import cross_dataset, format_matrix
    from ser.tuning import format_baselines, make_fold_search, result_predictions, tune_folds, tuned_results, \
        write_tuning

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = RunState(out, cfg, force)
    state.save()
    labels, tune = cfg["labels"], cfg["tune"]
    if cfg["scores"]:
        scores_path, sig_scores = Path(cfg["scores"]), _sig(str(cfg["scores"]), Path(cfg["scores"]).stat().st_mtime)
    elif cfg["prepare"]["corpus"]:
        scores_path, sig_scores = _corpus_stages(state, cfg["prepare"]["corpus"], cfg["prepare"], cfg, out, log)
    else:
        raise ValueError("ser run: the config needs 'prepare' (a corpus to score) or 'scores' (a score table)")
    primary = read_scores(scores_path, labels)
    fold_search = make_fold_search(tune, engine_for(tune))

    def do_tune() -> None:
        searches = tune_folds(primary, labels, tune, fold_search, cfg["seed"], state_dir=out / "folds", log=log)
        result = tuned_results(primary, labels, searches, tune, cfg["evaluate"]["bootstrap"], cfg["seed"])
        log(format_table(result))
        log(format_baselines(result))
        write_tuning(out, result, searches, result_predictions(primary, labels, result))

    sig_tune = _sig(sig_scores, tune, cfg["seed"], cfg["evaluate"])
    state.run("tune", sig_tune, [out / "results.json", out / "predictions.parquet"], do_tune, log)

    def do_sweep() -> None:
        write_sweep(out / "sweep", *sweep(primary, cfg["sweep"], tune["protocol"], tune["objective"], log=log,
                                          labels=labels))

    state.run("sweep", _sig(sig_scores, cfg["sweep"], tune["protocol"], tune["objective"]),
              [out / "sweep" / "sweep.json"], do_sweep, log)

    corpora = cfg["cross"]["corpora"] or {}
    if corpora:
        tables, sigs = {str(primary["corpus"].iloc[0]): primary}, [sig_tune]
        for name, spec in corpora.items():
            if isinstance(spec, dict):
                prepare_cfg = {**cfg["prepare"], "root": None, "table": None, **spec}
                path, sig = _corpus_stages(state, name, prepare_cfg, cfg, out / "corpora" / name, log)
            else:
                path, sig = Path(spec), _sig(str(spec), Path(spec).stat().st_mtime)
            tables[name], sigs = read_scores(path, labels), sigs + [sig]

        def do_cross() -> None:
            in_corpus = {next(iter(tables)): json.loads((out / "results.json").read_text())}
            result = cross_dataset(tables, labels, tune, fold_search, cfg["seed"], cfg["evaluate"]["bootstrap"],
                                   log=log, in_corpus=in_corpus)
            log(format_matrix(result))
            write_json(result, out / "cross.json")

        state.run("cross", _sig(*sigs, tune), [out / "cross.json"], do_cross, log)

    t0 = time.perf_counter()
    md, page = write_report(out)
    state.stages["report"] = {"seconds": round(time.perf_counter() - t0, 2)}
    state.save()
    log(f"report: {md} and {page}")
    return json.loads((out / "results.json").read_text())
