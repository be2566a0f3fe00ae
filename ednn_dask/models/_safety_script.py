"""Checks of a TorchScript archive (``.pt``/``.ts``): its members, pickles and source, and the shape it was traced with."""
from __future__ import annotations

import ast
import re

from ._safety_base import IDENT, BrokenArchive, Records, refuse
from ._safety_pickle import SCRIPT_GLOBALS, Stub, read_stubbed, scan_pickle

__all__ = ["check_torchscript", "traced_input_shape"]

_TS_FIXED = {"version", "byteorder", ".data/version", ".data/serialization_id", "extra/ednn.json",
             "data.pkl", "constants.pkl", "traced_inputs.pkl"}
_TS_RAW = re.compile(r"(?:data|constants|traced_inputs)/\d+")
_TS_CODE = re.compile(rf"code/__torch__(?:/{IDENT})+\.py")


def check_torchscript(records: Records) -> None:
    """Every member of a TorchScript archive is one ``torch.jit.save`` writes for our networks, and harmless."""
    for name in records.names:
        code = name.endswith(".py") and _TS_CODE.fullmatch(name)
        debug = name.endswith(".debug_pkl") and _TS_CODE.fullmatch(name[: -len(".debug_pkl")])
        if not (name in _TS_FIXED or _TS_RAW.fullmatch(name) or code or debug):
            raise refuse(name)
        if name.endswith(".pkl") or debug:
            scan_pickle(records.read(name), name, SCRIPT_GLOBALS, script_classes=name == "data.pkl")
        elif code:
            _check_script_source(records.read(name), name)
    if "data.pkl" not in records.names:
        raise BrokenArchive("archive lacks data.pkl")


def _check_script_source(data: bytes, member: str) -> None:
    """Only ``forward`` methods: ``__setstate__`` and friends run while loading."""
    try:
        tree = ast.parse(data.decode("utf-8"), filename=member)
    except (UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise BrokenArchive(f"{member} is not readable TorchScript source ({exc})") from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            name = getattr(node, "name", "lambda")
            if name != "forward":
                raise refuse(member, f"it defines {name}(); our networks define forward() only")


def traced_input_shape(records: Records) -> tuple[int, ...] | None:
    """Shape of the example input a TorchScript network was traced with.

    Read from ``traced_inputs.pkl`` (checked by :func:`~ednn_dask.models._safety.check_archive`) with
    stand-ins for every reference, or ``None`` if the archive has none.
    """
    if "traced_inputs.pkl" not in records.names:
        return None
    try:
        inputs = read_stubbed(records.read("traced_inputs.pkl"))
        first = inputs["forward"][0]
    except Exception:  # an unexpected layout: fall back to the trial call alone
        return None
    return first.size if isinstance(first, Stub) else None
