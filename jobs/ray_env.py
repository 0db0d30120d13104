"""Starting or joining Ray the way every ser job does: quiet, local services on 127.0.0.1."""

from __future__ import annotations

import os


def local_ray() -> bool:
    """Whether ser starts its own single-node Ray (no ``RAY_ADDRESS`` to join)."""
    return not os.environ.get("RAY_ADDRESS")


def ensure_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Join ``RAY_ADDRESS`` if set (a cluster or ``ray job submit``), else start a local Ray."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import ray.data

    from ser.logs import adopt_ray_loggers

    adopt_ray_loggers()
    if ray.is_initialized():
        return
    # ser shows its own progress; Ray Data's bars and per-operator summaries go to ser.log only
    ray.data.DataContext.get_current().enable_progress_bars = False
    if not local_ray():
        ray.init(configure_logging=False, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, dashboard_host="127.0.0.1",
                 configure_logging=False, log_to_driver=False)
    adopt_ray_loggers()
