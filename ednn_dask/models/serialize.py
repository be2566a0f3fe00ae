"""Saving and loading models: the exported tile network plus its metadata.

A saved model is a single file:

* ``*.pt2`` — a ``torch.export`` archive (``torch.export.save``), or
* ``*.pt`` / ``*.ts`` — a TorchScript archive (``torch.jit.save``),

each carrying ``ednn.json`` as an extra file: focus, context, channels,
pixel spacing and units, label scaling, subnet spec, training description and
versions (keys: :mod:`._schema`; read through :class:`.card.ModelCard`). The
evaluator derives the halo (``c``) and the tiling from that file alone; no
Python class of ours is needed to run the network. For a VALID conv subnet
whose stride divides the focus the ``.pt2`` program maps whole padded fields
to per-tile contributions (``program.kind "field"``, one field per call, dynamic tile
counts): halo sharing and per-tile evaluation both run that program; other
models hold the per-tile program (``"tiles"``). :func:`upgrade_model`
re-saves a file of an older format in the current one.

Loading (:mod:`._load`) reads the file once and works on those bytes only. It
reads and validates ``ednn.json`` straight from the zip archive
(:mod:`._metadata`, :meth:`.card.ModelCard.validate`), refuses files without
it, and checks every member of the archive against what :func:`save_model`
(:mod:`._save`) writes before torch sees the archive (:mod:`._safety`): no
member that torch would unpickle with the general unpickler, compile into
code that runs on load, or ``eval``/``exec`` gets through, so a model file
cannot run code. After loading, the network's graph is checked against the
same list of ops and its input tile shape against the metadata
(:meth:`.card.ModelCard.check_program`).

This module gathers those names in one place.
"""
from __future__ import annotations

from ._errors import ModelFileError
from ._load import load_model
from ._loaded import LoadedModel
from ._metadata import read_card, read_metadata, update_metadata
from ._save import save_model
from ._schema import FORMAT, FORMAT_VERSION
from ._upgrade import upgrade_model

__all__ = [
    "ModelFileError",
    "LoadedModel",
    "save_model",
    "load_model",
    "read_card",
    "read_metadata",
    "update_metadata",
    "upgrade_model",
    "FORMAT",
    "FORMAT_VERSION",
]
