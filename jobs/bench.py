"""Benchmarks that print ratios measured side by side in one run (``python -m jobs.bench core``).

Timings on shared machines are noisy; compare the ratios, and rerun before trusting a number.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


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
    from ser.evaluate import evaluate_systems
    from ser.fusion import NegativeMapping, SelectRule
    from ser.grid import class_surfaces
    from ser.metrics import summary
    from ser.schema import read_scores, validate, write_scores
    from ser.synthetic import synthetic_scores

    df = validate(synthetic_scores(10, rows_per_fold, seed=0))
    cfg = load_config(None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scores.parquet"
        write_scores(df, path)
        in_proc = _best_of(lambda: evaluate_systems(read_scores(path), cfg["systems"], cfg["labels"]))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ser.cli", "evaluate", "--scores", str(path), "--out", tmp],
                       check=True, capture_output=True)
        cli = time.perf_counter() - t0
    print(f"ser evaluate, {len(df)} rows, 10 folds, 3 systems, 1000 bootstrap resamples:")
    print(f"  in-process {in_proc:.3f} s; whole CLI incl. interpreter start and imports {cli:.2f} s (goal < 2 s)")

    a = ScoreArrays.from_table(validate(synthetic_scores(10, 500, seed=1)))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench", description=__doc__)
    parser.add_argument("suite", choices=["core"], nargs="?", default="core")
    args = parser.parse_args(argv)
    {"core": bench_core}[args.suite]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
