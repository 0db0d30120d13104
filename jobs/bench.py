"""Benchmarks that print ratios measured side by side in one run (``python -m jobs.bench core``).

Timings on shared machines are noisy; compare the ratios, and rerun before trusting a number.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_core(rows_per_fold: int = 553, grid: int = 200, loop_grid: int = 20) -> None:
    """``ser evaluate`` on a 10-fold table, and the 200×200 per-class grid vs a per-pair loop."""
    from ser.arrays import ScoreArrays
    from ser.config import load_config
    from ser.scoring import evaluate_systems
    from ser.fusion import NegativeMapping, SelectRule
    from ser.grid import class_surfaces
    from ser.metrics import summary
    from ser.schema import read_scores, validate, write_scores
    from ser.synthetic import synthetic_scores

    df = validate(synthetic_scores(10, rows_per_fold, seed=0, profile="text-strong"))
    cfg = load_config(None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scores.parquet"
        write_scores(df, path)
        in_proc = _best_of(lambda: evaluate_systems(read_scores(path), cfg.rules(), cfg.labels))
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


def bench_tune(rows_per_fold: int = 553) -> None:
    """Configurations/s through Ray Tune and through in-process Optuna; `ser tune` and preset wall times."""
    from jobs.ray_env import ensure_ray
    from jobs.tune import ray_engine
    from ser.config import load_config
    from ser.schema import validate, write_scores
    from ser.synthetic import synthetic_scores, with_model_folds
    from ser.tuning import make_fold_search, tune_folds

    df = validate(synthetic_scores(10, rows_per_fold, seed=0, profile="iemocap-like"))
    cfg = load_config(None)
    rates = {}
    t0 = time.perf_counter()
    ensure_ray()
    t_init = time.perf_counter() - t0
    for name, engine in (("ray", ray_engine), ("optuna", None)):
        tune_cfg = replace(cfg.tune, engine=name)
        t0 = time.perf_counter()
        searches = tune_folds(df, cfg.labels, tune_cfg, make_fold_search(tune_cfg, engine), 0)
        dt = time.perf_counter() - t0
        n = sum(r.n_configs for rs in searches.values() for r in rs)
        trials = sum(len(rs) for rs in searches.values())
        rates[name] = n / dt
        print(f"{name:>6}: {trials} trials ({trials / dt:.1f}/s), {n:,} configurations in {dt:.1f} s "
              f"= {n / dt:,.0f} configurations/s")
    print(f"  Ray Tune / plain Optuna throughput: {rates['ray'] / rates['optuna']:.2f}x "
          f"(goal through Tune >= 1,000/s); ray.init took {t_init:.1f} s")

    tv = validate(with_model_folds(synthetic_scores(10, rows_per_fold, seed=0, profile="text-strong")))
    pub = replace(cfg.tune, method="published", protocol="trainval", space={})
    t0 = time.perf_counter()
    tune_folds(tv, cfg.labels, pub, make_fold_search(pub), 0)
    print(f"published procedure on {len(tv):,} rows (10 folds, trainval): {time.perf_counter() - t0:.2f} s search")

    with tempfile.TemporaryDirectory() as tmp:
        for label, table, extra in (("ser tune (default config, Ray engine)", df, []),
                                    ("ser tune published preset", tv, ["--config", "configs/presets/published.yaml"])):
            path = Path(tmp) / "scores.parquet"
            write_scores(table, path)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ser.cli", "tune", "--scores", str(path), "--out", tmp, *extra],
                           check=True, capture_output=True)
            print(f"{label}: {time.perf_counter() - t0:.1f} s wall, whole CLI")


DEMO_SCORES = Path("runs/demo/infer/scores.parquet")


def _fusion_tables(rows_per_fold: int, seeds: range) -> dict:
    """The tables fusion quality is judged on: iemocap-like for several seeds, weak-text, text-strong, useless-text,
    and the demo's own scores (``make demo`` makes them; run here first when missing)."""
    from ser.synthetic import synthetic_scores

    if not DEMO_SCORES.exists():
        print("(running `ser run configs/demo.yaml` for the demo's score table)")
        subprocess.run([sys.executable, "-m", "ser.cli", "run", "configs/demo.yaml", "-q"], check=True)
    tables = {f"iemocap-like seed {s}": (lambda s=s: synthetic_scores(10, rows_per_fold, seed=s, profile="iemocap-like"))
              for s in seeds}
    for profile in ("weak-text", "text-strong", "useless-text"):
        tables[f"{profile} seed 0"] = lambda profile=profile: synthetic_scores(10, rows_per_fold, seed=0, profile=profile)
    tables["demo (configs/demo.yaml)"] = lambda: pd.read_parquet(DEMO_SCORES)
    return tables


