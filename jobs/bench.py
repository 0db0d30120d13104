"""Benchmarks that print ratios measured side by side in one run (``python -m jobs.bench core``).

Timings on shared machines are noisy; compare the ratios, and rerun before trusting a number.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ser.evaluation.result_types import BaselineVerdict, TunedSystems


def _best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_core(rows_per_fold: int = 553, grid: int = 200, loop_grid: int = 20) -> None:
    """``ser evaluate`` on a 10-fold table, and the 200×200 per-class grid vs a per-pair loop."""
    from ser.data.arrays import ScoreArrays
    from ser.config import load_config
    from ser.evaluation.scoring import evaluate_systems
    from ser.fusion.rules import SelectRule
    from ser.fusion.text import NegativeMapping
    from ser.fusion.grid import class_surfaces
    from ser.measures.metrics import metric_from_counts, scores_from_counts, summary
    from ser.data.schema import read_scores, validate, write_scores
    from ser.data.synthetic import synthetic_scores

    df = validate(synthetic_scores(10, rows_per_fold, seed=0, profile="text-strong"))
    cfg = load_config(None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scores.parquet"
        write_scores(df, path)
        in_proc = _best_of(lambda: evaluate_systems(read_scores(path), cfg.rules(), cfg.label_set))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ser.cli", "evaluate", "--scores", str(path), "--out", tmp],
                       check=True, capture_output=True)
        cli = time.perf_counter() - t0
    print(f"ser evaluate, {len(df)} rows, 10 folds, 3 systems, 1000 bootstrap resamples:")
    print(f"  in-process {in_proc:.3f} s; whole CLI incl. interpreter start and imports {cli:.2f} s (goal < 2 s)")

    a = ScoreArrays.from_table(validate(synthetic_scores(10, 500, seed=1, profile="text-strong")))
    th, tv = np.linspace(0.3, 1.38, grid), np.linspace(0.0, 1.0, grid)
    t_grid = _best_of(lambda: class_surfaces(a, th, tv))
    neg = NegativeMapping.from_config("refer", a.labels)
    sub_h, sub_v = th[:: grid // loop_grid], tv[:: grid // loop_grid]

    def per_pair_loop() -> None:
        for c in range(a.labels.k):
            for x in sub_h:
                for z in sub_v:
                    tau_h, tau_v = np.full(4, np.inf), np.full(4, -np.inf)
                    tau_h[c], tau_v[c] = x, z
                    summary(a.y, SelectRule("hv", tau_h, tau_v, neg).decide(a).pred, 4)

    t_loop = _best_of(per_pair_loop, repeat=1)
    pairs_grid, pairs_loop = 4 * grid * grid, 4 * len(sub_h) * len(sub_v)
    per_pair_grid, per_pair_loop_s = t_grid / pairs_grid, t_loop / pairs_loop
    print(f"threshold grid, {len(a)} rows, {grid}x{grid} pairs for each of 4 classes ({pairs_grid} configs):")
    print(f"  sort + cumulative counts: {t_grid * 1e3:.1f} ms (goal < 500 ms) = {per_pair_grid * 1e9:.0f} ns/config")
    print(f"  numpy rule per pair ({pairs_loop} configs): {t_loop:.2f} s = {per_pair_loop_s * 1e6:.0f} us/config; "
          f"full grid would take ~{per_pair_loop_s * pairs_grid:.0f} s")
    print(f"  speed-up of the grid engine over the per-pair loop: {per_pair_loop_s / per_pair_grid:.0f}x")

    rng = np.random.default_rng(0)                 # a soft trial's per-group counts: 10 groups x 51 weights x 57 gates
    support = np.broadcast_to(rng.integers(80, 200, (10, 1, 1, 4)), (10, 51, 57, 4))
    tp, n_pred = rng.integers(0, 80, support.shape), rng.integers(0, 200, support.shape)
    t_all = _best_of(lambda: scores_from_counts(tp, n_pred, support)["macro_f1"])
    t_one = _best_of(lambda: metric_from_counts(tp, n_pred, support, "macro_f1"))
    print(f"the objective from per-group counts ({tp.size // 4:,} class-count vectors): one metric {t_one * 1e3:.1f} ms, "
          f"all four then one {t_all * 1e3:.1f} ms ({t_all / t_one:.1f}x)")


def bench_tune(rows_per_fold: int = 553, sizes: tuple[int, ...] = (553, 5_530)) -> None:
    """Trials/s through Ray Tune (a Tune trial per fold), in-process Optuna and a plain Ray task per fold on the same
    trials (10 folds × 48 trials at 5.5k and 55k rows); `ser tune` and preset wall times."""
    from .ray_env import ensure_ray
    from .tune import ray_engine, task_engine
    from ser.config import load_config
    from ser.data.schema import validate, write_scores
    from ser.data.synthetic import synthetic_scores, with_model_folds
    from ser.tuning.per_fold import make_fold_search, optuna_engine, tune_folds

    cfg = load_config(None)
    t0 = time.perf_counter()
    ensure_ray()
    print(f"ray.init took {time.perf_counter() - t0:.1f} s (not counted below)")
    for per_fold in sizes:
        df = validate(synthetic_scores(10, per_fold, seed=0, profile="iemocap-like"))
        rates, searches = {}, {}
        for name, engine in (("ray", ray_engine), ("optuna", optuna_engine), ("tasks", task_engine)):
            tune_cfg = replace(cfg.tune, engine="optuna" if name == "tasks" else name)
            t0 = time.perf_counter()
            searches[name] = tune_folds(df, cfg.label_set, tune_cfg, make_fold_search(tune_cfg, engine), 0)
            dt = time.perf_counter() - t0
            n = sum(r.n_configs for rs in searches[name].values() for r in rs)
            trials = sum(len(rs) for rs in searches[name].values())
            rates[name] = trials / dt
            print(f"{len(df):>7,} rows {name:>6}: {trials} trials ({trials / dt:.1f}/s), {n:,} configurations in "
                  f"{dt:.1f} s = {n / dt:,.0f} configurations/s")
        same = "the same trials" if searches["ray"] == searches["optuna"] == searches["tasks"] else "DIFFERENT trials"
        print(f"{len(df):>7,} rows: throughput against in-process: Ray Tune {rates['ray'] / rates['optuna']:.2f}x, "
              f"a Ray task per fold {rates['tasks'] / rates['optuna']:.2f}x ({same} on all three)")
    df = validate(synthetic_scores(10, rows_per_fold, seed=0, profile="iemocap-like"))

    tv = validate(with_model_folds(synthetic_scores(10, rows_per_fold, seed=0, profile="text-strong")))
    pub = replace(cfg.tune, method="published", protocol="trainval", space={})
    t0 = time.perf_counter()
    tune_folds(tv, cfg.label_set, pub, make_fold_search(pub), 0)
    print(f"published procedure on {len(tv):,} rows (10 folds, trainval): {time.perf_counter() - t0:.2f} s search")

    with tempfile.TemporaryDirectory() as tmp:
        for label, table, extra in (("ser tune (default config, --engine ray)", df, ["--engine", "ray"]),
                                    ("ser tune published preset", tv, ["--config", "configs/presets/published.yaml"])):
            path = Path(tmp) / "scores.parquet"
            write_scores(table, path)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ser.cli", "tune", "--scores", str(path), "--out", tmp, *extra],
                           check=True, capture_output=True)
            print(f"{label}: {time.perf_counter() - t0:.1f} s wall, whole CLI")


DEMO_SCORES = Path("runs/demo/infer/scores.parquet")


SECOND_PATHS = {"two-path, strong and independent": ("llm", 0.6, 0.0),
                "two-path, repeating the first": ("ref", 0.48, 0.8),
                "two-path, useless second": ("bad", 1 / 3, 0.0)}
"""The second text paths of the two-path tables: (name, strength, correlation) for ``ser synth``'s ``SecondPath``."""


