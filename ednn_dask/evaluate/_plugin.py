"""The worker plugin the evaluator registers: torch threads from the worker's thread count, model preloaded.

``ednn_dask.cluster`` re-exports it; it lives here so the evaluator needs nothing of the cluster package.
"""
from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from ._worker import ModelRef, preload

__all__ = ["EDNNWorkerPlugin", "torch_threads_for"]


def torch_threads_for(worker_cores: int, dask_threads: int) -> int:
    """Torch threads per task so that dask threads × torch threads ≤ the worker's cores."""
    return max(1, int(worker_cores) // max(1, int(dask_threads)))


class EDNNWorkerPlugin(WorkerPlugin):
    """Prepare every worker, present and future (restarted ones too), for EDNN tasks.

    Parameters
    ----------
    ref : ModelRef
        The model's path and sha256 token; tasks look the model up by token.
    data : bytes
        The model file itself, so workers need no shared filesystem for it.
    worker_cores : int, optional
        Cores available to one worker process (cores per job / processes);
        default: the worker's thread count, i.e. one torch thread per dask thread.
    """

    name = "ednn-dask"

    def __init__(self, ref: ModelRef, data: bytes, worker_cores: int | None = None):
        self.ref = ref
        self.data = data
        self.worker_cores = worker_cores

    def setup(self, worker) -> None:
        import torch

        nthreads = worker.state.nthreads
        threads = torch_threads_for(self.worker_cores or nthreads, nthreads)
        torch.set_num_threads(threads)
        preload(self.ref, self.data)
        worker.ednn_torch_threads = threads
