"""Crawlers: registries and layouts in, signature records out."""

import os


def usable_cpus() -> int:
    """CPUs this process may run on: a container's or taskset's share, not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
