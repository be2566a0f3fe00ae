"""A run on a distributed cluster that has ended everywhere before the client cleans up after it.

Cancelling a future stops the tasks that have not started; a task already running in a
worker thread carries on and would still write its chunk into a tile map that the
client is discarding (recreating part of it) or handing to the next run. So every
block of a run holds :func:`running` for the run's id while it reads and writes the
store. After a failure the client cancels the run's future, tells every worker that
the run is stopped (a block that starts later does nothing) and waits until no block
of the run is running anywhere; only then does the exception reach the caller.
"""
from __future__ import annotations

import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import EDNNWarning
from ._errors import EvaluationError, TasksStillRunning

__all__ = ["compute_on_cluster", "new_run", "running"]

_ACTIVE: Counter[str] = Counter()  # blocks of each run now running in this process
_STOPPED: set[str] = set()  # runs whose client gave up: their blocks no longer start
_LOCK = threading.Lock()


class RunStopped(RuntimeError):
    """Raised in a block of a run that was stopped (its result is never used)."""


def new_run() -> str:
    """A fresh run id."""
    return uuid.uuid4().hex


@contextmanager
def running(run: str) -> Iterator[None]:
    """Count a block of ``run`` as running in this process; refuse to start one of a stopped run.

    Raises
    ------
    RunStopped
        If the client has stopped ``run``.
    """
    with _LOCK:
        if run in _STOPPED:
            raise RunStopped(f"evaluation {run} was stopped")
        _ACTIVE[run] += 1
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE[run] -= 1
            if not _ACTIVE[run]:
                del _ACTIVE[run]


def stop(run: str, dask_worker=None) -> int:
    """On a worker: no further block of ``run`` starts; return how many are still running."""
    with _LOCK:
        _STOPPED.add(run)
        return _ACTIVE.get(run, 0)


def compute_on_cluster(obj, client, run: str, progress: bool = False, timeout: float = 300.0) -> Any:
    """``client.compute(obj).result()``; when that raises, no block of ``run`` runs any more.

    Parameters
    ----------
    obj : dask collection
        The graph; its blocks hold :func:`running` for ``run``.
    client : distributed.Client
    run : str
        The run id (:func:`new_run`).
    progress : bool
        Show Dask's progress bar.
    timeout : float
        Seconds to wait for running blocks after a failure.

    Raises
    ------
    TasksStillRunning
        If the computation raised an :class:`EvaluationError` (after which the caller deletes the
        store) and blocks were still running after ``timeout``: the store must be kept.
    """
    fut = client.compute(obj)
    try:
        if progress:
            from distributed import progress as dprogress

            dprogress(fut)
        return fut.result()
    except BaseException as exc:
        fut.cancel()  # the tasks not yet started never start
        left = _wait_stopped(client, run, timeout)  # Ctrl-C again stops waiting (and the store is kept)
        if left and isinstance(exc, EvaluationError):
            raise TasksStillRunning(f"{exc}; {left}, so the unfinished tile map is kept: check that the cluster "
                                    "is idle before running again") from exc
        if left:
            warnings.warn(f"the evaluation failed and {left}", EDNNWarning, stacklevel=2)
        raise


def _wait_stopped(client, run: str, timeout: float) -> str:
    """Stop ``run`` on every worker and wait until none runs a block of it; ``""``, or why it cannot be said."""
    deadline = time.monotonic() + timeout
    while True:
        if client.status != "running":
            return "the cluster did not answer"
        try:
            counts = client.run(stop, run, on_error="return")
        except Exception:  # the scheduler is gone
            return "the cluster did not answer"
        tasks = sum(n for n in counts.values() if isinstance(n, int))
        quiet = sum(1 for n in counts.values() if not isinstance(n, int))
        if not tasks and not quiet:
            return ""
        if time.monotonic() > deadline:
            said = [f"{tasks} of its tasks were still running"] if tasks else []
            said += [f"{quiet} workers did not answer"] if quiet else []
            return f"after {timeout:g} s " + " and ".join(said)
        time.sleep(0.05)
