"""The one error a model file gives its users."""
from __future__ import annotations

__all__ = ["ModelFileError"]


class ModelFileError(ValueError):
    """A model file is missing, unreadable or lacks valid EDNN metadata."""
