"""Pickles inside model archives: the opcodes and ``GLOBAL`` references our files use, and a reader that runs nothing."""
from __future__ import annotations

import io
import pickle
import pickletools
import re
from typing import Any
from collections.abc import Callable

from ._safety_base import IDENT, BrokenArchive, refuse

__all__ = ["TENSOR_GLOBALS", "SCRIPT_GLOBALS", "OPCODES", "scan_pickle", "read_stubbed", "Stub"]

_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
#: ``GLOBAL`` references of the tensor pickles torch writes (``torch.save``, TorchScript).
TENSOR_GLOBALS = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch", "Tensor"),
        *(("torch", f"{s}Storage") for s in _STORAGES),
    }
)
#: ...plus TorchScript's type tags (traced inputs) and int lists (source ranges).
SCRIPT_GLOBALS = TENSOR_GLOBALS | {("torch.jit._pickle", "restore_type_tag"), ("torch.jit._pickle", "build_intlist")}
#: a class compiled from the archive's own ``code/`` (never a torchbind C++ class)
_SCRIPT_CLASS = re.compile(rf"__torch__(?:\.{IDENT})+")

#: pickle opcodes our files use, and their trivially equivalent forms. Not
#: here: INST/OBJ/STACK_GLOBAL/EXT* (import a name we could not check),
#: NEWOBJ_EX, PERSID, FRAME and the other protocol-4/5 forms we never write.
OPCODES = frozenset(
    {
        "PROTO", "STOP", "MARK", "POP", "GLOBAL", "REDUCE", "NEWOBJ", "BUILD", "BINPERSID",
        "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "DICT", "LIST", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3",
        "APPEND", "APPENDS", "SETITEM", "SETITEMS", "BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET",
        "NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT",
        "BINUNICODE", "SHORT_BINUNICODE",
    }
)


def scan_pickle(data: bytes, member: str, allowed: frozenset, script_classes: bool = False) -> None:
    """Refuse a pickle whose opcodes or ``GLOBAL`` references we do not write.

    Only ``GLOBAL`` can name a callable in the opcodes allowed here, so an
    allow-list of its arguments decides everything the pickle can call.

    Parameters
    ----------
    data : bytes
        The pickle.
    member : str
        Its name in the archive, for the message.
    allowed : frozenset of (module, name)
        Permitted ``GLOBAL`` references.
    script_classes : bool
        Also permit TorchScript classes (``__torch__.*``): TorchScript's
        unpickler resolves those to classes compiled from ``code/`` only.
    """
    try:
        ops = list(pickletools.genops(data))
    except Exception as exc:  # truncated or garbled pickle
        raise BrokenArchive(f"{member} is not a readable pickle ({exc})") from None
    for op, arg, _ in ops:
        if op.name not in OPCODES:
            raise refuse(member, f"pickle opcode {op.name} is never in our files")
        if op.name == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            ok = (module, name) in allowed or (
                script_classes and _SCRIPT_CLASS.fullmatch(module)
                and not module.startswith("__torch__.torch.classes") and re.fullmatch(IDENT, name)
            )
            if not ok:
                raise refuse(member, f"its pickle refers to {module}.{name}")


class Stub:
    """What our checked-pickle reader builds for a tensor: its shape only."""

    def __init__(self, size=()):
        self.size = tuple(size)


def _stub_rebuild(storage, offset, size, *rest):
    return Stub(size)


_STUBS: dict[tuple[str, str], Callable] = {
    ("torch._utils", "_rebuild_tensor_v2"): _stub_rebuild,
    ("torch.jit._pickle", "restore_type_tag"): lambda value, tag: value,
    ("collections", "OrderedDict"): dict,
    **{("torch", f"{s}Storage"): Stub for s in _STORAGES},
}


class _ShapeReader(pickle.Unpickler):
    """Reads an already checked pickle with stand-ins: nothing of torch's runs."""

    def find_class(self, module: str, name: str):
        try:
            return _STUBS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name}") from None

    def persistent_load(self, pid):
        return None


def read_stubbed(data: bytes) -> Any:
    """Unpickle an already checked pickle with stand-ins (:class:`Stub` for tensors): nothing of torch's runs."""
    return _ShapeReader(io.BytesIO(data)).load()
