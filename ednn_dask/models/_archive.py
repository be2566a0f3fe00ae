"""The model file as bytes and as a zip archive: reading it once, and replacing it atomically."""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Union
from collections.abc import Iterator

from .._outputs import atomic_path
from ._errors import ModelFileError
from ._schema import META_NAME

__all__ = ["Source", "source_name", "read_bytes", "read_meta_json", "replace_meta_json", "replaced", "quiet_jit",
           "weights_only_env"]

#: a model file: its path, or its bytes (workers receive models as bytes)
Source = Union[str, os.PathLike, bytes, io.BytesIO]


def source_name(source: Source) -> str:
    """How messages name ``source``: its path, or ``<bytes>``."""
    return "<bytes>" if isinstance(source, (bytes, bytearray, io.BytesIO)) else str(source)


@contextlib.contextmanager
def _unreadable_as_model_error(name: str) -> Iterator[None]:
    """Missing and unreadable files become one :class:`ModelFileError` each."""
    try:
        yield
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {name}") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{name} is not a readable model archive ({exc})") from None


def read_bytes(source: Source, name: str) -> bytes:
    """The whole file, read once: what is checked is what torch loads."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, io.BytesIO):
        return source.getvalue()
    with _unreadable_as_model_error(name):
        return Path(source).read_bytes()


def _open_zip(source: Source) -> zipfile.ZipFile:
    if isinstance(source, (bytes, bytearray)):
        return zipfile.ZipFile(io.BytesIO(source))
    if isinstance(source, io.BytesIO):
        source.seek(0)
    return zipfile.ZipFile(source)


def _is_meta(member: str) -> bool:
    return member.rsplit("/", 1)[-1] == META_NAME


def read_meta_json(source: Source, name: str) -> Any:
    """The parsed ``ednn.json`` of a model archive (not yet validated).

    Raises
    ------
    ModelFileError
        If the file is missing, not a zip archive, has no ``ednn.json`` or
        one that is not JSON.
    """
    try:
        with _unreadable_as_model_error(name), _open_zip(source) as zf:
            entries = [n for n in zf.namelist() if _is_meta(n)]
            if not entries:
                raise ModelFileError(
                    f"{name} has no EDNN metadata ({META_NAME}); refusing to load a model "
                    "whose focus, context and scaling are unknown"
                )
            return json.loads(zf.read(entries[0]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{name}: {META_NAME} is not valid JSON") from None


#: A temporary name beside ``path`` that is renamed over it when the block succeeds (the name keeps
#: the suffix, which ``torch.export`` checks); the one helper is :func:`ednn_dask._outputs.atomic_path`.
replaced = atomic_path


def replace_meta_json(path: Path, blob: bytes) -> None:
    """Rewrite the archive at ``path`` with ``blob`` as its ``ednn.json``; every other member is copied unchanged."""
    with atomic_path(path) as tmp, zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            dst.writestr(item, blob if _is_meta(item.filename) else src.read(item))


@contextlib.contextmanager
def quiet_jit() -> Iterator[None]:
    """torch 2.13 deprecates ``torch.jit``; the warning is noise for our users."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*torch.jit.*")
        yield


@contextlib.contextmanager
def weights_only_env() -> Iterator[None]:
    """``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` for the duration of the block."""
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old
