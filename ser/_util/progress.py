"""One progress display per long stage: a tqdm bar on a terminal, else a log line every few seconds.

The bar goes to stderr only when stderr is a TTY and the ``ser`` logger shows INFO (not ``-q``); piped
output, CI logs and ``ser.log`` get plain lines instead of carriage returns. A progress opened inside
another one (the searches inside ``ser cross``) shows nothing: the outer one speaks for the stage, and
nested steps report at DEBUG (``inside_progress``).
"""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

log = logging.getLogger("ser._util.progress")

LINE_EVERY_S = 30.0
"""Seconds between progress lines when there is no terminal to draw a bar on."""


_ACTIVE: ContextVar[bool] = ContextVar("ser_progress_active", default=False)


def inside_progress() -> bool:
    """Is a progress display open (so a nested step should report at DEBUG, leaving the terminal to it)?"""
    return _ACTIVE.get()


@contextmanager
def progress(total: int, desc: str, unit: str) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)``; shows ``desc: done/total unit`` with rate, and a closing line when done."""
    if _ACTIVE.get():
        yield lambda n=1: None
        return
    token = _ACTIVE.set(True)
    t0, state = time.perf_counter(), {"done": 0, "last": time.perf_counter()}
    bar = None
    if sys.stderr.isatty() and log.isEnabledFor(logging.INFO) and total > 0:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr, dynamic_ncols=True)

    def advance(n: int = 1) -> None:
        state["done"] += n
        if bar is not None:
            bar.update(n)
        elif time.perf_counter() - state["last"] >= LINE_EVERY_S and state["done"] < total:
            state["last"] = time.perf_counter()
            log.info(f"{desc}: {state['done']:,}/{total:,} {unit} ({_rate(state['done'], state['last'] - t0, unit)})")

    try:
        yield advance
    finally:
        _ACTIVE.reset(token)
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    log.info(f"{desc}: {state['done']:,}/{total:,} {unit} in {elapsed:.1f} s ({_rate(state['done'], elapsed, unit)})")


def _rate(done: int, seconds: float, unit: str) -> str:
    """'12.3 rows/s', or '8.4 s each' when each unit takes longer than a second."""
    rate = done / max(seconds, 1e-9)
    return f"{rate:,.1f} {unit}/s" if rate >= 1 or done == 0 else f"{seconds / done:,.1f} s each"
