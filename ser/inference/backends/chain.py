"""Several model stages in one actor: each batch passes through them in turn.

On a machine whose cores the speech stage already takes (a laptop, a CI runner), a process per stage only adds
process start-up (each imports torch and loads its model) and stages contending for the same cores; one actor
holding every model does the same work without either (``infer.chain_stages``).
"""

from __future__ import annotations

from typing import Any, Sequence

from ser.inference.backends import Batch


class StageChain:
    """Construct every ``(stage class, constructor kwargs)`` in order; a call runs the batch through each."""

    def __init__(self, stages: Sequence[tuple[type, dict[str, Any]]]):
        if not stages:
            raise ValueError("a stage chain needs at least one stage")
        self.stages = [cls(**kwargs) for cls, kwargs in stages]

    def __call__(self, batch: Batch) -> Batch:
        for stage in self.stages:
            batch = stage(batch)
        return batch
