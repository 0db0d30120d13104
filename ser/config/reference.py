"""The key reference (``docs/config.md``, ``ser config reference``), generated from the config dataclasses' field
metadata and the inference backends' registry: one source for defaults and their documentation."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields, is_dataclass

import yaml

from ser.config import (CrossConfig, EvaluateConfig, InferConfig, PrepareConfig, StudyConfig, SweepConfig, TrackConfig,
                        TuneConfig)
from ser.config.backends import DEPRECATED_KEYS, STAGE_SCHEDULING, STAGES, Scheduling, StageSpec
from ser.config.mapping import as_data
from ser.config.space import Candidates, SearchSpace, SelectSpace, SoftSpace


def _default_text(f) -> str:
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
    else:
        return ""
    if isinstance(value, StageSpec) or value is None and f.name in STAGES:
        return ""
    if is_dataclass(value) and not isinstance(value, (type, Candidates)):
        return ""                                       # a nested section: its own table follows
    value = as_data(value)
    return "`" + yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip() + "`"


def _table(cls: type, prefix: str) -> list[str]:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for f in fields(cls):
        meaning = f.metadata.get("doc", "").replace("|", "\\|")        # a pipe would end the table cell
        rows.append(f"| `{prefix}{f.name}` | {_default_text(f)} | {meaning} |")
    return rows


SECTIONS: tuple[tuple[str, type], ...] = (("", StudyConfig), ("evaluate", EvaluateConfig), ("tune", TuneConfig),
                                          ("sweep", SweepConfig), ("cross", CrossConfig), ("prepare", PrepareConfig),
                                          ("track", TrackConfig), ("infer", InferConfig))


def config_reference() -> str:
    """The key reference (``docs/config.md`` body), generated from the dataclasses and the backend registry."""
    lines: list[str] = []
    for section, cls in SECTIONS:
        lines += [f"## {'top level' if not section else f'`{section}`'}", "", (cls.__doc__ or "").strip(), ""]
        lines += _table(cls, f"{section}." if section else "") + [""]
        if cls is TuneConfig:
            for prefix, part in (("tune.space", SearchSpace), ("tune.space.select", SelectSpace),
                                 ("tune.space.soft", SoftSpace)):
                lines += [f"### `{prefix}`", "", inspect.cleandoc(part.__doc__ or ""), "", *_table(part, f"{prefix}."),
                          ""]
    for stage, backends in STAGES.items():
        for name, backend in backends.items():
            default = " (default)" if name == next(iter(backends)) else ""
            lines += [f"### `infer.{stage}` with `backend: {name}`{default}", ""]
            if fields(backend.options):
                lines += _table(backend.options, f"infer.{stage}.") + [""]
            else:
                lines += ["No options: the stage is skipped.", ""]
    sched = STAGE_SCHEDULING
    lines += ["### Scheduling keys of every `infer` stage", "", *_table(Scheduling, "infer.<stage>."), "",
              f"Sentiment's default `batch_size` is {sched['sentiment'].batch_size}. "
              f"Deprecated: {', '.join(f'`{o}` (use `{n}`)' for o, n in DEPRECATED_KEYS.items())}.", ""]
    return "\n".join(lines)