def bench_fusion(rows_per_fold: int = 553, seeds: range = range(5)) -> None:
    """Fusion quality: the default search against the best simple baseline (with its bootstrap CI) on every
    table of :func:`_fusion_tables`, beside a search chosen by its tuning score without text-distribution
    options or anchors (how ``ser tune`` chose before)."""
    from ser.config import load_config
    from ser.schema import validate
    from ser.search import resolve_space
    from ser.tuning import make_fold_search, tune_folds, tuned_results

    plain = resolve_space({"variants": ["select", "loglinear", "average"], "anchors": False,
                           "soft": {"spread": ["probs"], "negative_split": ["even"], "uniform": [0.0]}})
    gaps: list[float] = []
    gains: list[float] = []
    ceiling: list[float] = []
    hopeless = shared = 0
    for table, make in _fusion_tables(rows_per_fold, seeds).items():
        cfg = load_config("configs/demo.yaml" if table.startswith("demo") else None)
        base = replace(cfg.tune, engine="optuna", text=None)
        df = validate(make())
        print(f"{table} ({df['fold'].nunique()} folds, {len(df)} rows), {base.objective} mean over folds:")
        t0 = time.perf_counter()
        default = tune_folds(df, cfg.labels, base, make_fold_search(base), cfg.seed)
        seconds = time.perf_counter() - t0
        runs = {f"default search ({base.choice})": (base, default),
                "same trials, one-se": (replace(base, choice="one-se"), default)}
        t0 = time.perf_counter()
        simple = replace(base, choice="tuning-best", space=plain)
        runs["tuning-best, no text options"] = (simple, tune_folds(df, cfg.labels, simple, make_fold_search(simple),
                                                                   cfg.seed))
        seconds_plain = time.perf_counter() - t0
        for label, (tune, searches) in runs.items():
            r = tuned_results(df, cfg.labels, searches, tune, n_boot=1000)
            m = {name: 100 * v[tune.objective] for name, v in r["mean"].items()}
            b, v = r["baselines"], r["baselines"]["versus_best"]
            print(f"  {label:<30} tuned {m['tuned']:.2f} ({m['tuned'] - m['speech']:+.2f} vs speech, "
                  f"{r['comparisons']['tuned']['folds']['improved']}/{len(r['folds'])} folds better); best baseline "
                  f"{b['best']} {m[b['best']]:.2f}; tuned - best {100 * v['diff']:+.2f} [{100 * v['ci_low']:+.2f}, "
                  f"{100 * v['ci_high']:+.2f}]: {b['verdict']}; optimism {100 * r['tuning']['mean_optimism']:+.2f}")
            hindsight = r["baselines"]["hindsight"]
            if label.startswith("default"):
                pick = r["baselines"]["per_fold_pick"]
                print(f"  {'':<30} per-fold pick among the one-weight baselines by tuning score "
                      f"{100 * pick['score']:.2f}, the same baselines fixed {100 * pick['fixed_mean']:.2f} on average "
                      f"({100 * pick['diff']:+.2f})")
                print(f"  {'':<30} hindsight ceiling (one weight fitted on every test label; not a method) "
                      f"{100 * hindsight['gain']:+.2f} vs speech, "
                      f"{len(hindsight['per_fold']) - len(hindsight['not_better'])}/{len(hindsight['per_fold'])} "
                      f"folds better")
            if label.startswith("default") and table.startswith("iemocap"):
                gaps.append(100 * v["diff"])
                gains += [100 * (f["systems"]["tuned"][tune.objective] - f["systems"]["speech"][tune.objective])
                          for f in r["folds"]]
                ceiling += [100 * g for g in hindsight["per_fold"].values()]
                shared += sum(f["systems"]["tuned"][tune.objective] <= f["systems"]["speech"][tune.objective]
                              and f["fold"] in hindsight["not_better"] for f in r["folds"])
                hopeless += sum(all(f["systems"][n][tune.objective] <= f["systems"]["speech"][tune.objective]
                                    for n in b["systems"]) for f in r["folds"])
        print(f"  search time: {seconds:.1f} s (default space), {seconds_plain:.1f} s (no text options)")
    print(f"iemocap-like over {len(gaps)} seeds: default search - best baseline {np.mean(gaps):+.2f} points on average "
          f"(per seed {', '.join(f'{g:+.2f}' for g in gaps)}); per-fold gain over speech {np.mean(gains):+.2f} ± "
          f"{np.std(gains, ddof=1):.2f} (mean ± sd of {len(gains)} folds), {sum(g <= 0 for g in gains)} folds not "
          f"better than speech; {hopeless} folds where no simple baseline beats speech either; the hindsight "
          f"ceiling {np.mean(ceiling):+.2f} ± {np.std(ceiling, ddof=1):.2f}, {sum(g <= 0 for g in ceiling)} folds not "
          f"better than speech ({shared} of them also the search's)")


