"""Large-domain evaluation with Dask (``ednn-dask evaluate``)."""
from ._evaluate import BOUNDARY, EvaluationError, EvaluationResult, aligned_chunks, evaluate, open_raster
from ._worker import ModelRef, preload

__all__ = ["BOUNDARY", "EvaluationError", "EvaluationResult", "ModelRef", "aligned_chunks", "evaluate",
           "open_raster", "preload"]