def _fusion_tables(rows_per_fold: int, seeds: range) -> dict:
    """The tables fusion quality is judged on: iemocap-like, weak-text and useless-text for every seed, text-strong,
    iemocap-like with a second text path (strong and independent, repeating the first, useless), and the demo's
    own scores (``make demo`` makes them; run here first when missing)."""
    from ser.data.synthetic import SecondPath, synthetic_scores

    if not DEMO_SCORES.exists():
        print("(running `ser run configs/demo.yaml` for the demo's score table)")
        subprocess.run([sys.executable, "-m", "ser.cli", "run", "configs/demo.yaml", "-q"], check=True)
    tables = {}
    for profile in ("iemocap-like", "weak-text", "useless-text"):
        tables.update({f"{profile} seed {s}": (lambda s=s, p=profile: synthetic_scores(10, rows_per_fold, seed=s,
                                                                                        profile=p)) for s in seeds})
    tables["text-strong seed 0"] = lambda: synthetic_scores(10, rows_per_fold, seed=0, profile="text-strong")
    for label, spec in SECOND_PATHS.items():
        tables.update({f"{label} seed {s}": (lambda s=s, spec=spec: synthetic_scores(
            10, rows_per_fold, seed=s, second=SecondPath(*spec))) for s in seeds})
    tables["demo (configs/demo.yaml)"] = lambda: pd.read_parquet(DEMO_SCORES)
    return tables


