"""What can go wrong because of a user's input, and what a user should be told.

:class:`EDNNError` is the base of every error a user can cause — a bad or
damaged input, a model that does not fit it, an output that cannot be
written, a cluster that cannot start. Its message is for users. The command
line reports exactly these as one line ``ednn-dask: error: ...`` with exit
status 2; anything else is a bug and shows as one.

:class:`EDNNWarning` is the base of warnings about an answer that is still
given; the command line prints each as one line ``ednn-dask: warning: ...``.
"""
from __future__ import annotations

__all__ = ["EDNNError", "InputError", "DomainError", "EDNNWarning"]


class EDNNError(Exception):
    """An error a user can cause; the message says what to do about it."""


class InputError(EDNNError, ValueError):
    """A value or file given by the user that cannot be used (bad spins, a wrong suffix, ...)."""


class DomainError(EDNNError):
    """With ``--strict``: an input outside the model's domain (``ednn_dask.domain``), where it would only warn."""


class EDNNWarning(UserWarning):
    """Something a user should know about an answer that is still given (e.g. atoms lifted out of the plane)."""
