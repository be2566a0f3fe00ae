"""The tile-contribution map on disk: written chunk by chunk, resumable, and only by the run that matches it.

For a model with a domain the store also holds, beside ``tiles``, each
tile's feature distance ``d2`` and uncertainty ``uncertainty`` (written with
its chunk, so they resume with it) and the ``out_of_domain`` map (computed
from the whole ``d2`` map, written again by every run until it completes).

A run writes ``.partial-<name>`` beside ``out`` and renames it to ``out``
when the total is known. The store records what made it (``provenance``:
input fingerprint, model sha256, every option that changes a number,
versions); an interrupted run is resumed only by a run with the same
provenance, anything else is refused.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .._outputs import marker, replace_store, store_kind
from ._errors import EvaluationError

__all__ = ["TileStore", "KIND", "partial_path"]

#: ``ednn_dask.kind`` of a tile map.
KIND = "tile-map"

#: The per-tile maps a model with a domain gives (root attribute ``maps``).
DOMAIN_MAPS = ["contribution", "feature_distance2"]


#: Arrays of a model with a domain beside ``tiles``: name, dtype, fill value, what it is.
_DOMAIN_ARRAYS = (
    ("d2", "float32", np.nan, "feature distance d2 of the tile from the training tiles (squared Mahalanobis)"),
    ("uncertainty", "float32", np.nan, "uncertainty (1 sigma) of the tile contribution"),
    ("out_of_domain", "bool", False, "tile outside the model's domain (alone or with its neighbourhood)"),
)


def partial_path(out: str | os.PathLike) -> Path:
    """Where an unfinished run writes ``out``."""
    out = Path(out)
    return out.with_name(f".partial-{out.name}")


def _differences(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k}.{d}" for d in _differences(a, b)]
        elif a != b:
            out.append(k)
    return out


class TileStore:
    """The tile-contribution map on disk, written chunk by chunk, with a done mask for resuming."""

    def __init__(self, path: Path, root):
        self.path = path
        self.offsets = [np.concatenate([[0], np.cumsum(ch)]) for ch in root.attrs["tile_chunks"]]
        self.domain = list(root.attrs.get("maps", [])) == DOMAIN_MAPS  #: ``d2``, ``uncertainty``, ``out_of_domain`` too
        self._root = root

    def __getstate__(self):  # workers reopen the store from its path
        return {"path": self.path, "offsets": self.offsets, "domain": self.domain}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._root = None

    @property
    def root(self):
        if self._root is None:
            import zarr

            self._root = zarr.open_group(str(self.path), mode="r+")
        return self._root

    @classmethod
    def open(cls, out, out_chunks, focus: int, attrs: dict, card, provenance: dict[str, Any],
             restart: bool = False, domain: bool = False) -> "TileStore":
        """Resume the unfinished run of ``out`` when its provenance matches, else start one.

        ``domain``: the model has a domain, so the store holds its maps too (the
        provenance says so: a store without them is never resumed). ``restart``
        discards an unfinished run of ours that another input, model or options made; without it such a mismatch is refused. A
        matching unfinished run is always resumed. The caller holds the output lock
        and has checked ``out`` itself (:func:`ednn_dask._outputs.check_output`).
        """
        import zarr

        tmp = partial_path(out)
        if tmp.exists():
            if store_kind(tmp) != KIND:
                raise EvaluationError(f"{tmp} is in the way and is not a tile map written by ednn-dask; remove it")
            root = zarr.open_group(str(tmp), mode="r+")
            diff = _differences(dict(root.attrs.get("provenance", {})), provenance)
            if not diff:
                return cls(tmp, root)  # resume the interrupted run (with --overwrite too: the same command again)
            if not restart:
                raise EvaluationError(
                    f"{out} has an unfinished run made with a different {', '.join(diff)}; re-run that command "
                    "to finish it, pass --overwrite to discard it, or choose another --out"
                )
            shutil.rmtree(tmp)
        return cls._create(tmp, out_chunks, focus, attrs, card, provenance, domain)

    @classmethod
    def _create(cls, tmp: Path, out_chunks, focus, attrs, card, provenance, domain: bool) -> "TileStore":
        import zarr

        root = zarr.open_group(str(tmp), mode="w")
        ny, nx = sum(out_chunks[0]), sum(out_chunks[1])
        spacing = np.broadcast_to(np.asarray(attrs.get("spacing") or [1.0, 1.0], float), (2,))
        # zarr chunks = the regular Dask block: no two blocks ever write the same zarr chunk
        zchunks = (out_chunks[0][0], out_chunks[1][0])
        root.create_array("tiles", shape=(ny, nx), chunks=zchunks,
                          dtype="float64", dimension_names=["y", "x"], fill_value=np.nan)
        maps = {"tiles": {"units": card.units, "long_name": "EDNN tile contribution"}}
        if domain:
            for name, dtype, fill, what in _DOMAIN_ARRAYS:
                root.create_array(name, shape=(ny, nx), chunks=zchunks, dtype=dtype, fill_value=fill,
                                  dimension_names=["y", "x"])
                maps[name] = {"units": card.units if name == "uncertainty" else "1", "long_name": what}
        root.create_array("done", shape=(len(out_chunks[0]), len(out_chunks[1])), chunks=(1, 1),
                          dtype="bool", fill_value=False, dimension_names=["chunk_y", "chunk_x"])
        for name, n, h in (("y", ny, spacing[0]), ("x", nx, spacing[1])):
            coord = root.create_array(name, shape=(n,), chunks=(n,), dtype="float64", dimension_names=[name])
            coord[:] = (np.arange(n) * focus + focus / 2) * h  # tile-centre coordinates in Å
            coord.attrs.update({"units": "Å", "long_name": f"{name} of the focus-region centre"})
        for name, meta in maps.items():
            root[name].attrs.update({**meta, "focus_px": focus})
        tile_chunks = [list(out_chunks[0]), list(out_chunks[1])]
        root.attrs.update({"tile_chunks": tile_chunks, "model": card.name, "complete": False,
                           "provenance": provenance, **marker(KIND), **({"maps": DOMAIN_MAPS} if domain else {})})
        return cls(tmp, root)

    def read_done(self, iy: int, ix: int):
        """The stored maps of chunk ``(iy, ix)`` when it is done (as :meth:`write` took them), else ``None``."""
        if not self.root["done"][iy, ix]:
            return None
        (y0, y1), (x0, x1) = self._span(iy, ix)
        tiles = self.root["tiles"][y0:y1, x0:x1]
        if not self.domain:
            return tiles
        return np.stack([tiles, self.root["d2"][y0:y1, x0:x1].astype(np.float64)])

    def write(self, iy: int, ix: int, values: np.ndarray, uncertainty: np.ndarray | None = None) -> None:
        """Store chunk ``(iy, ix)``: ``values`` is its contribution map or, with a domain, ``(contribution, d2)``.

        ``uncertainty`` (with a domain): the chunk's per-tile sigma in the model's units.
        """
        (y0, y1), (x0, x1) = self._span(iy, ix)
        if self.domain:
            self.root["d2"][y0:y1, x0:x1] = values[1].astype(np.float32)  # the network's float32: no loss
            self.root["uncertainty"][y0:y1, x0:x1] = uncertainty.astype(np.float32)
            values = values[0]
        self.root["tiles"][y0:y1, x0:x1] = values
        self.root["done"][iy, ix] = True  # after the values: a chunk marked done is always complete

    def write_flags(self, iy: int, ix: int, flags: np.ndarray) -> None:
        """Store the ``out_of_domain`` map of chunk ``(iy, ix)`` (rewritten by every run until complete)."""
        (y0, y1), (x0, x1) = self._span(iy, ix)
        self.root["out_of_domain"][y0:y1, x0:x1] = flags

    def discard(self) -> None:
        """Delete this unfinished store (input found bad while computing: nothing partial is kept)."""
        if self.path.name.startswith(".partial-"):
            shutil.rmtree(self.path, ignore_errors=True)

    def finish(self, total: float, final: Path, overwrite: bool = False, summary: dict | None = None) -> None:
        """Record the total (and ``summary``: more root attributes) and move the store to ``final``.

        An older tile map of ours at ``final`` is replaced only with ``overwrite`` (and then atomically:
        :func:`ednn_dask._outputs.replace_store`); anything else there is refused and this run's
        store stays where it is, to be resumed.
        """
        self.root.attrs.update({"complete": True, "total": total, **(summary or {})})
        if final.exists() and not overwrite:
            raise EvaluationError(f"{final} appeared while this run was writing it; the finished map is in "
                                  f"{self.path}: move it yourself or run again with --overwrite")
        replace_store(self.path, final, KIND)
        self.path, self._root = final, None

    def _span(self, iy, ix):
        oy, ox = self.offsets
        return (oy[iy], oy[iy + 1]), (ox[ix], ox[ix + 1])
