"""Refusing work that cannot fit: a grid or weight list whose arrays would exceed the memory this machine has
is refused up front, with the config key and the estimated size, instead of dying in an allocation."""

from __future__ import annotations

import os

from ser._util.io import InputError

GIB = 1 << 30


def available_memory() -> int:
    """Bytes this machine can still give (Linux ``MemAvailable``; elsewhere the physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def refuse_oversized(key: str, what: str, n_bytes: float) -> None:
    """Raise a ValueError naming ``key`` when ``n_bytes`` (an estimate of ``what``'s arrays) is more than half
    the available memory: the rest is the table, the models and the other trials."""
    have = available_memory()
    if n_bytes > have / 2:
        raise InputError(f"{key}: {what} would need about {n_bytes / GIB:,.1f} GiB of memory, more than half of the "
                         f"{have / GIB:,.1f} GiB this machine has available; use fewer steps")
