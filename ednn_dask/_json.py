"""Strict JSON (no NaN/inf) for metadata and reports."""
from __future__ import annotations

import json
from typing import Any

__all__ = ["finite", "dumps"]


def finite(obj: Any) -> Any:
    """Replace NaN and infinities by ``None``, recursively."""
    if isinstance(obj, float) and not (obj == obj and abs(obj) != float("inf")):
        return None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kw) -> str:
    """``json.dumps`` of :func:`finite` ``(obj)`` that refuses NaN."""
    return json.dumps(finite(obj), allow_nan=False, **kw)
