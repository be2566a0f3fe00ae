"""The ``ednn-dask`` command line: a thin layer over the Python API, one module per job.

=================  ==========================================================
module             commands
=================  ==========================================================
``_predict``       ``models``, ``predict``, ``demo``
``_data``          ``make-sheet``, ``rasterize``, ``dataset ising|sheets``
``_train``         ``train ising|sheets``
``_evaluate``      ``evaluate`` (LocalCluster or batch jobs)
=================  ==========================================================

Every failure the user can cause is an :class:`ednn_dask.errors.EDNNError`
and prints one line ``ednn-dask: error: ...`` on stderr with exit status 2;
anything else is a bug and shows its traceback. ``--json`` output goes to
stdout alone; Dask's logs and other libraries' warnings appear only with
``--verbose``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from typing import Sequence

from ..errors import EDNNError, EDNNWarning, InputError

__all__ = ["main", "build_parser", "UserError"]

#: The error the command handlers raise for a bad value or file (an :class:`EDNNError`).
UserError = InputError


class _Parser(argparse.ArgumentParser):
    """argparse with the package's error convention: one line ``ednn-dask: error: ...``, exit status 2."""

    def error(self, message: str):
        print(f"ednn-dask: error: {self.prog.removeprefix('ednn-dask').strip() + ': ' if self.prog != 'ednn-dask' else ''}"
              f"{message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The ``ednn-dask`` argument parser, each command registered by the module that runs it."""
    from .. import __version__
    from . import _data, _evaluate, _predict, _train

    p = _Parser(prog="ednn-dask", description="Extensive deep neural networks over large domains.")
    p.add_argument("--version", action="version", version=f"ednn-dask {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    common = _Parser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="also show Dask's logs and other libraries' warnings on stderr")
    for module in (_predict, _data, _evaluate, _train):
        module.add_commands(sub, common)
    return p


def _one_line_warnings(verbose: bool) -> None:
    """Our warnings as one line each on stderr; other libraries' warnings and Dask's logs only with --verbose."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, EDNNWarning):
            print(f"ednn-dask: warning: {str(message).splitlines()[0]}", file=sys.stderr)
        elif verbose:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    if not verbose:
        # worker processes inherit the environment; this process's loggers are set directly
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "critical"
        for name in ("distributed", "tornado", "asyncio", "bokeh"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ednn-dask``; returns the exit status."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit.*")
    args = build_parser().parse_args(argv)
    _one_line_warnings(bool(getattr(args, "verbose", False)))
    try:
        return int(args.func(args) or 0)
    except EDNNError as exc:
        print(f"ednn-dask: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ednn-dask: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (``| head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
