"""ser: entropy-aware multimodal speech emotion recognition, evaluated and tuned at scale.

The public API (see the README's "Python API")::

    import ser
    scores = ser.read_scores("scores.parquet")
    ser.evaluate(scores).table()
    ser.tune(scores, {"tune": {"engine": "optuna"}}).chosen()

Names are loaded on first use, so ``import ser`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "read_scores": "ser.data.schema", "evaluate": "ser.api", "tune": "ser.api", "sweep": "ser.api", "cross": "ser.api",
    "write_report": "ser.reporting.report", "synthetic_scores": "ser.data.synthetic",
    "load_run": "ser.reporting.results", "load_config": "ser.config",
    "StudyConfig": "ser.config", "ConfigError": "ser.config", "InputError": "ser._util.io", "LabelSet": "ser.data.labels",
    "Evaluation": "ser.reporting.results", "TuneResult": "ser.reporting.results", "SweepResult": "ser.reporting.results",
    "CrossResult": "ser.reporting.results", "Run": "ser.reporting.results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ser' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
