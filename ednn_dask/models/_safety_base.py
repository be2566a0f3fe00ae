"""The ground every model-archive check stands on: its two errors, and the archive's records as torch reads them."""
from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable

import torch

__all__ = ["UnsafeArchive", "BrokenArchive", "Records", "refuse", "only_members", "IDENT"]

#: a Python identifier (names in pickles, graphs and TorchScript paths)
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


class UnsafeArchive(Exception):
    """A member of a model archive is not one our own model files contain."""


class BrokenArchive(Exception):
    """A member our model files contain is unreadable (corrupt, not hostile)."""


def refuse(member: str, why: str = "") -> UnsafeArchive:
    """The refusal of one archive member, with the reason (by default: what torch would do with it)."""
    why = why or (
        "torch would unpickle it" if member.endswith((".pkl", ".pt")) or "_obj_" in member
        else "not part of an ednn-dask model file"
    )
    return UnsafeArchive(f"archive member {member!r} is not allowed ({why})")


class Records:
    """The records of a zip archive exactly as torch's own reader sees them.

    The names are checked with :mod:`zipfile` as well and must agree, so that
    no member hides from one of the two readers; contents are read through
    torch's reader, the one its loaders use.

    Parameters
    ----------
    data : bytes
        The whole archive.
    """

    def __init__(self, data: bytes):
        names = _zip_names(data)
        try:
            self._reader = torch._C.PyTorchFileReader(io.BytesIO(data))
            records = list(self._reader.get_all_records())
        except RuntimeError as exc:
            raise BrokenArchive(f"torch cannot read the archive ({exc})") from None
        if sorted(records) != sorted(names):
            extra = sorted(set(records) ^ set(names))
            raise UnsafeArchive(f"torch's zip reader and Python's list different members ({', '.join(extra[:3])})")
        self.names: list[str] = records

    def read(self, name: str) -> bytes:
        """Bytes of one record."""
        return bytes(self._reader.get_record(name))


def _zip_names(data: bytes) -> list[str]:
    """Member names below the single top-level folder; refuses odd layouts."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except zipfile.BadZipFile as exc:
        raise BrokenArchive(f"not a zip archive ({exc})") from None
    if not infos:
        raise BrokenArchive("empty zip archive")
    root = infos[0].filename.split("/", 1)[0]
    names = []
    for info in infos:
        # torch writes every member below one folder, stored (TorchScript source: deflated)
        if not info.filename.startswith(root + "/") or "\\" in info.filename or "/../" in info.filename:
            raise refuse(info.filename, "outside the archive's folder")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
            raise refuse(info.filename, "compressed with another method, or encrypted")
        names.append(info.filename[len(root) + 1 :])
    if len(set(names)) != len(names):
        raise UnsafeArchive("archive lists a member twice")
    return names


def only_members(names: Iterable[str], fixed: set[str], numbered: re.Pattern, folder: str = "") -> None:
    """Refuse the first of ``names`` that is neither one of ``fixed`` nor matches ``numbered`` (tensor payloads).

    ``folder`` prefixes the names in the message (members of a nested archive).
    """
    for name in names:
        if name not in fixed and not numbered.fullmatch(name):
            raise refuse(f"{folder}{name}")
