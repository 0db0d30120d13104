"""Several model stages in one actor: each batch passes through them in turn.

On a machine whose cores the speech stage already takes (a laptop, a CI runner), a process per stage only adds
process start-up (each imports torch and loads its model) and stages contending for the same cores; one actor
holding every model does the same work without either (``infer.chain_stages``). The pipeline's last actor stage
always runs inside a chain (of one stage, when stages are not chained) that drops the decoded audio from its output.
"""

from __future__ import annotations

from typing import Any, Sequence

from ser.inference.backends import Batch


class StageChain:
    """Construct every ``(stage class, constructor kwargs)`` in order; a call runs the batch through each, then
    leaves out the ``drop`` columns (the waveforms, once no later stage needs them)."""

    def __init__(self, stages: Sequence[tuple[type, dict[str, Any]]], drop: Sequence[str] = ()):
        if not stages:
            raise ValueError("a stage chain needs at least one stage")
        self.stages = [cls(**kwargs) for cls, kwargs in stages]
        self.drop = frozenset(drop)

    def __call__(self, batch: Batch) -> Batch:
        for stage in self.stages:
            batch = stage(batch)
        return {name: column for name, column in batch.items() if name not in self.drop}