def _fusion_line(r: TunedSystems, objective: str) -> tuple[str, list[float]]:
    """One search's result in one line (gain over speech, folds better, worst fold, against the best baseline and,
    with joint baselines, against the best one-path one), and its per-fold gains."""
    gains = [100 * (f.systems["tuned"][objective] - f.systems["speech"][objective]) for f in r.folds]
    b = r.baselines

    def versus(part: BaselineVerdict) -> str:
        v = part.versus_best
        return f"{part.best} {100 * v.diff:+.2f} [{100 * v.ci_low:+.2f}, {100 * v.ci_high:+.2f}] {part.verdict}"
    line = (f"tuned - speech {np.mean(gains):+.2f}, {sum(g > 0 for g in gains)}/{len(gains)} folds better, worst "
            f"{min(gains):+.2f}; vs best baseline {versus(b.verdict)}")
    if b.one_path is not None:
        line += f"; vs best one-path {versus(b.one_path)}"
    kept = [f.best.config["kind"] for f in r.folds]
    return line + (f"; kept speech alone in {kept.count('speech')}, joint in {kept.count('joint')}, logistic in "
                   f"{kept.count('logistic')}"), gains


def bench_fusion(rows_per_fold: int = 553, seeds: range = range(5)) -> None:
    """Fusion quality: the default search against speech and the best simple baseline (with its bootstrap CI) on
    every table of :func:`_fusion_tables`, fitted and ranked on the fold-mean (default) and on the pooled tuning
    objective side by side, so the effect of ``tune.aggregate`` is measured on the same tables in one run."""
    from ser.config import load_config
    from ser.data.schema import validate
    from ser.tuning.per_fold import make_fold_search, tune_folds, tuned_results

    summary: dict[tuple[str, str], list[float]] = {}
    worst: dict[tuple[str, str], float] = {}
    for table, make in _fusion_tables(rows_per_fold, seeds).items():
        cfg = load_config("configs/demo.yaml" if table.startswith("demo") else None)
        df = validate(make())
        print(f"{table} ({df['fold'].nunique()} folds, {len(df)} rows), {cfg.tune.objective} mean over folds:")
        for aggregate in ("fold-mean", "pooled"):
            tune = replace(cfg.tune, engine="optuna", text=None, aggregate=aggregate)
            t0 = time.perf_counter()
            searches = tune_folds(df, cfg.label_set, tune, make_fold_search(tune), cfg.seed)
            seconds = time.perf_counter() - t0
            r = tuned_results(df, cfg.label_set, searches, tune, cfg.evaluate, 0)
            line, gains = _fusion_line(r, tune.objective)
            print(f"  {aggregate:<9} {line} ({seconds:.0f} s)")
            key = (table.rsplit(" seed ", 1)[0], aggregate)
            summary.setdefault(key, []).append(float(np.mean(gains)))
            worst[key] = min(worst.get(key, np.inf), min(gains))
            if aggregate == "fold-mean" and table.startswith("iemocap"):
                pick, hindsight = r.baselines.per_fold_pick, r.baselines.hindsight
                print(f"  {'':<9} per-fold pick among the one-weight baselines {100 * pick.diff:+.2f} against them "
                      f"fixed; hindsight ceiling {100 * hindsight.gain:+.2f} vs speech, "
                      f"{len(hindsight.per_fold) - len(hindsight.not_better)}/{len(hindsight.per_fold)} folds")
    print("tuned - speech, mean over seeds (worst fold of any seed):")
    for (profile, aggregate), values in summary.items():
        print(f"  {profile:<36} {aggregate:<9} {np.mean(values):+.2f} over {len(values)} table(s) "
              f"(worst fold {worst[(profile, aggregate)]:+.2f})")


