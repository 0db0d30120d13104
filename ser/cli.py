"""ser: score emotion corpora, tune entropy-aware fusion per fold, report. One subcommand per stage.

Exit codes: 0 success; 1 runtime failure (disk full, a model or Ray failing); 2 bad input (config,
score table, manifest, mapping, paths, arguments); 3 the output directory is in use by another
ser run; 130 interrupted (Ctrl-C). Errors are one line on stderr; --debug or SER_DEBUG=1
shows the traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ser import __version__
from ser._util.io import DiskFull, InputError, OutputLocked, file_component, output_lock, write_json
from ser._util.logs import add_log_file, close_log_files, setup_logging
from ser.data.corpora.registry import CORPORA
from ser.data.synthetic import PROFILES

if TYPE_CHECKING:
    from ser.evaluation.result_types import ScoredSystems, TunedSystems

EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_LOCKED, EXIT_INTERRUPTED = 1, 2, 3, 130
EXTRAS = {"ray": "ray", "optuna": "ray", "torch": "models", "transformers": "models", "faster_whisper": "models",
          "ctranslate2": "models", "soundfile": "models", "soxr": "models", "vaderSentiment": "models",
          "sentencepiece": "models", "mlflow": "track", "tensorboardX": "track", "tensorboard": "track",
          "wandb": "track", "datasets": "hf"}
"""Which pip extra (pyproject's optional-dependencies) brings a module a command imports on demand."""


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


def _cmd_evaluate(args: argparse.Namespace) -> int:
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


def _cmd_tune(args: argparse.Namespace) -> int:
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


def _cmd_sweep(args: argparse.Namespace) -> int:
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


def _cmd_cross(args: argparse.Namespace) -> int:
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


def _cmd_prepare(args: argparse.Namespace) -> int:
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


def _cmd_infer(args: argparse.Namespace) -> int:
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


def _cmd_report(args: argparse.Namespace) -> int:
    from ser.study import report_stage

    formats = tuple(args.format)
    if not Path(args.run).is_dir():
        raise InputError(f"--run {args.run} is not a run directory (it does not exist): give the --out of a ser "
                         f"tune, evaluate or run")
    with output_lock(args.run, "report"):
        md, page = report_stage(Path(args.run), formats)
    kinds = list(dict.fromkeys(("png",) + formats))
    pattern = kinds[0] if len(kinds) == 1 else "{" + ",".join(kinds) + "}"
    log.info(f"wrote {md}, {page}, {Path(args.run) / 'figures'}/*.{pattern} and {Path(args.run) / 'tables'}/*.{{csv,tex}}")
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
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
    base = Path(__file__).parent / "configs"
    shipped = base / f"{given.removesuffix('.yaml')}.yaml"
    if shipped.is_file():
        return str(shipped)
    names = sorted(p.relative_to(base).with_suffix("").as_posix() for p in base.rglob("*.yaml"))
    raise InputError(f"config {given} does not exist (nor is it one of ser's own configs: {', '.join(names)})")


def _cmd_run(args: argparse.Namespace) -> int:
    from ser.study import run_study

    args.config = _study_config_path(args.config)
    cfg = _config(args, out=args.out)
    out = Path(cfg.out or f"runs/{cfg.name}")
    with _writing(out, "run") as elapsed:
        run_study(cfg, out, force=args.force)
    log.info(f"ser run finished in {elapsed():.1f} s: {out}/report.html (full log: {out}/ser.log)")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from ser.config import config_reference

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


def _cmd_submit(args: argparse.Namespace) -> int:
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


def _cmd_synth(args: argparse.Namespace) -> int:
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


def _cmd_import(args: argparse.Namespace) -> int:
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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; an option's default shown where it has one worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, 0, argparse.SUPPRESS) and "default" not in text and \
                not isinstance(action, argparse._VersionAction):
            shown = " ".join(action.default) if isinstance(action.default, list) else action.default
            text += f" (default: {shown})"
        return text


def build_parser() -> argparse.ArgumentParser:
    from ser.config import ENGINES, TRACK_BACKENDS

    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true",
                       help="no headers, progress or log lines: warnings, errors and printed results only")
    quiet.add_argument("-v", "--verbose", action="count", default=0,
                       help="more detail: -v per-fold lines, -vv also Ray's own log lines")
    quiet.add_argument("--debug", action="store_true", help="show tracebacks (also SER_DEBUG=1)")
    settings = argparse.ArgumentParser(add_help=False)
    settings.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                          help="override a config value (YAML value; repeatable), e.g. --set tune.trials=16")
    settings.add_argument("--track", choices=list(TRACK_BACKENDS),
                          help="log each stage's results to this experiment tracker (track.backend)")
    parser = argparse.ArgumentParser(prog="ser", description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--debug", dest="debug_anywhere", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"ser (entropy-ser) {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, example: str, reads_config: bool = True) -> argparse.ArgumentParser:
        """A subcommand: its one-line help, a description with an example, and the common options (``--set``
        only where the command reads a config)."""
        p = sub.add_parser(name, help=help, description=f"{help[0].upper()}{help[1:]}.",
                           epilog=f"example:\n  {example}", formatter_class=_HelpFormatter,
                           parents=[quiet, settings] if reads_config else [quiet])
        p.required_group = p.add_argument_group("required")
        return p

    p = command("run", "all stages: prepare → infer → tune → sweep → [cross] → report, into one run directory",
                "ser run configs/demo.yaml --out runs/demo")
    p.add_argument("config", help="study YAML (e.g. configs/demo.yaml)")
    p.add_argument("--out", help="run directory (default: runs/<name>)")
    p.add_argument("--force", action="store_true", help="rerun stages that are up to date")
    p.set_defaults(func=_cmd_run)

    p = command("submit", "run a ser command as a Ray job on a cluster",
                "ser submit --address http://127.0.0.1:8265 --wait -- run configs/iemocap.yaml", reads_config=False)
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"),
                   help="Ray job server (dashboard) URL ($RAY_ADDRESS when set)")
    p.add_argument("--wait", action="store_true", help="stream logs; exit non-zero if the job fails")
    p.add_argument("--runtime-env", help="YAML merged into the runtime env (pip, env_vars, excludes, ...)")
    p.add_argument("--working-dir", default=".", help="directory uploaded as the job's working dir")
    p.add_argument("--status", metavar="ID", help="print a job's status")
    p.add_argument("--stop", metavar="ID", help="stop a job")
    p.add_argument("--logs", metavar="ID", help="print a job's logs")
    p.add_argument("ser_args", nargs=argparse.REMAINDER, help="-- then the ser command and its arguments")
    p.set_defaults(func=_cmd_submit)

    p = command("prepare", "corpus directory → manifest (utterances, labels, folds)",
                "ser prepare --corpus iemocap --root /data/IEMOCAP_full_release --out runs/iemocap/manifest.parquet")
    p.add_argument("--corpus", help=f"{' | '.join(CORPORA)} (default: prepare.corpus of the config)")
    p.add_argument("--root", help="corpus directory (for demo: where to write its audio)")
    p.add_argument("--table", help="for --corpus manifest: the CSV/JSONL/Parquet listing utterances")
    p.add_argument("--folds", help="fold protocol: iemocap-speaker, iemocap-session, msp_improv-session, "
                                   "msp_improv-speaker, or column:NAME (default: column:speaker)")
    p.add_argument("--dataset", help="for --corpus hf: a save_to_disk directory, a Parquet/Arrow folder or a hub id")
    p.add_argument("--split", help="for --corpus hf: the dataset's split")
    for role in ("audio", "label", "speaker"):
        p.add_argument(f"--{role}-column", metavar="NAME", help=f"for --corpus hf: the dataset's {role} column "
                                                                 f"(default: {role})")
    p.add_argument("--config", help="study YAML (its prepare: section)")
    p.required_group.add_argument("--out", required=True, help="manifest to write (.parquet)")
    p.set_defaults(func=_cmd_prepare)

    p = command("infer", "manifest → score table with Ray Data (speech, ASR, sentiment actors)",
                "ser infer --config configs/iemocap.yaml --manifest runs/iemocap/manifest.parquet --out runs/iemocap")
    p.add_argument("--config", help="study YAML (infer: speech/asr/sentiment stages)")
    p.add_argument("--manifest", help="manifest from `ser prepare` (default: infer.manifest of the config)")
    p.add_argument("--out", help="output directory (default: runs/infer)")
    p.set_defaults(func=_cmd_infer)

    def table_command(name: str, func, help: str, config: str, example: str) -> argparse.ArgumentParser:
        """A subcommand reading a score table: SCORES (or --scores), --config, --out."""
        p = command(name, help, example)
        p.add_argument("table", nargs="?", metavar="SCORES", help="score table (.parquet or .csv); or --scores")
        p.add_argument("--scores", help="score table (.parquet or .csv); required unless given as SCORES or as "
                                        "scores: in the config")
        p.add_argument("--config", help=f"study YAML ({config})")
        p.add_argument("--out", help=f"output directory (default: runs/{name})")
        p.set_defaults(func=func)
        return p

    table_command("evaluate", _cmd_evaluate, "evaluate fixed fusion systems per fold on a score table",
                  "labels, systems, evaluate options", "ser evaluate --scores scores.parquet --out runs/eval")
    p = table_command("tune", _cmd_tune, "search fusion configurations per fold, leakage-free (Ray Tune + Optuna)",
                      "tune: protocol, objective, trials, space, ...", "ser tune --scores scores.parquet --out runs/mine")
    p.add_argument("--engine", choices=list(ENGINES), help="override tune.engine")
    p.add_argument("--text", metavar="NAME|all", help="also tune each further text path (override tune.text)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search")
    table_command("sweep", _cmd_sweep, "threshold-sensitivity surfaces per fold and averaged",
                  "sweep: gate, tau_h, tau_v, per_class", "ser sweep --scores scores.parquet --out runs/mine/sweep")
    p = table_command("cross", _cmd_cross, "cross-dataset transfer: tune on corpus A, test on corpus B",
                      "cross.corpora: {name: table}, tune: ...",
                      "ser cross --scores both_corpora.parquet --out runs/cross")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (reuse finished fold searches)")

    p = command("report", "report.md, a self-contained report.html, figures and CSV/TeX tables of a run directory",
                "ser report --run runs/mine --format svg pdf", reads_config=False)
    p.required_group.add_argument("--run", required=True, help="run directory (results.json or evaluation.json; "
                                  "optional predictions.parquet, trials.parquet, sweep/, cross.json)")
    p.add_argument("--format", nargs="+", choices=["png", "svg", "pdf"], default=["png"],
                   help="figure formats besides the PNGs the HTML embeds (svg/pdf: vector, for papers)")
    p.set_defaults(func=_cmd_report)

    p = command("leaderboard", "several runs side by side: UA / WA / macro-F1 with CIs per corpus and system",
                "ser leaderboard --runs runs/demo runs/mine --out runs/leaderboard", reads_config=False)
    p.required_group.add_argument("--runs", required=True, nargs="+", metavar="DIR",
                                  help="run directories (ser run, tune, evaluate or cross outputs)")
    p.required_group.add_argument("--out", required=True, help="directory for leaderboard.{md,html,csv,tex}")
    p.add_argument("--systems", nargs="+", metavar="NAME",
                   help="systems to show, in order (default: speech, text, tuned and each tuned:PATH, oracle)")
    p.set_defaults(func=_cmd_leaderboard)

    p = command("import", "convert another tool's score table through a YAML column/label mapping",
                "ser import --input examples/outputs.csv --mapping examples/map.yaml --out scores.parquet")
    p.required_group.add_argument("--input", required=True, help="source table (.csv or .parquet)")
    p.required_group.add_argument("--mapping", required=True,
                                  help="YAML mapping (columns, labels, sentiment, constants)")
    p.required_group.add_argument("--out", required=True, help="validated score table to write (.parquet)")
    p.add_argument("--config", help="study YAML, for a non-default label set")
    p.add_argument("--add-to", metavar="TABLE", help="add the imported text path to this existing score table")
    p.add_argument("--path", metavar="NAME", help="with --add-to: the name of the added path (text_neg:NAME ...)")
    p.set_defaults(func=_cmd_import)

    p = command("synth", "write a synthetic score table (iemocap-like: speech strong, text weak)",
                "ser synth --profile iemocap-like --out runs/synth.parquet", reads_config=False)
    p.required_group.add_argument("--out", required=True, help="score table to write (.parquet)")
    p.add_argument("--profile", choices=list(PROFILES), default="iemocap-like",
                   help="iemocap-like: speech UA ~65, text-mapped ~46, oracle ~78, top-label sentiment; "
                        "weak-text: iemocap-like with a weaker sentiment model (text-mapped ~38); "
                        "text-strong: text carries valence better than speech, like the demo corpus; "
                        "useless-text: iemocap-like speech, a sentiment model that says 'positive' 96%% of the time")
    p.add_argument("--folds", type=int, default=10, help="speaker folds")
    p.add_argument("--per-fold", type=int, default=553, help="mean utterances per fold (sizes vary around it)")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same table)")
    p.add_argument("--corpus", default="synthetic", help="value of the corpus column")
    p.add_argument("--second-path", metavar="NAME",
                   help="add a further text path text_*:NAME (joint fusion fuses it with the primary one)")
    p.add_argument("--second-strength", type=float, default=0.7, metavar="P",
                   help="share of rows whose second-path polarity is right (1/3: useless; primary ~0.48)")
    p.add_argument("--second-correlation", type=float, default=0.0, metavar="R",
                   help="chance that a row repeats the primary path's sentiment (1: a copy)")
    p.set_defaults(func=_cmd_synth)

    p = command("config", "show a config with every default filled in, or the key reference",
                "ser config show configs/demo.yaml --set tune.trials=16")
    p.add_argument("action", choices=["show", "reference"], help="show: the resolved config; reference: every key")
    p.add_argument("config", nargs="?", help="study YAML (for show)")
    p.set_defaults(func=_cmd_config)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or args.debug_anywhere or os.environ.get("SER_DEBUG", "") not in ("", "0")
    setup_logging(args.command, args.verbose, args.quiet)

    def fail(message: str, code: int) -> int:
        if debug:
            raise
        print(f"ser {args.command}: {message}", file=sys.stderr)
        return code

    try:
        return args.func(args)
    except BrokenPipeError:                  # `ser evaluate ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        return fail(f"error: this command needs {exc.name}, which is not installed: pip install "
                    f"\"entropy-ser[{extra}]\"", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        hint = "; rerun with --resume to continue" if args.command in ("tune", "cross") else \
            "; rerun the same command to continue (finished work is kept)"
        return fail(f"interrupted{hint}", EXIT_INTERRUPTED)
    except OutputLocked as exc:
        return fail(f"error: {_one_line(exc)}", EXIT_LOCKED)
    except (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        return fail(f"error: {_one_line(exc)}", EXIT_BAD_INPUT)
    except DiskFull as exc:
        return fail(f"error: {exc.strerror}; files already written are complete and were kept", EXIT_FAILURE)
    except OSError as exc:
        what = "disk full" if exc.errno == errno.ENOSPC else exc.strerror or type(exc).__name__
        where = f" while writing {exc.filename}" if exc.filename else ""
        return fail(f"error: {what}{where}; files already written are complete and were kept", EXIT_FAILURE)
    except RuntimeError as exc:
        return fail(f"error: {_one_line(exc)}", EXIT_FAILURE)
    except Exception as exc:                 # not the input: a bug, which a traceback shows best
        return fail(f"internal error: {type(exc).__name__}: {_one_line(exc)[:300]} (rerun with --debug for the "
                    f"traceback, and please report it)", EXIT_FAILURE)
    finally:
        close_log_files()


def entry() -> None:
    """The ``ser`` console script: ``main`` with Ray's native stderr lines diverted to the log."""
    from ser._util.logs import divert_native_stderr

    divert_native_stderr()
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:               # the pipe closed after the last write: nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


if __name__ == "__main__":
    entry()