class PeakMemory:
    """Samples, in a thread, the summed RSS of this process and every Ray worker (``ray::*``) from /proc."""

    def __init__(self, interval: float = 0.1):
        import threading

        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss_of(pid: str) -> int:
        try:
            with open(f"/proc/{pid}/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))
        except (OSError, StopIteration):
            return 0

    def sample(self) -> int:
        import os

        total = self._rss_of(str(os.getpid()))
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read(5) == b"ray::":
                        total += self._rss_of(pid)
            except OSError:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def bench_infer(sizes: tuple[int, int] = (40, 120)) -> None:
    """Ray Data pipeline vs a sequential loop over the same stages and files; peak memory at two sizes.

    Tiny locally built models (wav2vec2 per fold, Whisper, XLM-R) on CPU: the numbers measure the
    pipeline's overheads and parallelism, not model speed.
    """
    from jobs.infer import run_infer
    from jobs.ray_env import ensure_ray
    from ser.backends.audio_stage import load_batch
    from ser.backends.hf_speech import HFSpeechStage
    from ser.backends.sentiment import HFSentimentStage
    from ser.backends.whisper import WhisperStage
    from ser.config import load_config
    from ser.config import PrepareConfig
    from ser.corpora.prepare import prepare
    from ser.testing.tiny_models import build_sentiment, build_wav2vec2, build_whisper

    ensure_ray()
    labels = load_config(None).labels
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
            stages = load_config({"infer": {"shard_rows": 64,
                                            "speech": {"backend": "hf", "model": str(root / "speech" / "{fold}")},
                                            "asr": {"backend": "whisper", "model": str(root / "whisper")},
                                            "sentiment": {"backend": "hf", "model": str(root / "sentiment")}}}).infer
            audio_s = float(manifest["duration_s"].sum())
            with PeakMemory() as mem:
                t0 = time.perf_counter()
                run_infer(manifest, stages, labels, root / f"out{size}")
                t_ray = time.perf_counter() - t0
            t0 = time.perf_counter()
            speech = HFSpeechStage(str(root / "speech" / "{fold}"), labels.classes)
            asr, sent = WhisperStage(str(root / "whisper")), HFSentimentStage(str(root / "sentiment"))
            bs = stages.speech.scheduling.batch_size
            rows = manifest.assign(model_fold=manifest["fold"])
            for start in range(0, len(rows), bs):
                chunk = rows.iloc[start:start + bs]
                sent(asr(speech(load_batch({c: chunk[c].to_numpy() for c in chunk.columns}))))
            t_seq = time.perf_counter() - t0
            n = len(manifest)
            print(f"{n} utterances, {audio_s:.0f} s of audio: Ray Data {n / t_ray:.1f} utt/s "
                  f"({audio_s / t_ray:.1f} audio-s/s, {t_ray:.1f} s); sequential loop {n / t_seq:.1f} utt/s "
                  f"({audio_s / t_seq:.1f} audio-s/s, {t_seq:.1f} s); Ray/sequential = {t_seq / t_ray:.2f}x; "
                  f"peak RSS driver + Ray workers {mem.peak / 2**20:.0f} MiB")
            runs.append((n, audio_s, t_ray, t_seq))
        (n1, a1, r1, s1), (n2, a2, r2, s2) = runs
        print(f"marginal rate from {n1} to {n2} utterances (start-up cancels out): Ray Data {(n2 - n1) / (r2 - r1):.1f} "
              f"utt/s ({(a2 - a1) / (r2 - r1):.1f} audio-s/s), sequential {(n2 - n1) / (s2 - s1):.1f} utt/s; "
              f"Ray/sequential = {(s2 - s1) / (r2 - r1):.2f}x. (Peak RSS sums pages shared with the object store.)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench", description=__doc__)
    from jobs.bench_real import bench_infer_real, bench_tune_growth

    suites = {"core": bench_core, "fusion": bench_fusion, "tune": bench_tune, "infer": bench_infer,
              "infer-real": bench_infer_real, "tune-growth": bench_tune_growth}
    parser.add_argument("suite", choices=list(suites) + ["all"], nargs="?", default="all",
                        help="all = core, fusion, tune, infer (infer-real and tune-growth take minutes: run them by name)")
    args = parser.parse_args(argv)
    for name in ("core", "fusion", "tune", "infer") if args.suite == "all" else [args.suite]:
        print(f"== {name}")
        suites[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
