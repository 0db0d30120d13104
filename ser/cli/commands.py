"""What each subcommand does: read its inputs and config, run its stage, print and log what it wrote."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ser._util.io import InputError, file_component, output_lock, write_json
from ser._util.logs import add_log_file

if TYPE_CHECKING:
    from ser.evaluation.result_types import ScoredSystems, TunedSystems

log = logging.getLogger("ser")


def _config(args: argparse.Namespace, **overrides):
    """The study config of a subcommand: ``--config``, then every ``--set``, then its own flags."""
    from ser.config import load_config

    return load_config(_raw_config(args, **overrides), origin=_origin(args))


def _sets(args: argparse.Namespace) -> tuple[str, ...]:
    """Every ``--set``, with ``--track BACKEND`` as the ``track.backend`` setting it stands for."""
    track = getattr(args, "track", None)
    return (*(getattr(args, "set", None) or ()), *([f"track.backend={track}"] if track else []))


def _origin(args: argparse.Namespace) -> str:
    """Where a subcommand's config comes from, for its errors."""
    origin = f"config {args.config}" if getattr(args, "config", None) else "config"
    return origin + (" with --set" if getattr(args, "set", None) else "")


def _raw_config(args: argparse.Namespace, **overrides) -> dict:
    """The YAML mapping of ``--config`` with every ``--set`` and the subcommand's flags applied: the one way a
    subcommand's config is read (the API takes the label set from it when it names one, else from the table)."""
    from ser.config import config_mapping

    return config_mapping(getattr(args, "config", None), _sets(args), overrides)


def _table_inputs(args: argparse.Namespace):
    """(validated score table, config, output dir) for a subcommand that reads one score table."""
    from ser.api import resolve

    if args.table and args.scores and args.table != args.scores:
        raise InputError(f"two score tables given: {args.table} and --scores {args.scores}; give one")
    raw = _raw_config(args, scores=args.scores or args.table, out=args.out)
    if not raw.get("scores"):
        raise InputError("no score table given (--scores FILE or 'scores:' in the config)")
    df, cfg = resolve(raw["scores"], raw, origin=_origin(args))
    return df, cfg, Path(cfg.out or f"runs/{args.command}")


@contextmanager
def _writing(out: Path, command: str) -> Iterator[Callable[[], float]]:
    """The frame of a command that writes into ``out``: its lock and its log file, and the seconds it has taken."""
    t0 = time.perf_counter()
    with output_lock(out, command):
        add_log_file(out / "ser.log")
        yield lambda: time.perf_counter() - t0


