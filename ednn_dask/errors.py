"""Warnings the package gives its users.

The command line prints each as one line ``ednn-dask: warning: ...`` on
stderr; other libraries' warnings and logs are shown only with
``--verbose``.
"""
from __future__ import annotations

__all__ = ["EDNNWarning"]


class EDNNWarning(UserWarning):
    """Something a user should know about an answer that is still given (e.g. atoms lifted out of the plane)."""
