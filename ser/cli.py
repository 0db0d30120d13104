"""ser: score emotion corpora, tune entropy-aware fusion per fold, report. One subcommand per stage.

Exit codes: 0 success; 1 runtime failure (disk full, a model or Ray failing); 2 bad input (config,
score table, manifest, mapping, paths, arguments); 3 the output directory is in use by another
ser run; 130 interrupted (Ctrl-C). Errors are one line on stderr; ``--debug`` or ``SER_DEBUG=1``
shows the traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from pathlib import Path

from ser.io import InputError, OutputLocked, output_lock, write_json

EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_LOCKED, EXIT_INTERRUPTED = 1, 2, 3, 130


def _config_and_scores(args: argparse.Namespace):
    """(config, validated score table, output dir) for a subcommand that reads one score table."""
    from ser.config import load_config
    from ser.schema import read_scores, require_classes

    cfg = load_config(args.config, {"scores": args.scores, "out": args.out})
    if not cfg["scores"]:
        raise InputError("no score table given (--scores FILE or 'scores:' in the config)")
    df = read_scores(cfg["scores"], cfg["labels"])
    require_classes(df, str(cfg["scores"]))
    return cfg, df, Path(cfg["out"] or f"runs/{args.command}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ser.evaluate import evaluate_systems, evaluation_predictions, format_table
    from ser.io import write_parquet

    t0 = time.perf_counter()
    cfg, df, out = _config_and_scores(args)
    ev = cfg["evaluate"]
    with output_lock(out, "evaluate"):
        result = evaluate_systems(df, cfg["systems"], cfg["labels"], baseline=ev["baseline"],
                                  n_boot=ev["bootstrap"], seed=cfg["seed"], metric=ev["metric"],
                                  min_fold_rows=ev["min_fold_rows"])
        print(format_table(result))
        _warn(args, result)
        write_parquet(evaluation_predictions(df, cfg["systems"], cfg["labels"]), out / "predictions.parquet")
        write_json(result, out / "evaluation.json")
    print(f"wrote {out / 'evaluation.json'} and predictions.parquet ({time.perf_counter() - t0:.2f} s)")
    return 0


def _warn(args: argparse.Namespace, result: dict) -> None:
    """Weak but valid input (recorded in the result's ``warnings``) as one stderr line each."""
    for warning in result.get("warnings", []):
        print(f"ser {args.command}: warning: {warning}", file=sys.stderr)


def _cmd_tune(args: argparse.Namespace) -> int:
    from jobs.tune import engine_for
    from ser.config import resolved
    from ser.evaluate import format_table
    from ser.provenance import provenance
    from ser.tuning import format_baselines, make_fold_search, result_predictions, tune_folds, tuned_results, \
        write_tuning

    t0 = time.perf_counter()
    cfg, df, out = _config_and_scores(args)
    tune = dict(cfg["tune"], **({"engine": args.engine} if args.engine else {}))
    with output_lock(out, "tune"):
        engine = engine_for(tune, str(out / "tune_experiment"), args.resume)
        searches = tune_folds(df, cfg["labels"], tune, make_fold_search(tune, engine), cfg["seed"],
                              state_dir=out / "folds", reuse=args.resume)
        t_search = time.perf_counter() - t0
        result = tuned_results(df, cfg["labels"], searches, tune, n_boot=cfg["evaluate"]["bootstrap"],
                               seed=cfg["seed"], min_fold_rows=cfg["evaluate"]["min_fold_rows"])
        print(format_table(result))
        print(format_baselines(result))
        _warn(args, result)
        write_tuning(out, result, searches, result_predictions(df, cfg["labels"], result))
        write_json({"command": "tune", "config_file": args.config, "config": resolved(cfg) | {"tune": tune},
                    "seed": cfg["seed"], "timings_s": {"search": t_search, "total": time.perf_counter() - t0},
                    "warnings": result["warnings"], **provenance()}, out / "run.json")
    print(f"wrote {out}/results.json, trials.parquet, predictions.parquet, run.json "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ser.sweep import sweep, write_sweep

    t0 = time.perf_counter()
    cfg, df, out = _config_and_scores(args)
    with output_lock(out, "sweep"):
        surfaces, chosen, stats = sweep(df, cfg["sweep"], cfg["tune"]["protocol"], cfg["tune"]["objective"],
                                        labels=cfg["labels"])
        write_sweep(out, surfaces, chosen, stats)
    print(f"chosen τ_H {stats['chosen_tau_h']['mean']:.3f} ± {stats['chosen_tau_h']['std']:.3f}, "
          f"τ_V {stats['chosen_tau_v']['mean']:.3f} ± {stats['chosen_tau_v']['std']:.3f} across folds; "
          f"gap to oracle {100 * stats['gap_to_oracle']:.2f} points")
    print(f"wrote {out}/sweep.parquet ({len(surfaces):,} rows), sweep_chosen.parquet, sweep.json "
          f"({time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_cross(args: argparse.Namespace) -> int:
    from ser.config import load_config
    from ser.schema import read_scores
    from ser.transfer import cross_dataset, format_matrix, split_corpora
    from ser.tuning import make_fold_search

    cfg = load_config(args.config, {"scores": args.scores, "out": args.out})
    corpora = cfg["cross"]["corpora"]
    if corpora:
        if not isinstance(corpora, dict) or len(corpora) < 2:
            raise InputError("cross.corpora must map at least two corpus names to score tables")
        tables = {name: read_scores(path, cfg["labels"]) for name, path in corpora.items()}
    elif cfg["scores"]:
        tables = split_corpora(read_scores(cfg["scores"], cfg["labels"]))
    else:
        raise InputError("give cross.corpora in the config, or --scores with a 'corpus' column")
    from jobs.tune import engine_for

    t0 = time.perf_counter()
    tune = cfg["tune"]
    out = Path(cfg["out"] or "runs/cross")
    with output_lock(out, "cross"):
        result = cross_dataset(tables, cfg["labels"], tune, make_fold_search(tune, engine_for(tune)), cfg["seed"],
                               cfg["evaluate"]["bootstrap"])
        print(format_matrix(result))
        write_json(result, out / "cross.json")
    print(f"wrote {out}/cross.json ({time.perf_counter() - t0:.1f} s)")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from ser.config import load_config
    from ser.corpora.prepare import prepare
    from ser.io import write_parquet

    cfg = load_config(args.config)
    spec = {**cfg["prepare"], **{k: v for k, v in (("corpus", args.corpus), ("root", args.root),
                                                   ("table", args.table), ("folds", args.folds)) if v}}
    if not spec["corpus"]:
        raise InputError("--corpus (or prepare.corpus in the config) is required")
    df = prepare(spec, labels=cfg["labels"])
    write_parquet(df, args.out)
    print(f"wrote {args.out}")
    return 0


def _cmd_infer(args: argparse.Namespace) -> int:
    from jobs.infer import run_infer
    from ser.config import load_config
    from ser.corpora import read_manifest

    cfg = load_config(args.config, {"out": args.out})
    manifest_path = args.manifest or cfg["infer"]["manifest"]
    if not manifest_path:
        raise InputError("--manifest (or infer.manifest in the config) is required")
    manifest = read_manifest(manifest_path, cfg["labels"])
    out = Path(cfg["out"] or "runs/infer")
    t0 = time.perf_counter()
    with output_lock(out, "infer"):
        scores, errors = run_infer(manifest, cfg["infer"], cfg["labels"], out)
    print(f"wrote {out}/scores.parquet ({len(scores)} rows) and errors.parquet ({len(errors)} rows) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ser.report import write_report

    formats = tuple(args.format)
    with output_lock(args.run, "report"):
        md, page = write_report(args.run, formats)
    print(f"wrote {md}, {page}, {Path(args.run) / 'figures'}/*.{{{','.join(dict.fromkeys(('png',) + formats))}}} "
          f"and {Path(args.run) / 'tables'}/*.{{csv,tex}}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from jobs.run import run_study
    from ser.config import load_config

    cfg = load_config(args.config, {"out": args.out})
    out = Path(cfg["out"] or f"runs/{cfg['name']}")
    t0 = time.perf_counter()
    with output_lock(out, "run"):
        run_study(cfg, out, force=args.force)
    print(f"ser run finished in {time.perf_counter() - t0:.1f} s: {out}/report.html")
    return 0


def _cmd_submit(args: argparse.Namespace) -> int:
    from jobs import submit

    if args.status:
        return submit.status(args.address, args.status)
    if args.stop:
        return submit.stop(args.address, args.stop)
    if args.logs:
        return submit.logs(args.address, args.logs)
    ser_args = args.ser_args[1:] if args.ser_args[:1] == ["--"] else args.ser_args
    return submit.submit(args.address, ser_args, args.working_dir, args.runtime_env, args.wait)


def _cmd_synth(args: argparse.Namespace) -> int:
    from ser.schema import validate, write_scores
    from ser.synthetic import synthetic_scores

    df = validate(synthetic_scores(args.folds, args.per_fold, args.seed, args.corpus, profile=args.profile))
    write_scores(df, args.out)
    print(f"wrote {args.out}: {len(df)} rows, {args.folds} folds ({args.profile} profile)")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from ser.config import load_config
    from ser.importers import apply_mapping, load_mapping
    from ser.schema import read_table, write_scores

    labels = load_config(args.config)["labels"]
    df = apply_mapping(read_table(args.input), load_mapping(args.mapping), labels, source=args.input)
    write_scores(df, args.out)
    print(f"wrote {args.out}: {len(df)} rows, {df['fold'].nunique()} folds")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show tracebacks (also SER_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="all stages: prepare → infer → tune → sweep → [cross] → report")
    p.add_argument("config", help="study YAML (e.g. configs/demo.yaml)")
    p.add_argument("--out", help="run directory (default runs/<name>)")
    p.add_argument("--force", action="store_true", help="rerun stages that are up to date")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("submit", help="run a ser command as a Ray job on a cluster: ser submit --address URL -- run X.yaml")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS", "http://127.0.0.1:8265"),
                   help="Ray job server (dashboard) URL (default $RAY_ADDRESS or http://127.0.0.1:8265)")
    p.add_argument("--wait", action="store_true", help="stream logs; exit non-zero if the job fails")
    p.add_argument("--runtime-env", help="YAML merged into the runtime env (pip, env_vars, excludes, ...)")
    p.add_argument("--working-dir", default=".", help="directory uploaded as the job's working dir (default .)")
    p.add_argument("--status", metavar="ID", help="print a job's status")
    p.add_argument("--stop", metavar="ID", help="stop a job")
    p.add_argument("--logs", metavar="ID", help="print a job's logs")
    p.add_argument("ser_args", nargs=argparse.REMAINDER, help="-- then the ser command and its arguments")
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("prepare", help="corpus directory → manifest (utterances, labels, folds)")
    p.add_argument("--corpus", help="demo | demo-a | demo-b | iemocap | msp_improv | manifest")
    p.add_argument("--root", help="corpus directory (for demo: where to write its audio)")
    p.add_argument("--table", help="for --corpus manifest: the CSV/JSONL/Parquet listing utterances")
    p.add_argument("--folds", help="fold protocol: iemocap-speaker, iemocap-session, msp_improv-session, "
                                   "msp_improv-speaker, or column:NAME (default column:speaker)")
    p.add_argument("--config", help="study YAML (prepare: ... section)")
    p.add_argument("--out", required=True, help="manifest to write (.parquet)")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("infer", help="manifest → score table with Ray Data (speech, ASR, sentiment actors)")
    p.add_argument("--config", help="study YAML (infer: speech/asr/sentiment stages)")
    p.add_argument("--manifest", help="manifest from `ser prepare` (default infer.manifest)")
    p.add_argument("--out", help="output directory (default runs/infer)")
    p.set_defaults(func=_cmd_infer)

    def table_command(name: str, func, help: str, scores: str, config: str) -> argparse.ArgumentParser:
        """A subcommand reading a score table: --scores, --config, --out."""
        p = sub.add_parser(name, help=help)
        p.add_argument("--scores", help=scores)
        p.add_argument("--config", help=f"study YAML ({config})")
        p.add_argument("--out", help=f"output directory (default runs/{name})")
        p.set_defaults(func=func)
        return p

    table = "score table (.parquet or .csv)"
    table_command("evaluate", _cmd_evaluate, "evaluate fixed fusion systems per fold on a score table", table,
                  "labels, systems, evaluate options")
    p = table_command("tune", _cmd_tune, "search fusion configurations per fold, leakage-free (Ray Tune + Optuna)",
                      table, "tune: protocol, objective, trials, space, ...")
    p.add_argument("--engine", choices=["ray", "optuna"], help="override tune.engine")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search")
    table_command("sweep", _cmd_sweep, "threshold-sensitivity surfaces per fold and averaged", table,
                  "sweep: gate, tau_h, tau_v, per_class")
    table_command("cross", _cmd_cross, "cross-dataset transfer: tune on corpus A, test on corpus B",
                  "one score table with several values in its 'corpus' column", "cross.corpora: {name: table}, tune: ...")

    p = sub.add_parser("report", help="report.md + self-contained report.html, figures and CSV/LaTeX tables")
    p.add_argument("--run", required=True, help="run directory (results.json or evaluation.json; optional "
                                                "predictions.parquet, trials.parquet, sweep/, cross.json)")
    p.add_argument("--format", nargs="+", choices=["png", "svg", "pdf"], default=["png"],
                   help="figure formats besides the PNGs the HTML embeds (svg/pdf: vector, for papers)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("import", help="convert another tool's score table through a YAML column/label mapping")
    p.add_argument("--input", required=True, help="source table (.csv or .parquet)")
    p.add_argument("--mapping", required=True, help="YAML mapping (columns, labels, sentiment, constants)")
    p.add_argument("--out", required=True, help="validated score table to write (.parquet)")
    p.add_argument("--config", help="study YAML, for a non-default label set")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("synth", help="write a synthetic score table (iemocap-like: speech strong, text weak)")
    p.add_argument("--out", required=True)
    p.add_argument("--profile", choices=["iemocap-like", "text-strong"], default="iemocap-like",
                   help="iemocap-like: speech UA ~65, text-mapped ~46, oracle ~78, top-label sentiment (default); "
                        "text-strong: text carries valence better than speech, like the demo corpus")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--per-fold", type=int, default=553)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus", default="synthetic")
    p.set_defaults(func=_cmd_synth)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("SER_DEBUG", "") not in ("", "0")

    def fail(message: str, code: int) -> int:
        if debug:
            raise
        print(f"ser {args.command}: {message}", file=sys.stderr)
        return code

    try:
        return args.func(args)
    except KeyboardInterrupt:
        hint = "; rerun with --resume to continue" if args.command == "tune" else \
            "; rerun the same command to continue (finished work is kept)"
        return fail(f"interrupted{hint}", EXIT_INTERRUPTED)
    except OutputLocked as exc:
        return fail(f"error: {_one_line(exc)}", EXIT_LOCKED)
    except (InputError, ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        return fail(f"error: {_one_line(exc)}", EXIT_BAD_INPUT)
    except OSError as exc:
        what = "disk full" if exc.errno == errno.ENOSPC else exc.strerror or type(exc).__name__
        where = f" while writing {exc.filename}" if exc.filename else ""
        return fail(f"error: {what}{where}; files already written are complete and were kept", EXIT_FAILURE)
    except RuntimeError as exc:
        return fail(f"error: {_one_line(exc)}", EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
