"""Large-domain evaluation with Dask (``ednn-dask evaluate``)."""
from ._errors import EvaluationError
from ._evaluate import BOUNDARY, EvaluationResult, Plan, evaluate, plan_evaluation, run_plan
from ._source import aligned_chunks, open_raster
from ._worker import ModelRef, preload

__all__ = ["BOUNDARY", "EvaluationError", "EvaluationResult", "ModelRef", "Plan", "aligned_chunks", "evaluate",
           "open_raster", "plan_evaluation", "preload", "run_plan"]
