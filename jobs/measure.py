"""What the benchmarks measure: the peak memory of this process and its Ray workers, and the plain batched loop over
the inference stages that ``ser infer`` is compared with."""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Mapping

import pandas as pd


class PeakMemory:
    """Samples, in a thread, the summed RSS of this process and every Ray worker (``ray::*``) from /proc."""

    def __init__(self, interval: float = 0.1):
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


def stage_loop(rows: pd.DataFrame, stages: Mapping[str, Callable], batch_size: int) -> dict[str, float]:
    """The stage classes in turn over ``rows``, batch by batch in this process after decoding each batch (what a
    plain loop does): seconds spent decoding and in each stage."""
    from ser.inference.backends.audio_stage import load_batch

    split = dict.fromkeys(["decode", *stages], 0.0)
    for start in range(0, len(rows), batch_size):
        chunk = rows.iloc[start:start + batch_size]
        t0 = time.perf_counter()
        batch = load_batch({c: chunk[c].to_numpy() for c in chunk.columns})
        split["decode"] += time.perf_counter() - t0
        for name, stage in stages.items():
            t0 = time.perf_counter()
            batch = stage(batch)
            split[name] += time.perf_counter() - t0
    return split
