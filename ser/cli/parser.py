"""The command line's surface: every subcommand, its options, its help and an example."""

from __future__ import annotations

import argparse
import os

from ser import __version__
from ser.cli.commands import (cmd_config, cmd_cross, cmd_evaluate, cmd_import, cmd_infer, cmd_leaderboard,
                              cmd_prepare, cmd_report, cmd_run, cmd_submit, cmd_sweep, cmd_synth, cmd_tune)
from ser.data.corpora.registry import CORPORA
from ser.data.synthetic import PROFILES

DESCRIPTION = """ser: score emotion corpora, tune entropy-aware fusion per fold, report. One subcommand per stage.

Exit codes: 0 success; 1 runtime failure (disk full, a model or Ray failing); 2 bad input (config,
score table, manifest, mapping, paths, arguments); 3 the output directory is in use by another
ser run; 130 interrupted (Ctrl-C). Errors are one line on stderr; --debug or SER_DEBUG=1
shows the traceback.
"""


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
    parser = argparse.ArgumentParser(prog="ser", description=DESCRIPTION, formatter_class=_HelpFormatter)
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
    p.set_defaults(func=cmd_run)

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
    p.set_defaults(func=cmd_submit)

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
    p.set_defaults(func=cmd_prepare)

    p = command("infer", "manifest → score table with Ray Data (speech, ASR, sentiment actors)",
                "ser infer --config configs/iemocap.yaml --manifest runs/iemocap/manifest.parquet --out runs/iemocap")
    p.add_argument("--config", help="study YAML (infer: speech/asr/sentiment stages)")
    p.add_argument("--manifest", help="manifest from `ser prepare` (default: infer.manifest of the config)")
    p.add_argument("--out", help="output directory (default: runs/infer)")
    p.set_defaults(func=cmd_infer)

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

    table_command("evaluate", cmd_evaluate, "evaluate fixed fusion systems per fold on a score table",
                  "labels, systems, evaluate options", "ser evaluate --scores scores.parquet --out runs/eval")
    p = table_command("tune", cmd_tune, "search fusion configurations per fold, leakage-free (Ray Tune + Optuna)",
                      "tune: protocol, objective, trials, space, ...",
                      "ser tune --scores scores.parquet --out runs/mine")
    p.add_argument("--engine", choices=list(ENGINES), help="override tune.engine")
    p.add_argument("--text", metavar="NAME|all", help="also tune each further text path (override tune.text)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search")
    table_command("sweep", cmd_sweep, "threshold-sensitivity surfaces per fold and averaged",
                  "sweep: gate, tau_h, tau_v, per_class", "ser sweep --scores scores.parquet --out runs/mine/sweep")
    p = table_command("cross", cmd_cross, "cross-dataset transfer: tune on corpus A, test on corpus B",
                      "cross.corpora: {name: table}, tune: ...",
                      "ser cross --scores both_corpora.parquet --out runs/cross")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (reuse finished fold searches)")

    p = command("report", "report.md, a self-contained report.html, figures and CSV/TeX tables of a run directory",
                "ser report --run runs/mine --format svg pdf", reads_config=False)
    p.required_group.add_argument("--run", required=True, help="run directory (results.json or evaluation.json; "
                                  "optional predictions.parquet, trials.parquet, sweep/, cross.json)")
    p.add_argument("--format", nargs="+", choices=["png", "svg", "pdf"], default=["png"],
                   help="figure formats besides the PNGs the HTML embeds (svg/pdf: vector, for papers)")
    p.set_defaults(func=cmd_report)

    p = command("leaderboard", "several runs side by side: UA / WA / macro-F1 with CIs per corpus and system",
                "ser leaderboard --runs runs/demo runs/mine --out runs/leaderboard", reads_config=False)
    p.required_group.add_argument("--runs", required=True, nargs="+", metavar="DIR",
                                  help="run directories (ser run, tune, evaluate or cross outputs)")
    p.required_group.add_argument("--out", required=True, help="directory for leaderboard.{md,html,csv,tex}")
    p.add_argument("--systems", nargs="+", metavar="NAME",
                   help="systems to show, in order (default: speech, text, tuned and each tuned:PATH, oracle)")
    p.set_defaults(func=cmd_leaderboard)

    p = command("import", "convert another tool's score table through a YAML column/label mapping",
                "ser import --input examples/outputs.csv --mapping examples/map.yaml --out scores.parquet")
    p.required_group.add_argument("--input", required=True, help="source table (.csv or .parquet)")
    p.required_group.add_argument("--mapping", required=True,
                                  help="YAML mapping (columns, labels, sentiment, constants)")
    p.required_group.add_argument("--out", required=True, help="validated score table to write (.parquet)")
    p.add_argument("--config", help="study YAML, for a non-default label set")
    p.add_argument("--add-to", metavar="TABLE", help="add the imported text path to this existing score table")
    p.add_argument("--path", metavar="NAME", help="with --add-to: the name of the added path (text_neg:NAME ...)")
    p.set_defaults(func=cmd_import)

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
    p.set_defaults(func=cmd_synth)

    p = command("config", "show a config with every default filled in, or the key reference",
                "ser config show configs/demo.yaml --set tune.trials=16")
    p.add_argument("action", choices=["show", "reference"], help="show: the resolved config; reference: every key")
    p.add_argument("config", nargs="?", help="study YAML (for show)")
    p.set_defaults(func=cmd_config)
    return parser
