"""Errors of the evaluator that a user can cause."""
from __future__ import annotations

from ..errors import EDNNError

__all__ = ["EvaluationError", "TasksStillRunning"]


class EvaluationError(EDNNError, ValueError):
    """Input that cannot be evaluated (bad raster, spacing mismatch, unreadable chunk, ...).

    Raised before the computation starts where the input allows it, and by
    workers for what only reading the pixels reveals (NaN pixels, a corrupt
    chunk); the evaluator then keeps no partial results.
    """


class TasksStillRunning(EDNNError, RuntimeError):
    """An evaluation failed on a cluster whose tasks did not all end in time; its unfinished tile map is kept."""
