"""ednn-dask: extensive deep neural networks evaluated over large domains.

The package layout follows the pipeline: ``systems`` (what is simulated) ->
``tiles`` (where tiles are cut) -> ``nn`` (subnet, EDNN and the sum) ->
``train`` -> ``models`` (saved models) -> ``cli``.

Importing the package has no side effects and does not import torch; the
public names below are loaded on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "EDNN": "ednn_dask.nn",
    "TileNet": "ednn_dask.nn",
    "DenseSubnet": "ednn_dask.nn",
    "ConvSubnet": "ednn_dask.nn",
    "tile_field": "ednn_dask.tiles",
    "periodic_pad": "ednn_dask.tiles",
    "extract_tiles": "ednn_dask.tiles",
    "load_model": "ednn_dask.models",
    "save_model": "ednn_dask.models",
    "get_model": "ednn_dask.models",
    "bundled_models": "ednn_dask.models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ednn_dask' has no attribute {name!r}")