def bench_calibration(seeds: range = range(10)) -> None:
    """``ser synth --profile iemocap-like`` against the released IEMOCAP outputs' summary figures (mean over seeds):
    the table of docs/design.md §9."""
    from ser.data.schema import validate
    from ser.data.synthetic import synthetic_scores
    from ser.evaluation.table_stats import IEMOCAP_TARGETS, named_figures, table_stats

    figures = [named_figures(table_stats(validate(synthetic_scores(seed=s)))) for s in seeds]
    print(f"| figure | released IEMOCAP | iemocap-like, mean of seeds {seeds.start}-{seeds.stop - 1} |")
    print("|---|---|---|")
    for name, target in IEMOCAP_TARGETS.items():
        print(f"| {name} | {target:.3f} | {np.mean([f[name] for f in figures]):.3f} |")


def _stage_loop(root: Path, manifest: pd.DataFrame, classes: tuple[str, ...], batch_size: int,
                threads: int | None) -> float:
    """Seconds for the bench's stages (loading included), batch by batch in this process: ``threads`` per model
    (None: the libraries' defaults, torch on every core and CTranslate2 on its own count)."""
    from .measure import stage_loop
    from ser.inference.backends.hf_speech import HFSpeechStage
    from ser.inference.backends.sentiment import HFSentimentStage
    from ser.inference.backends.whisper import WhisperStage

    import torch

    default_threads = torch.get_num_threads()
    t0 = time.perf_counter()
    stages = {"speech": HFSpeechStage(str(root / "speech" / "{fold}"), classes, cpu_threads=threads),
              "asr": WhisperStage(str(root / "whisper"), cpu_threads=threads),
              "sentiment": HFSentimentStage(str(root / "sentiment"))}
    stage_loop(manifest.assign(model_fold=manifest["fold"]), stages, batch_size)
    seconds = time.perf_counter() - t0
    torch.set_num_threads(default_threads)
    return seconds


def bench_infer(sizes: tuple[int, int] = (40, 120)) -> None:
    """Ray Data pipeline (stages chained, an actor per core; and a pool per stage) vs a sequential loop over the same
    stages and files, on the libraries' default threads and on one; peak memory at two sizes.

    Tiny locally built models (wav2vec2 per fold, Whisper, XLM-R) on CPU: the numbers measure the
    pipeline's overheads and parallelism, not model speed.
    """
    from .infer import run_infer
    from .measure import PeakMemory
    from .ray_env import ensure_ray
    from ser.config import load_config
    from ser.config import PrepareConfig
    from ser.inference.prepare import prepare
    from ser.testing.tiny_models import build_sentiment, build_wav2vec2, build_whisper

    ensure_ray()
    labels = load_config(None).label_set
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_whisper(root / "whisper")
        build_sentiment(root / "sentiment")
        for size in sizes:
            manifest = prepare(PrepareConfig(corpus="demo", root=str(root / f"demo{size}"), per_speaker=size))
            for fold in manifest["fold"].unique():
                if not (root / "speech" / fold).exists():
                    build_wav2vec2(root / "speech" / fold, list(labels.classes))
            audio_s = float(manifest["duration_s"].sum())
            seconds, peak = {}, 0.0
            for chain in ("auto", "never"):
                stages = load_config({"infer": {
                    "shard_rows": 64, "chain_stages": chain,
                    "speech": {"backend": "hf", "model": str(root / "speech" / "{fold}")},
                    "asr": {"backend": "whisper", "model": str(root / "whisper")},
                    "sentiment": {"backend": "hf", "model": str(root / "sentiment")}}}).infer
                if size == sizes[0]:       # untimed: the process' first pipeline also starts Ray Data's own actors
                    run_infer(manifest.head(16), stages, labels, root / f"warm-up-{chain}")
                with PeakMemory() as mem:
                    t0 = time.perf_counter()
                    run_infer(manifest, stages, labels, root / f"out{size}-{chain}")
                    seconds[chain] = time.perf_counter() - t0
                peak = max(peak, mem.peak)
            bs = stages.speech.scheduling.batch_size
            t_default, t_one = (_stage_loop(root, manifest, labels.classes, bs, threads) for threads in (None, 1))
            t_seq = min(t_default, t_one)
            t_ray, t_stages = seconds["auto"], seconds["never"]
            n = len(manifest)
            print(f"{n} utterances, {audio_s:.0f} s of audio: Ray Data {n / t_ray:.1f} utt/s "
                  f"({audio_s / t_ray:.1f} audio-s/s, {t_ray:.1f} s; stages chained, an actor per core, the default "
                  f"here), with an actor pool per stage {n / t_stages:.1f} utt/s ({t_stages:.1f} s); sequential loop "
                  f"{n / t_default:.1f} utt/s ({t_default:.1f} s) on the libraries' default threads, "
                  f"{n / t_one:.1f} utt/s ({t_one:.1f} s) on one thread; Ray/faster loop = {t_seq / t_ray:.2f}x "
                  f"(per-stage pools {t_seq / t_stages:.2f}x); peak RSS driver + Ray workers {peak / 2**20:.0f} MiB")
            runs.append((n, audio_s, t_ray, t_seq, t_stages))
        (n1, a1, r1, s1, p1), (n2, a2, r2, s2, p2) = runs
        print(f"marginal rate from {n1} to {n2} utterances (start-up cancels out): Ray Data {(n2 - n1) / (r2 - r1):.1f} "
              f"utt/s ({(a2 - a1) / (r2 - r1):.1f} audio-s/s; per-stage pools {(n2 - n1) / (p2 - p1):.1f}), "
              f"faster loop {(n2 - n1) / (s2 - s1):.1f} utt/s; Ray/loop = {(s2 - s1) / (r2 - r1):.2f}x "
              f"(per-stage pools {(s2 - s1) / (p2 - p1):.2f}x). (Peak RSS sums pages shared with the object store.)")


