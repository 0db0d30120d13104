"""Starting or joining Ray the way every ser job does: quiet, local services on 127.0.0.1."""

from __future__ import annotations

import os
import sys


def local_ray() -> bool:
    """Whether ser starts its own single-node Ray (no ``RAY_ADDRESS`` to join)."""
    return not os.environ.get("RAY_ADDRESS")


# Ray's switch for "this node may be part of a multi-machine cluster". Off, Ray takes 127.0.0.1 as the node's
# address and every server it starts (GCS, raylet, workers, agents) listens there only, as on macOS.
_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def keep_local_ray_on_loopback() -> None:
    """Make a Ray that ser starts itself reachable from this machine only; a ``RAY_ADDRESS`` to join, or
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` set by the user, leaves Ray's own choice alone."""
    if local_ray():
        os.environ.setdefault(_CLUSTER_SWITCH, "0")


def ray_running() -> bool:
    """Whether this process is already connected to a Ray (checked without importing Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def ensure_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Join ``RAY_ADDRESS`` if set (a cluster or ``ray job submit``), else start a local Ray."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import ray.data

    from ser._util.logs import adopt_ray_loggers

    adopt_ray_loggers()
    if ray.is_initialized():
        return
    # ser shows its own progress; Ray Data's bars and per-operator summaries go to ser.log only
    ray.data.DataContext.get_current().enable_progress_bars = False
    if not local_ray():
        ray.init(configure_logging=False, log_to_driver=False)
    else:
        # address="local": a Ray of this run's own, never one that another process started on this machine
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 dashboard_host="127.0.0.1", configure_logging=False, log_to_driver=False)
    adopt_ray_loggers()