def _warn(result: ScoredSystems) -> None:
    """Weak but valid input (recorded in the result's ``warnings``) as one warning line each."""
    for warning in result.warnings:
        log.warning(warning)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``ser evaluate``: the configured fixed systems on a score table → evaluation.json, predictions."""
    from ser.evaluation.scoring import format_table
    from ser.study import evaluate_stage
    from ser.evaluation.text_paths import format_text_paths

    df, cfg, out = _table_inputs(args)
    with _writing(out, "evaluate") as elapsed:
        result = evaluate_stage(df, cfg, out).result
        print(format_table(result))
        paths = format_text_paths(result)
        if paths:
            print(paths)
        _warn(result)
    log.info(f"wrote {out / 'evaluation.json'} and predictions.parquet ({elapsed():.2f} s)")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    """``ser tune``: the per-fold search with baselines and the verdict → results.json, trials, predictions."""
    from dataclasses import replace

    from ser.evaluation.scoring import format_table
    from ser._util.provenance import run_record
    from ser.study import tune_stage
    from ser.evaluation.text_paths import format_text_paths
    from ser.tuning.baselines import format_baselines

    df, cfg, out = _table_inputs(args)
    if args.engine or args.text:
        cfg = replace(cfg, tune=replace(cfg.tune, **{k: v for k, v in (("engine", args.engine), ("text", args.text))
                                                    if v}))
    with _writing(out, "tune") as elapsed:
        def record(result: TunedSystems) -> dict:
            return run_record("tune", cfg, config_file=args.config, timings_s={"total": elapsed()},
                              warnings=list(result.warnings))
        result = tune_stage(df, cfg, out, resume=args.resume, experiment_dir=out / "tune_experiment",
                            record=record).result
        print(format_table(result))
        print(format_baselines(result))
        paths = format_text_paths(result)
        if paths:
            print(paths)
        _warn(result)
    log.info(f"wrote {out}/results.json, trials.parquet, predictions.parquet, run.json "
             f"({elapsed():.1f} s)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """``ser sweep``: threshold-sensitivity surfaces per fold and averaged → sweep/."""
    from ser.study import sweep_stage

    df, cfg, out = _table_inputs(args)
    with _writing(out, "sweep") as elapsed:
        result = sweep_stage(df, cfg, out)
    stats = result.stats
    print(f"chosen τ_H {stats['chosen_tau_h']['mean']:.3f} ± {stats['chosen_tau_h']['std']:.3f}, "
          f"τ_V {stats['chosen_tau_v']['mean']:.3f} ± {stats['chosen_tau_v']['std']:.3f} across folds; "
          f"gap to oracle {100 * stats['gap_to_oracle']:.2f} points")
    log.info(f"wrote {out}/sweep.parquet ({len(result.surfaces):,} rows), sweep_chosen.parquet, sweep.json "
             f"({elapsed():.1f} s)")
    return 0


def cmd_cross(args: argparse.Namespace) -> int:
    """``ser cross``: tune on each corpus, test on every other → cross.json and the transfer matrix."""
    from ser.data.schema import read_table
    from ser.study import cross_stage
    from ser.tuning.transfer import format_matrix, split_corpora

    cfg = _config(args, scores=args.scores or args.table, out=args.out)
    corpora = cfg.cross.corpora
    if corpora:
        if len(corpora) < 2 or not all(isinstance(v, str) for v in corpora.values()):
            raise InputError("cross.corpora must map at least two corpus names to score tables")
        tables = {name: read_table(path) for name, path in corpora.items()}
    elif cfg.scores:
        tables = split_corpora(read_table(cfg.scores))
    else:
        raise InputError("give cross.corpora in the config, or --scores with a 'corpus' column")
    out = Path(cfg.out or "runs/cross")
    with _writing(out, "cross") as elapsed:
        result = cross_stage(tables, _raw_config(args, scores=args.scores or args.table, out=args.out), out,
                             reuse=args.resume,
                             state_dirs={name: out / "folds" / file_component(name) for name in tables})
        print(format_matrix(result.result))
    log.info(f"wrote {out}/cross.json ({elapsed():.1f} s)")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """``ser prepare``: a corpus directory (or table, or HF dataset) → a manifest with labels and folds."""
    from dataclasses import replace

    from ser.study import prepare_stage

    cfg = _config(args)
    given = {k: v for k, v in (("corpus", args.corpus), ("root", args.root), ("table", args.table),
                               ("folds", args.folds), ("dataset", args.dataset), ("split", args.split)) if v}
    renamed = {its: ours for its, ours in ((args.audio_column, "audio"), (args.label_column, "label"),
                                           (args.speaker_column, "speaker")) if its}
    if renamed:
        given["columns"] = {**(cfg.prepare.columns or {}), **renamed}
    spec = replace(cfg.prepare, **given)
    if not spec.corpus:
        raise InputError("--corpus (or prepare.corpus in the config) is required")
    prepare_stage(spec, cfg, Path(args.out))
    log.info(f"wrote {args.out}")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    """``ser infer``: a manifest → scores.parquet and errors.parquet on Ray Data (resumable)."""
    from ser.data.corpora import read_manifest
    from ser.inference.pipeline import model_versions
    from ser._util.provenance import run_record
    from ser.study import infer_stage

    cfg = _config(args, out=args.out)
    manifest_path = args.manifest or cfg.infer.manifest
    if not manifest_path:
        raise InputError("--manifest (or infer.manifest in the config) is required")
    manifest = read_manifest(manifest_path, cfg.label_set)
    out = Path(cfg.out or "runs/infer")
    with _writing(out, "infer") as elapsed:
        models = model_versions(cfg.infer, sorted(manifest["fold"].astype(str).unique()))
        scores, errors = infer_stage(manifest, cfg, out)
        write_json(run_record("infer", cfg, models=models, timings_s={"total": elapsed()}),
                   out / "run.json")
    log.info(f"wrote {out}/scores.parquet ({len(scores)} rows), errors.parquet ({len(errors)} rows), run.json "
             f"in {elapsed():.1f} s")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``ser report``: report.md, report.html, figures and tables of a run directory."""
    from ser.study import report_stage

    formats = tuple(args.format)
    if not Path(args.run).is_dir():
        raise InputError(f"--run {args.run} is not a run directory (it does not exist): give the --out of a ser "
                         f"tune, evaluate or run")
    with output_lock(args.run, "report"):
        md, page = report_stage(Path(args.run), formats)
    kinds = list(dict.fromkeys(("png",) + formats))
    pattern = kinds[0] if len(kinds) == 1 else "{" + ",".join(kinds) + "}"
    run = Path(args.run)
    log.info(f"wrote {md}, {page}, {run / 'figures'}/*.{pattern} and {run / 'tables'}/*.{{csv,tex}}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """``ser leaderboard``: several runs side by side, per corpus and system."""
    from ser.reporting.leaderboard import write_leaderboard

    with output_lock(args.out, "leaderboard"):
        written = write_leaderboard(args.runs, args.out, tuple(args.systems) if args.systems else None)
    log.info(f"wrote {', '.join(map(str, written))}")
    return 0


def _study_config_path(given: str) -> str:
    """A config file as given, or, when no such file exists, a config shipped with ser by its name (``demo``,
    ``iemocap``, ``presets/published``): what a pip user has instead of a checkout's ``configs/``."""
    if Path(given).exists():
        return given
    base = Path(__file__).resolve().parent.parent / "configs"           # ser/configs, beside ser/cli
    shipped = base / f"{given.removesuffix('.yaml')}.yaml"
    if shipped.is_file():
        return str(shipped)
    names = sorted(p.relative_to(base).with_suffix("").as_posix() for p in base.rglob("*.yaml"))
    raise InputError(f"config {given} does not exist (nor is it one of ser's own configs: {', '.join(names)})")


def cmd_run(args: argparse.Namespace) -> int:
    """``ser run``: every stage of a study YAML into one run directory (up-to-date stages skipped)."""
    from ser.study import run_study

    args.config = _study_config_path(args.config)
    cfg = _config(args, out=args.out)
    out = Path(cfg.out or f"runs/{cfg.name}")
    with _writing(out, "run") as elapsed:
        run_study(cfg, out, force=args.force)
    log.info(f"ser run finished in {elapsed():.1f} s: {out}/report.html (full log: {out}/ser.log)")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """``ser config``: a resolved config with every default, or the key reference."""
    import yaml

    from ser.config.reference import config_reference

    if args.action == "reference":
        print(config_reference())
        return 0
    if not args.config:
        raise InputError("ser config show needs a config file")
    args.config = _study_config_path(args.config)
    print(yaml.safe_dump(_plain(_config(args).to_dict()), sort_keys=False, allow_unicode=True,
                         default_flow_style=None), end="")
    return 0


def _plain(value):
    """Tuples → lists, for YAML output readable by any YAML loader."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def cmd_submit(args: argparse.Namespace) -> int:
    """``ser submit``: a ser command as a Ray job on a cluster (or a job's status, logs or stop)."""
    from ser.engine import ray_layer

    submit = ray_layer("submit")
    if args.status:
        return submit.status(args.address, args.status)
    if args.stop:
        return submit.stop(args.address, args.stop)
    if args.logs:
        return submit.logs(args.address, args.logs)
    ser_args = args.ser_args[1:] if args.ser_args[:1] == ["--"] else args.ser_args
    return submit.submit(args.address, ser_args, args.working_dir, args.runtime_env, args.wait)


def cmd_synth(args: argparse.Namespace) -> int:
    """``ser synth``: a synthetic score table of a named profile."""
    from ser.data.schema import validate, write_scores
    from ser.data.synthetic import SecondPath, synthetic_scores

    try:
        second = SecondPath(args.second_path, args.second_strength, args.second_correlation) \
            if args.second_path else None
    except ValueError as exc:
        raise InputError(f"ser synth: {exc}") from None
    df = validate(synthetic_scores(args.folds, args.per_fold, args.seed, args.corpus, profile=args.profile,
                                   second=second))
    write_scores(df, args.out)
    extra = f", second text path '{second.name}'" if second else ""
    log.info(f"wrote {args.out}: {len(df)} rows, {args.folds} folds ({args.profile} profile{extra})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``ser import``: another tool's table through a YAML mapping → a validated score table."""
    from ser.data.importers import add_text_path, apply_mapping, load_mapping
    from ser.data.schema import read_scores, read_table, write_scores

    labels = _config(args).label_set
    df = apply_mapping(read_table(args.input), load_mapping(args.mapping), labels, source=args.input)
    if args.add_to:
        if not args.path:
            raise InputError("--add-to needs --path NAME (the name of the text path added)")
        df = add_text_path(read_scores(args.add_to, labels), df, args.path, labels)
    write_scores(df, args.out)
    log.info(f"wrote {args.out}: {len(df)} rows, {df['fold'].nunique()} folds")
    return 0