def _peak_rss(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak resident MiB) of one command run as a child process (its own rusage, from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def bench_memory(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> None:
    """Peak RSS of ``ser evaluate`` and ``ser tune`` (in-process engine, default search) against rows: memory is
    bounded by chunking, so it grows linearly with the table, not with rows × bootstrap resamples."""
    ser = [sys.executable, "-m", "ser.cli"]
    print(f"{'rows':>9}  {'evaluate s':>10} {'peak MiB':>9}  {'tune s':>8} {'peak MiB':>9}")
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            table = f"{tmp}/s{rows}.parquet"
            subprocess.run(ser + ["synth", "--out", table, "--folds", "10", "--per-fold", str(rows // 10), "-q"],
                           check=True)
            ev = _peak_rss(ser + ["evaluate", "--scores", table, "--out", f"{tmp}/e{rows}", "-q"])
            tu = _peak_rss(ser + ["tune", "--scores", table, "--out", f"{tmp}/t{rows}", "--engine", "optuna", "-q"])
            peaks.append((rows, ev[1], tu[1]))
            print(f"{rows:>9,}  {ev[0]:>10.1f} {ev[1]:>9,.0f}  {tu[0]:>8.1f} {tu[1]:>9,.0f}", flush=True)
    (r0, e0, t0), (r1, e1, t1) = peaks[0], peaks[-1]
    print(f"growth from {r0:,} to {r1:,} rows: evaluate {(e1 - e0) / (r1 - r0) * 1e3:.2f} MiB per 1k rows, tune "
          f"{(t1 - t0) / (r1 - r0) * 1e3:.2f} MiB per 1k rows (the 1M-row table itself is ~"
          f"{r1 * 8 * 14 / 2**20:,.0f} MiB as float64 columns)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench", description=__doc__)
    from .bench_gpu import bench_gpu
    from .bench_real import bench_infer_real, bench_tune_growth

    suites = {"core": bench_core, "fusion": bench_fusion, "calibration": bench_calibration, "tune": bench_tune,
              "infer": bench_infer, "infer-real": bench_infer_real, "tune-growth": bench_tune_growth, "memory": bench_memory,
              "gpu": bench_gpu}
    parser.add_argument("suite", choices=list(suites) + ["all"], nargs="?", default="all",
                        help="all = core, fusion, tune, infer (calibration, infer-real, tune-growth, memory and gpu: "
                             "run them by name)")
    parser.add_argument("--tiny", action="store_true", help="gpu: tiny models on the CPU (checks the script)")
    args = parser.parse_args(argv)
    for name in ("core", "fusion", "tune", "infer") if args.suite == "all" else [args.suite]:
        print(f"== {name}")
        suites[name](tiny=args.tiny) if name == "gpu" else suites[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
