"""Computing a Dask graph in this process so that nothing is still running when the call returns.

Dask's threaded scheduler raises as soon as one task fails (or on Ctrl-C)
while tasks already running carry on writing. Callers that clean up
after a failure (a temporary store, a lock) must not race them, so the
threads here come from a private pool that is shut down, waiting for its
running tasks, before the exception leaves :func:`compute_local`.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

__all__ = ["compute_local"]


def compute_local(obj, scheduler: str | None = "threads", progress: bool = False) -> Any:
    """``dask.compute(obj)`` on a local scheduler; with threads, every task has ended when this returns or raises."""
    import dask

    bar = contextlib.nullcontext()
    if progress:
        from dask.diagnostics import ProgressBar

        bar = ProgressBar()
    if scheduler not in ("threads", "threading"):
        with bar:
            return dask.compute(obj, scheduler=scheduler)[0]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, os.cpu_count() or 1)) as pool, bar:  # exit waits for running tasks
        return dask.compute(obj, scheduler="threads", pool=pool)[0]
