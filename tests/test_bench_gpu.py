"""The GPU benchmark's script runs end to end on the CPU (``--tiny``), so a lent GPU's minutes are not lost to a
typo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.ray
def test_bench_gpu_tiny_prints_every_row_on_the_cpu():
    done = subprocess.run([sys.executable, "-m", "jobs.bench", "gpu", "--tiny"], capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for row in ("wav2vec2-base (tiny, fp32)  sub-batch 1", "wav2vec2-large (tiny, fp32) sub-batch 32", "XLM-R (tiny)",
                "Whisper encoder (tiny)     batch 16", "Ray Data speech stage, 1 actor"):
        assert row in out, out
    assert "rows ran on CPU; 0 errors" in out and "utt/s, RTF" in out
