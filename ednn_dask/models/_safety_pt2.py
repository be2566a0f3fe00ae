"""Checks of a ``torch.export`` archive (``.pt2``): its members, its program JSON and its sample inputs."""
from __future__ import annotations

import json
import re
from typing import Any
from collections.abc import Iterable

from ._safety_base import BrokenArchive, Records, UnsafeArchive, only_members, refuse
from ._safety_ops import serialized_target_allowed
from ._safety_pickle import TENSOR_GLOBALS, scan_pickle

__all__ = ["check_pt2"]

_PT2_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id",
              "extra/ednn.json", "models/model.json", "data/sample_inputs/model.pt",
              "data/weights/model_weights_config.json", "data/constants/model_constants_config.json"}
_PT2_RAW = re.compile(r"data/weights/weight_\d+|data/constants/tensor_\d+")
_SAVE_FIXED = {"data.pkl", "version", "byteorder", ".format_version", ".storage_alignment", ".data/serialization_id"}
_SAVE_RAW = re.compile(r"data/\d+")


def check_pt2(records: Records) -> None:
    """Every member of a ``torch.export`` archive is one :func:`~ednn_dask.models.save_model` writes, and harmless."""
    only_members(records.names, _PT2_FIXED, _PT2_RAW)
    for name in _PT2_FIXED - {".data/version", ".data/serialization_id", "byteorder"}:
        if name not in records.names:
            raise BrokenArchive(f"archive lacks {name}")
    _check_payload_config(records, "data/weights/model_weights_config.json", "weight_")
    _check_payload_config(records, "data/constants/model_constants_config.json", "tensor_")
    _check_program_json(_json(records, "models/model.json"))
    _check_torch_save(records.read("data/sample_inputs/model.pt"), "data/sample_inputs/model.pt")


def _json(records: Records, name: str) -> Any:
    try:
        return json.loads(records.read(name))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BrokenArchive(f"{name} is not valid JSON") from None


def _check_payload_config(records: Records, name: str, prefix: str) -> None:
    """Weights and constants must be raw tensor bytes: torch unpickles the others."""
    config = _json(records, name)
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise BrokenArchive(f"{name} has no config table")
    for fqn, entry in entries.items():
        if not isinstance(entry, dict) or entry.get("use_pickle") is not False or not entry.get("tensor_meta"):
            raise refuse(name, f"entry {fqn!r} is not a raw tensor (torch would unpickle it)")
        path = str(entry.get("path_name", ""))
        if not re.fullmatch(rf"{prefix}\d+", path):
            raise refuse(name, f"entry {fqn!r} points at {path!r}")


#: a range constraint's key: a size symbol (``s3``) or linear arithmetic on them (``8*s3 + 48``)
_RANGE_KEY = re.compile(r"(?:\s|\d{1,18}|[a-z]+\d+|[-+*()])+")
#: sympy constructors torch writes for shape expressions (``srepr``); no
#: attribute access, no builtins, no ``**`` (a huge power is a cheap way to hang)
_EXPR_NAMES = frozenset({"Symbol", "Integer", "Add", "Mul", "Mod", "FloorDiv", "CeilDiv", "Max", "Min",
                         "Equality", "Unequality", "GreaterThan", "LessThan", "StrictGreaterThan", "StrictLessThan",
                         "Not", "And", "Or", "positive", "integer", "nonnegative", "True", "False"})
_EXPR_TOKEN = re.compile(r"\s+|\d{1,18}|'[a-z]+\d+'|[A-Za-z]+|[(),=+\-*/]")


def _check_expr(expr: Any) -> None:
    """``torch.export`` hands these strings to ``sympy.sympify``, i.e. ``eval``."""
    text = str(expr)
    if "**" in text or len(text) > 2000:
        raise refuse("models/model.json", f"shape expression {text[:60]!r}")
    pos = 0
    while pos < len(text):
        m = _EXPR_TOKEN.match(text, pos)
        if m is None or (m.group().isalpha() and m.group() not in _EXPR_NAMES):
            raise refuse("models/model.json", f"shape expression {text[:60]!r}")
        pos = m.end()


def _walk(obj: Any, key: str) -> Iterable[Any]:
    """Every value stored under ``key`` anywhere in a JSON tree."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, key)


def _check_program_json(program: Any) -> None:
    """What ``models/model.json`` may hold: see :mod:`ednn_dask.models._safety`."""
    member = "models/model.json"
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise BrokenArchive(f"{member} is not a serialized program")
    if program.get("guards_code"):
        raise refuse(member, "it carries guard code, which torch would exec")
    graph = program["graph_module"].get("graph", {})
    if graph.get("custom_obj_values"):
        raise refuse(member, "it uses custom objects")
    for name in program.get("range_constraints", {}):
        text = str(name)
        if len(text) > 200 or "**" in text or not _RANGE_KEY.fullmatch(text):
            raise refuse(member, f"range constraint on {text[:60]!r}")
    for expr in _walk(program, "expr_str"):
        _check_expr(expr)
    for node in graph.get("nodes", []):
        target = str(node.get("target", "")) if isinstance(node, dict) else ""
        if not serialized_target_allowed(target):
            raise refuse(member, f"its graph calls {target[:80]!r}")


def _check_torch_save(data: bytes, member: str) -> None:
    """A nested ``torch.save`` archive (the sample inputs): tensors only."""
    if not data:  # a program exported without example inputs: torch stores nothing
        return
    try:
        inner = Records(data)
    except UnsafeArchive as exc:
        raise refuse(member, str(exc)) from None
    only_members(inner.names, _SAVE_FIXED, _SAVE_RAW, folder=f"{member}/")
    if "data.pkl" not in inner.names:
        raise BrokenArchive(f"{member} holds no data.pkl")
    scan_pickle(inner.read("data.pkl"), f"{member}/data.pkl", TENSOR_GLOBALS)
