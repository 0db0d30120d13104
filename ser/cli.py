"""The ``ser`` command line: one subcommand per stage of the data flow (DESIGN §2)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ser.io import write_json


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ser.config import load_config
    from ser.evaluate import evaluate_systems, format_table
    from ser.schema import read_scores

    cfg = load_config(args.config, {"scores": args.scores, "out": args.out})
    if not cfg["scores"]:
        raise SystemExit("ser evaluate: no score table given (--scores FILE or 'scores:' in the config)")
    t0 = time.perf_counter()
    df = read_scores(cfg["scores"], cfg["labels"])
    ev = cfg["evaluate"]
    result = evaluate_systems(df, cfg["systems"], cfg["labels"], baseline=ev["baseline"],
                              n_boot=ev["bootstrap"], seed=cfg["seed"], metric=ev["metric"])
    print(format_table(result))
    out = Path(cfg["out"] or "runs/evaluate")
    write_json(result, out / "evaluation.json")
    print(f"wrote {out / 'evaluation.json'} ({time.perf_counter() - t0:.2f} s)")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from ser.schema import validate, write_scores
    from ser.synthetic import synthetic_scores

    df = validate(synthetic_scores(args.folds, args.per_fold, args.seed, args.corpus))
    write_scores(df, args.out)
    print(f"wrote {args.out}: {len(df)} rows, {args.folds} folds")
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
    parser = argparse.ArgumentParser(prog="ser", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("evaluate", help="evaluate fixed fusion systems per fold on a score table")
    p.add_argument("--scores", help="score table (.parquet or .csv)")
    p.add_argument("--config", help="study YAML (labels, systems, evaluate options)")
    p.add_argument("--out", help="output directory (default runs/evaluate)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("import", help="convert another tool's score table through a YAML column/label mapping")
    p.add_argument("--input", required=True, help="source table (.csv or .parquet)")
    p.add_argument("--mapping", required=True, help="YAML mapping (columns, labels, sentiment, constants)")
    p.add_argument("--out", required=True, help="validated score table to write (.parquet)")
    p.add_argument("--config", help="study YAML, for a non-default label set")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("synth", help="write a synthetic score table (speech confuses valence, text carries it)")
    p.add_argument("--out", required=True)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--per-fold", type=int, default=553)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--corpus", default="synthetic")
    p.set_defaults(func=_cmd_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ser {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
