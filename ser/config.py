"""Study configs (YAML): loaded, defaulted and validated; an unknown key is an error naming it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ser.checks import is_count
from ser.corpora.prepare import PREPARE_DEFAULTS
from ser.fusion import BUILTIN_SYSTEMS, Rule, rule_from_config
from ser.io import InputError, read_yaml
from ser.metrics import METRICS
from ser.pipeline import INFER_DEFAULTS, resolve_stages
from ser.labels import LabelSet
from ser.sweep import SWEEP_DEFAULTS, validate_sweep
from ser.tuning import TUNE_DEFAULTS, validate_tune

ANY = object()
"""Marks a free-form value validated by its own builder (labels, systems)."""

SCHEMA: dict[str, Any] = {
    "name": "study",
    "seed": 0,
    "scores": None,
    "out": None,
    "labels": ANY,
    "systems": ANY,
    "evaluate": {"baseline": "speech", "bootstrap": 1000, "metric": "ua", "min_fold_rows": 20},
    "tune": {**TUNE_DEFAULTS, "space": ANY},
    "sweep": {**SWEEP_DEFAULTS, "tau_h": ANY, "tau_v": ANY},
    "cross": {"corpora": ANY},
    "prepare": {k: (ANY if v is None else v) for k, v in PREPARE_DEFAULTS.items()},
    "infer": {k: (ANY if v is None else v) for k, v in INFER_DEFAULTS.items()},
}
"""Top-level keys and their defaults; a nested dict is a section with its own keys."""


class ConfigError(InputError):
    """A config file is malformed; the message names the file and the offending key."""


def _merge(schema: dict, raw: dict, where: str) -> dict:
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise ConfigError(f"{where}unknown key(s) {unknown}; allowed: {sorted(schema)}")
    out = {}
    for key, default in schema.items():
        if isinstance(default, dict):
            value = raw.get(key)
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ConfigError(f"{where}'{key}' must be a mapping, got {type(value).__name__}")
            value = _merge(default, value, f"{where}{key}.")
        else:
            value = raw.get(key, None if default is ANY else copy.deepcopy(default))
        out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Read ``path`` (or start empty), apply ``overrides``, fill defaults, validate keys."""
    raw: dict = {}
    source = "config"
    if path is not None:
        p = Path(path)
        source = f"config {p}"
        try:
            raw = read_yaml(p, "config") or {}
        except InputError as exc:
            raise ConfigError(str(exc)) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: top level must be a mapping")
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    cfg = _merge(SCHEMA, raw, f"{source}: ")
    try:
        if not is_count(cfg["seed"], minimum=0):
            raise ValueError(f"seed must be a non-negative integer, got {cfg['seed']!r}")
        cfg["labels"] = LabelSet.from_dict(cfg["labels"])
        cfg["system_specs"] = {**BUILTIN_SYSTEMS, **(cfg["systems"] or {})}
        cfg["systems"] = build_systems(cfg["systems"] or {}, cfg["labels"])
        cfg["tune"] = validate_tune(cfg["tune"])
        cfg["infer"] = resolve_stages(cfg["infer"])
        cfg["sweep"] = validate_sweep({k: SWEEP_DEFAULTS[k] if v is None else v for k, v in cfg["sweep"].items()})
        validate_evaluate(cfg["evaluate"], cfg["system_specs"])
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg


def validate_evaluate(ev: dict, systems: dict) -> None:
    """``evaluate``: a known metric, a non-negative bootstrap count, a baseline that is a defined system."""
    if ev["metric"] not in METRICS:
        raise ValueError(f"evaluate.metric: '{ev['metric']}' is not one of {list(METRICS)}")
    if not is_count(ev["bootstrap"], minimum=0):
        raise ValueError(f"evaluate.bootstrap must be a non-negative integer (resamples), got {ev['bootstrap']!r}")
    if not is_count(ev["min_fold_rows"]):
        raise ValueError(f"evaluate.min_fold_rows must be a positive integer, got {ev['min_fold_rows']!r}")
    if ev["baseline"] not in systems:
        raise ValueError(f"evaluate.baseline: '{ev['baseline']}' is not a system; defined: {sorted(systems)}")


def resolved(cfg: dict) -> dict:
    """The loaded config as plain data (for run records): label set and system specs, not objects."""
    from dataclasses import asdict

    out = {k: v for k, v in cfg.items() if k not in ("systems", "system_specs", "labels")}
    return {**out, "labels": asdict(cfg["labels"]), "systems": cfg["system_specs"]}


def build_systems(raw: dict, labels: LabelSet) -> dict[str, Rule]:
    """Built-in systems (speech, text, oracle) plus those defined in the config's ``systems``."""
    if not isinstance(raw, dict):
        raise ValueError("systems must be a mapping of name → {kind: ...}")
    specs = {**BUILTIN_SYSTEMS, **raw}
    return {name: rule_from_config(spec or {}, labels, name=f"systems.{name}") for name, spec in specs.items()}
