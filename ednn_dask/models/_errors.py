"""The one error a model file gives its users."""
from __future__ import annotations

from ..errors import EDNNError

__all__ = ["ModelFileError"]


class ModelFileError(EDNNError, ValueError):
    """A model file is missing, unreadable or lacks valid EDNN metadata."""
