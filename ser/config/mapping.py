"""YAML-shaped mappings → frozen config dataclasses: the one key-checking loader every section goes through
(unknown keys named with a "did you mean", nested sections built the same way, errors naming ``section.key``), the
checks the sections' ``__post_init__`` share, and a section back to plain data."""

from __future__ import annotations

import logging
import typing
from dataclasses import MISSING, fields, is_dataclass, replace
from typing import Any, Mapping

from ser._util.checks import is_count
from ser._util.io import InputError, check_keys
from ser.config.backends import DEPRECATED_KEYS, STAGE_SCHEDULING, STAGES, Scheduling, StageSpec
from ser.config.space import Candidates
from ser.data.labels import LabelSet

log = logging.getLogger("ser.config")


class ConfigError(InputError):
    """A config is malformed; the message names the source and the offending key."""


def check_choice(value: Any, allowed: tuple, where: str) -> None:
    """``value`` is one of ``allowed``, or an error naming ``where``."""
    if value not in allowed:
        raise InputError(f"{where}: '{value}' is not one of {list(allowed)}")


def check_count(value: Any, where: str, minimum: int = 1) -> None:
    """``value`` is an integer ≥ ``minimum`` (1 or 0), or an error naming ``where``."""
    if not is_count(value, minimum=minimum):
        kind = "a positive" if minimum == 1 else "a non-negative"
        raise InputError(f"{where} must be {kind} integer, got {value!r}")


def check_flag(value: Any, where: str) -> None:
    """``value`` is true or false, or an error naming ``where``."""
    if not isinstance(value, bool):
        raise InputError(f"{where} must be true or false, got {value!r}")


def stage_spec(stage: str, raw: Mapping | None, where: str | None = None) -> StageSpec:
    """A flat stage mapping (backend + its options + scheduling) → ``StageSpec``; ``checkpoint`` → ``model``."""
    where = where or f"infer.{stage}"
    if raw is not None and not isinstance(raw, Mapping):
        raise InputError(f"{where} must be a mapping")
    raw = dict(raw or {})
    backends = STAGES[stage]
    name = raw.pop("backend", next(iter(backends)))
    if name not in backends:
        raise InputError(f"{where}.backend: '{name}' is not one of {list(backends)}")
    backend = backends[name]
    for old, new in DEPRECATED_KEYS.items():
        if old in raw:
            if new in raw:
                raise InputError(f"{where}: give '{new}' only ('{old}' is its deprecated name)")
            log.warning("%s.%s is deprecated; call it '%s'", where, old, new)
            raw[new] = raw.pop(old)
    option_keys = [f.name for f in fields(backend.options)]
    sched_keys = [f.name for f in fields(Scheduling)]
    check_keys(raw, option_keys + sched_keys, f"{where} (backend {name})")
    options = backend.options(**{k: v for k, v in raw.items() if k in option_keys})
    scheduling = replace(STAGE_SCHEDULING[stage], **{k: v for k, v in raw.items() if k in sched_keys})
    scheduling.check(where)
    if "sub_batch" in option_keys:
        check_count(options.sub_batch, f"{where}.sub_batch")
    if getattr(options, "cpu_threads", None) is not None:
        check_count(options.cpu_threads, f"{where}.cpu_threads")
    if backend.needs_model and not options.model:
        raise InputError(f"{where}: backend '{name}' needs 'model'")
    return StageSpec(stage, name, options, scheduling)


def from_mapping(cls: type, raw: Any, where: str = "") -> Any:
    """Build dataclass ``cls`` from a YAML mapping: keys checked, nested sections built the same way."""
    if raw is None:
        raw = {}
    label = where.rstrip(".") or "top level"
    if not isinstance(raw, Mapping):
        raise InputError(f"{label} must be a mapping, got {type(raw).__name__}")
    names = [f.name for f in fields(cls)]
    check_keys(raw, names, label)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        value, kind = raw[f.name], hints[f.name]
        if kind is StageSpec:
            value = stage_spec(f.name, value, f"{where}{f.name}")
        elif kind in (LabelSet, LabelSet | None):
            value = None if value is None else LabelSet.from_dict(value)
        elif is_dataclass(kind):
            value = from_mapping(kind, value, f"{where}{f.name}.")
        elif value is None and f.default is MISSING:
            continue                                    # `section:` left empty in YAML → the default
        elif kind in (str, str | None) and value is not None and not isinstance(value, str):
            raise InputError(f"{where}{f.name} must be text, got {type(value).__name__} {value!r}"
                             + (" (quote it in YAML)" if isinstance(value, (int, float, bool)) else ""))
        kwargs[f.name] = value
    return cls(**kwargs)


def as_data(value: Any) -> Any:
    """A config section as plain data: nested sections as mappings, candidate specs as written in YAML."""
    if isinstance(value, Candidates):
        return value.to_config()
    if is_dataclass(value):
        return {f.name: as_data(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [as_data(v) for v in value]
    return value


def section(value: Any, cls: type, where: str) -> Any:
    """A nested section given as a mapping (a dataclass built in code with plain data) built like YAML's."""
    return from_mapping(cls, value, where) if isinstance(value, Mapping) else value
