"""The ops a model's graph may call: the aten ops our tile networks are built from, checked in every form torch shows them."""
from __future__ import annotations

import operator
import re

import torch

from ._safety_base import IDENT, UnsafeArchive

__all__ = ["ATEN_OPS", "PRIM_OPS", "SYM_FUNCTIONS", "serialized_target_allowed", "check_program_ops", "check_script_ops"]

#: aten ops the tile networks of :mod:`ednn_dask.nn` export or trace to
#: (dense and conv subnets, every activation, SAME padding, focus baseline),
#: plus the decompositions of the same layers (conv/linear/pad) that other
#: torch versions emit. None of them touches files or runs Python.
ATEN_OPS = frozenset(
    {
        "Int", "_convolution", "add", "addmm", "constant_pad_nd", "conv2d", "convolution",
        "flatten", "floor_divide", "linear", "matmul", "mul", "neg", "pad", "relu", "silu",
        "size", "slice", "squeeze", "sub", "sum", "t", "tanh",
        # the field program (dynamic shapes): shape arithmetic, its checks, casts and reshapes
        "_assert_scalar", "_to_copy", "contiguous", "einsum", "reshape", "sym_size", "unsqueeze", "view",
        # the feature distance of a fitted domain
        "div", "stack", "cat", "mm", "mv", "permute", "linalg_vector_norm", "pow",
    }
)
#: Python functions on symbolic sizes a field program's graph calls (``torch.export`` writes them as
#: ``_operator.add``, ``torch.sym_max``, ...): integer arithmetic and comparisons. No ``pow``: a huge
#: power is a cheap way to hang.
SYM_FUNCTIONS = {
    f"_operator.{name}": getattr(operator, name)
    for name in ("add", "sub", "mul", "floordiv", "mod", "neg", "eq", "ne", "gt", "ge", "lt", "le", "and_", "or_")
} | {f"torch.{name}": getattr(torch, name) for name in ("sym_max", "sym_min", "sym_not")}
#: TorchScript graph nodes besides aten ops: constants, attribute reads, lists.
PRIM_OPS = frozenset({"prim::Constant", "prim::GetAttr", "prim::ListConstruct", "prim::NumToTensor"})


def serialized_target_allowed(target: str) -> bool:
    """A node target as ``models/model.json`` spells it (``torch.ops.aten.<op>.<overload>``) names an allowed op."""
    if target in SYM_FUNCTIONS:
        return True
    m = re.fullmatch(rf"torch\.ops\.aten\.({IDENT})\.({IDENT})", target)
    return m is not None and m.group(1) in ATEN_OPS and "__" not in target


def check_program_ops(program: torch.export.ExportedProgram) -> None:
    """Refuse a loaded program that calls anything but the allowed aten ops.

    Runs on the deserialized graph before ``program.module()`` builds, and
    long before anything calls, the network: the JSON check already did this,
    this confirms what torch resolved the names to.
    """
    for node in program.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        target = node.target
        ok = node.op == "call_function" and (
            (isinstance(target, torch._ops.OpOverload) and target.namespace == "aten"
             and target._schema.name.split("::", 1)[1] in ATEN_OPS)
            or any(target is fn for fn in SYM_FUNCTIONS.values())
        )
        if not ok:
            raise UnsafeArchive(
                f"the exported program's graph has {node.op} {target!s:.80}, which our networks never use"
            )

def check_script_ops(module: torch.jit.ScriptModule) -> None:
    """Refuse a loaded TorchScript network whose graph uses other ops.

    Blocks (``prim::If``, loops) and calls come in through nodes not on the
    list, so looking at the top-level nodes of the inlined graph suffices.
    """
    for node in module.inlined_graph.nodes():
        kind = node.kind()
        ns, _, op = kind.partition("::")
        if not ((ns == "aten" and op in ATEN_OPS) or kind in PRIM_OPS):
            raise UnsafeArchive(f"the compiled TorchScript network calls {kind}, which our networks never use")
