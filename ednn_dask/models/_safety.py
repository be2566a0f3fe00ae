"""Allow-list checks that keep a model file from running code.

Both archive formats a model can be saved in are zip files that torch's
loaders turn into objects by unpickling and compiling their members. Some of
those paths run arbitrary Python (``pickle.loads`` of
``data/constants/opaque_obj_*``, ``exec`` of ``guards_code``, ``sympify``
(``eval``) of shape expressions, shared libraries under
``data/aotinductor/``, TorchScript ``__setstate__`` methods and ops such as
``aten::save``). Setting ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` covers none of
them, so every member is checked here, on the raw bytes, before torch loads
the archive:

* the archive holds only the members :func:`~ednn_dask.models.save_model`
  writes (by name, stored uncompressed, under one top-level folder), as
  torch's own zip reader lists them;
* every pickle member uses only the opcodes and the ``GLOBAL`` references
  that our saved files contain (tensor rebuild helpers, storages,
  ``collections.OrderedDict``, TorchScript's own classes and tags);
* the JSON of a ``torch.export`` program has no guard code, shape
  expressions made of sympy constructors and symbol names only, raw (never
  pickled) weights and constants, and calls only the aten ops our tile
  networks are built from;
* TorchScript source defines no method but ``forward``, so nothing runs
  while the archive loads; after loading, :func:`check_script_ops` and
  :func:`check_program_ops` check the compiled graphs against the same op
  list before the network is ever called.

Every refusal raises :class:`UnsafeArchive` with one line naming the member.

The checks live in :mod:`._safety_base` (the archive's records, as torch's
own zip reader lists them), :mod:`._safety_pickle` (opcodes, ``GLOBAL``
references, a reader that runs nothing), :mod:`._safety_ops` (the op
allow-list), :mod:`._safety_pt2` and :mod:`._safety_script` (the two formats);
this module is their entry point.
"""
from __future__ import annotations

from ._safety_base import BrokenArchive, Records, UnsafeArchive
from ._safety_ops import ATEN_OPS, PRIM_OPS, check_program_ops, check_script_ops
from ._safety_pickle import OPCODES, SCRIPT_GLOBALS, TENSOR_GLOBALS, scan_pickle
from ._safety_pt2 import check_pt2
from ._safety_script import check_torchscript, traced_input_shape

__all__ = [
    "UnsafeArchive",
    "BrokenArchive",
    "Records",
    "check_archive",
    "check_program_ops",
    "check_script_ops",
    "traced_input_shape",
    "scan_pickle",
    "ATEN_OPS",
    "PRIM_OPS",
    "OPCODES",
    "TENSOR_GLOBALS",
    "SCRIPT_GLOBALS",
]


def check_archive(data: bytes, fmt: str) -> Records:
    """Check every member of a model archive before torch loads it.

    Parameters
    ----------
    data : bytes
        The archive.
    fmt : {"torch.export", "torchscript"}
        Its format, from the metadata.

    Returns
    -------
    Records
        The archive's records (for :func:`traced_input_shape`).

    Raises
    ------
    UnsafeArchive
        On the first member our own files would not contain.
    BrokenArchive
        If a member is unreadable.
    """
    records = Records(data)
    if fmt == "torch.export":
        check_pt2(records)
    else:
        check_torchscript(records)
    return records
