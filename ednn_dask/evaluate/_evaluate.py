"""Large-domain evaluation with Dask: where the total is reduced.

A raster (Zarr array ``(channel, y, x)``) opens lazily as a Dask array, is
rechunked to focus-aligned chunks, and one ``map_overlap`` call with
``depth = c`` and periodic boundaries hands every chunk its context; the
block function runs the model's tile code; a float64 tree reduction gives
the total. A structure file (atoms) needs no raster at all: each task draws
its chunk *with* the context border from the atoms that reach it, so no
pixels move between workers and the graph has one task per chunk.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import config
from ._worker import ModelRef, block_contributions, cached_model

__all__ = ["EvaluationError", "EvaluationResult", "evaluate", "open_raster", "BOUNDARY"]

#: User words for the edge treatment, translated once for Dask.
BOUNDARY = {"wrap": "periodic", "periodic": "periodic"}


class EvaluationError(ValueError):
    """Input that cannot be evaluated (bad raster, spacing mismatch, ...)."""


@dataclass
class EvaluationResult:
    """Outcome of :func:`evaluate`.

    Attributes
    ----------
    total : float
        Sum of all tile contributions (float64), in the model's units.
    per_atom : float or None
        ``total / n_atoms`` when the raster records its atom count.
    tiles, pixels : int
        Tiles and pixels evaluated.
    seconds : float
        Wall time of the computation.
    model : str
    out : str or None
        Zarr store with the tile-contribution map, if written.
    """

    total: float
    per_atom: float | None
    tiles: int
    pixels: int
    seconds: float
    model: str
    units: str = ""
    n_atoms: int | None = None
    out: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "per_atom": self.per_atom,
            "tiles": self.tiles,
            "pixels": self.pixels,
            "seconds": self.seconds,
            "model": self.model,
        }


def open_raster(source) -> tuple[Any, dict[str, Any]]:
    """Open a raster Zarr store lazily: ``(dask array (C, H, W), attrs)``.

    ``source`` is a path to a group holding ``raster`` (as written by
    ``ednn-dask rasterize``) or to the array itself.
    """
    import dask.array as da
    import zarr

    path = str(source)
    if not Path(path).exists():
        raise EvaluationError(f"raster not found: {path}")
    try:
        node = zarr.open(path, mode="r")
        if isinstance(node, zarr.Group):
            if "raster" not in node:
                raise EvaluationError(f"{path} has no 'raster' array (write one with `ednn-dask rasterize`)")
            node = node["raster"]
        attrs = dict(node.attrs)
        arr = da.from_zarr(node)
    except EvaluationError:
        raise
    except Exception as exc:  # zarr raises many types for corrupt stores
        raise EvaluationError(f"cannot open {path} as a Zarr raster ({type(exc).__name__}: {exc})") from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise EvaluationError(f"raster must be (channel, y, x) or (y, x), got shape {arr.shape}")
    if arr.dtype.kind != "f":
        raise EvaluationError(f"raster must hold floating-point pixels, got dtype {arr.dtype}")
    if 0 in arr.shape:
        raise EvaluationError(f"raster is empty: shape {arr.shape}")
    return arr, attrs


def _check_against_model(arr, attrs: dict, meta: dict, rtol: float = 1e-6) -> None:
    f = meta["focus"]
    channels = meta["channels"]
    if arr.shape[0] != channels:
        raise EvaluationError(f"raster has {arr.shape[0]} channels, the model expects {channels}")
    want = meta.get("pixel_spacing", {}).get("value")
    have = attrs.get("spacing")
    if want is not None:
        if have is None:
            raise EvaluationError("raster has no 'spacing' attribute; cannot check it against the model's pixel spacing")
        want = np.broadcast_to(np.asarray(want, float), (2,))
        have = np.broadcast_to(np.asarray(have, float), (2,))
        if not np.allclose(have, want, rtol=rtol, atol=0):
            raise EvaluationError(
                f"raster pixel spacing {have.tolist()} Å differs from the model's {want.tolist()} Å"
            )
    bad = [s for s in arr.shape[1:] if s % f]
    if bad:
        raise EvaluationError(
            f"raster size {arr.shape[1]}x{arr.shape[2]} px is not a multiple of the model's focus f={f}"
        )


def aligned_chunks(size: int, focus: int, context: int, target: int) -> tuple[int, ...]:
    """Split ``size`` pixels into chunks that are multiples of ``focus``, near ``target``, none below ``context``.

    The last chunk may be smaller (but stays a multiple of ``focus``); when it
    would fall below ``context`` it is merged into its neighbour, because a
    periodic overlap of depth ``c`` needs every chunk to hold ``c`` pixels.
    """
    step = max(focus, (target // focus) * focus)
    step = max(step, -(-context // focus) * focus)
    chunks = [step] * (size // step)
    rest = size - sum(chunks)
    if rest:
        chunks.append(rest)
    if len(chunks) > 1 and chunks[-1] < context:
        last = chunks.pop()
        chunks[-1] += last
    return tuple(chunks)


def evaluate(
    source,
    model=None,
    client=None,
    chunk: int | None = None,
    out: str | os.PathLike | None = None,
    split_every: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
    n_atoms: int | None = None,
    halo_sharing: bool | None = None,
    bf16: bool | None = None,
) -> EvaluationResult:
    """Evaluate an EDNN over a large raster with Dask.

    Parameters
    ----------
    source : path or dask/numpy array
        Zarr raster store (``ednn-dask rasterize``), or an array
        ``(C, H, W)``; arrays carry no spacing, so it is not checked.
    model : str, path or LoadedModel, optional
        Bundled model name or file; default ``ednn.evaluate.model``.
    client : distributed.Client, optional
        Run on this cluster; otherwise ``scheduler`` (default threads).
    chunk : int, optional
        Target chunk edge in pixels (rounded to a multiple of ``f``, or of
        the halo window with halo sharing); default ``ednn.evaluate.chunk``.
    out : path, optional
        Write the tile-contribution map (and coordinates in Å) to this Zarr
        store. Chunks finished by an interrupted run are reused.
    split_every : int, optional
        Fan-in of the float64 tree reduction; default ``ednn.evaluate.split-every``.
    progress : bool
        Show a progress bar (local schedulers) or Dask's progress (distributed).
    halo_sharing : bool, optional
        Run the conv stack once per window of ``ednn.predict.halo-window``
        pixels instead of once per tile: exact for VALID conv models whose
        focus is a multiple of the stride, about 3x faster for the bundled
        sheet models. ``None`` (``ednn.evaluate.halo-sharing``) turns it on
        whenever the model allows it; chunks are then multiples of the window,
        so per-tile contributions are the same for every chunking. ``True``
        fails for a model that does not allow it; ``False`` forces per-tile.
    bf16 : bool, optional
        Run the conv stack under bfloat16 autocast (needs ``halo_sharing``;
        label scaling, baseline and the float64 total stay exact). Measured
        here with channels_last: 2.3-2.8x the fp32 speed for +0.05-0.08
        meV/atom held-out MAE, but single cells move by up to 2.6 meV/atom
        (``benchmarks/bench_bf16.py``); off by default (``ednn.evaluate.bf16``).

    Returns
    -------
    EvaluationResult
    """
    import dask
    import dask.array as da

    from ..models import LoadedModel, resolve_model

    model = config.get("evaluate.model", model)
    if isinstance(model, LoadedModel):
        raise EvaluationError("pass a model name or path: workers load the file themselves")
    path = resolve_model(model)
    data = Path(path).read_bytes()
    ref = ModelRef.from_path(path, data)
    loaded = cached_model(ref)
    if client is not None:
        from ..cluster import EDNNWorkerPlugin

        # every worker, including ones that join or restart later: torch threads + the model preloaded
        client.register_plugin(EDNNWorkerPlugin(ref, data))
    meta = loaded.metadata
    f, c = int(meta["focus"]), int(meta["context"])
    shared, window = _halo_mode(loaded, config.get("evaluate.halo-sharing", halo_sharing))
    low = bool(config.get("evaluate.bf16", bf16))
    if low and not shared:
        raise EvaluationError(f"bf16 needs halo sharing, which model {loaded.name!r} does not allow")
    nhwc = shared and bool(config.get("predict.channels-last"))

    target = int(config.get("evaluate.chunk", chunk))
    # with halo sharing, chunk edges fall on window edges: per-tile values do not depend on the chunking
    unit = window if shared else f
    atoms_ref = None
    if isinstance(source, (str, os.PathLike)) and Path(source).is_file():
        arr, attrs, atoms_ref = _atoms_source(source, meta, target, unit)  # drawn in final chunks: no rechunk
    elif isinstance(source, (str, os.PathLike)):
        arr, attrs = open_raster(source)
    else:
        arr = da.asarray(source)
        arr = arr[None] if arr.ndim == 2 else arr
        attrs = {"spacing": meta.get("pixel_spacing", {}).get("value")}
        if arr.ndim != 3 or 0 in arr.shape:
            raise EvaluationError(f"raster must be a non-empty (channel, y, x) array, got shape {arr.shape}")
    _check_against_model(arr, attrs, meta)
    n_atoms = n_atoms if n_atoms is not None else attrs.get("n_atoms")

    C, H, W = arr.shape
    if min(H, W) < c:
        # a periodic overlap cannot take more context than one chunk holds: tiny fields go in memory
        arr = da.from_array(np.asarray(arr), chunks=(C, H, W))
        small = True
    else:
        small = False
        arr = arr.rechunk((C, aligned_chunks(H, unit, c, target), aligned_chunks(W, unit, c, target)))
    out_chunks = (tuple(s // f for s in arr.chunks[1]), tuple(s // f for s in arr.chunks[2]))

    store = _TileStore.open(out, arr.chunks, out_chunks, f, attrs, meta) if out is not None else None

    def contributions(loc, block):
        """Tile contributions of chunk ``loc`` = (iy, ix); ``block()`` gives it with its context."""
        if store is not None and loc is not None:
            done = store.read_done(*loc)
            if done is not None:
                return done
        res = block_contributions(block(), ref, shared, low, window, nhwc)
        if store is not None and loc is not None:
            store.write(*loc, res)
        return res

    def block_fn(block, block_info=None):
        loc = tuple(block_info[0]["chunk-location"][1:]) if block_info else None
        if small:
            import torch

            from ..tiles import periodic_pad

            return contributions(loc, lambda: periodic_pad(torch.from_numpy(np.asarray(block, np.float32)), c, 2).numpy())
        return contributions(loc, lambda: block)

    def atoms_fn(block_info=None):
        from ._worker import raster_block

        loc = tuple(block_info[None]["chunk-location"])
        return contributions(loc, lambda: raster_block(atoms_ref, block_info, halo=c))

    if atoms_ref is not None and not small:
        # each task draws its chunk with the context border straight from the atoms: no halo exchange
        # between workers and one task per chunk instead of map_overlap's slicing and concatenation
        contrib = da.map_blocks(atoms_fn, chunks=out_chunks, dtype=np.float64, meta=np.empty((0, 0), np.float64))
    elif small:
        contrib = da.map_blocks(block_fn, arr, drop_axis=0, chunks=out_chunks, dtype=np.float64,
                                meta=np.empty((0, 0), np.float64))
    else:
        contrib = da.map_overlap(
            block_fn,
            arr,
            depth={0: 0, 1: c, 2: c},
            boundary={0: "none", 1: BOUNDARY["wrap"], 2: BOUNDARY["wrap"]},
            trim=False,
            allow_rechunk=False,
            drop_axis=0,
            chunks=out_chunks,
            dtype=np.float64,
            meta=np.empty((0, 0), np.float64),
        )
    split = int(config.get("evaluate.split-every", split_every))
    total = contrib.sum(dtype=np.float64, split_every=split)
    t0 = time.perf_counter()
    try:
        value = _compute(total, client, scheduler, progress)
    except ValueError as exc:
        # bad pixels found while computing: an input error, so no partial results are kept;
        # interruptions (Ctrl-C, dead workers) keep them for resuming
        if store is not None:
            shutil.rmtree(store.path, ignore_errors=True)
        raise EvaluationError(str(exc)) from None
    seconds = time.perf_counter() - t0
    if store is not None:
        store.finish(value)
    tiles = (H // f) * (W // f)
    return EvaluationResult(
        total=value,
        per_atom=value / n_atoms if n_atoms else None,
        tiles=tiles,
        pixels=H * W,
        seconds=seconds,
        model=str(meta.get("name", Path(path).stem)),
        units=meta.get("target", {}).get("units", ""),
        n_atoms=int(n_atoms) if n_atoms else None,
        out=str(out) if out is not None else None,
        extra={"chunks": [list(arr.chunks[1]), list(arr.chunks[2])], "focus": f, "context": c, "halo_sharing": shared,
               "bf16": low, "channels_last": nhwc,
               **{k: attrs[k] for k in ("registration_shift", "registration_mirror_y") if k in attrs}},
    )


def _halo_mode(loaded, wanted: bool | None) -> tuple[bool, int]:
    """``(halo sharing on, window in pixels)``: ``wanted=None`` is the model's own choice (``default_ednn``)."""
    from ..models import ModelFileError

    if wanted is False:
        return False, 0
    if wanted:
        try:
            ednn = loaded.halo_shared()
        except ModelFileError as exc:
            raise EvaluationError(str(exc)) from None
    else:
        ednn = loaded.default_ednn()
        if not ednn.halo_sharing:
            return False, 0
    return True, ednn.window_tiles * ednn.focus


def _compute(total, client, scheduler, progress) -> float:
    if client is not None:
        fut = client.compute(total)
        if progress:
            from distributed import progress as dprogress

            dprogress(fut)
        return float(fut.result())
    sched = scheduler or config.get("evaluate.scheduler")
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return float(total.compute(scheduler=sched))
    return float(total.compute(scheduler=sched))


def _atoms_source(path, meta: dict, target: int, unit: int):
    """A lazy raster drawn chunk by chunk from a structure file, at the model's spacing, and its ``AtomsRef``.

    Chunks are multiples of ``unit`` (the focus, or the halo window) near
    ``target``: the chunks the evaluation uses, so the raster is never
    rechunked (which would move pixels between workers).
    """
    import dask.array as da

    from ..raster import StructureError
    from ..systems.large import load_atoms
    from ._worker import AtomsRef, raster_block

    inp = meta.get("input", {})
    if inp.get("kind") != "raster":
        raise EvaluationError(f"model {meta.get('name')!r} does not take rasters of atoms")
    spacing = meta["pixel_spacing"]["value"]
    try:
        atoms = load_atoms(path)
        grid = atoms.grid(spacing, lattice=inp.get("lattice"))
    except (StructureError, ValueError) as exc:
        raise EvaluationError(str(exc)) from None
    from ase.data import chemical_symbols

    unknown = sorted({chemical_symbols[z] for z in np.unique(atoms.numbers)} - set(inp["species"]))
    if unknown:
        raise EvaluationError(f"species {', '.join(unknown)} not known to the model (known: {', '.join(inp['species'])})")
    f, c = int(meta["focus"]), int(meta["context"])
    H, W = grid.shape
    if H % f or W % f:
        raise EvaluationError(f"sheet is {H}x{W} px at the model's spacing, not a multiple of the focus f={f}")
    chunks = (aligned_chunks(H, unit, c, target), aligned_chunks(W, unit, c, target))
    channels = inp.get("channels", "species")
    n_ch = len(inp["species"]) if channels == "species" else 1
    lattice = inp.get("lattice")
    try:  # the model's training cells sit on one lattice origin and orientation: move the sheet there (exact)
        reg = atoms.registration(lattice) if lattice else None
    except StructureError as exc:
        raise EvaluationError(str(exc)) from None
    ref = AtomsRef.from_path(path, spacing, inp["species"], channels, chunks, reg)
    arr = da.map_blocks(raster_block, ref=ref, chunks=((n_ch,), *chunks), dtype=np.float32,
                        meta=np.empty((0, 0, 0), np.float32))
    attrs = {"spacing": list(spacing), "n_atoms": int(atoms.numbers.size), "cell": list(atoms.lengths_xy)}
    if lattice:
        attrs.update(lattice=dict(lattice), **reg.as_attrs())
    return arr, attrs, ref


class _TileStore:
    """The tile-contribution map on disk, written chunk by chunk, with a done mask for resuming."""

    def __init__(self, path: Path, root):
        self.path = path
        self.offsets = [np.concatenate([[0], np.cumsum(ch)]) for ch in root.attrs["tile_chunks"]]
        self._root = root

    def __getstate__(self):  # workers reopen the store from its path
        return {"path": self.path, "offsets": self.offsets}

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
    def open(cls, out, in_chunks, out_chunks, focus, attrs, meta) -> "_TileStore":
        import zarr

        path = Path(out)
        tile_chunks = [list(out_chunks[0]), list(out_chunks[1])]
        if path.exists():
            root = zarr.open_group(str(path), mode="r+")
            if root.attrs.get("tile_chunks") != tile_chunks or root.attrs.get("model") != meta.get("name"):
                raise EvaluationError(f"{path} holds results of a different run; choose another --out")
            return cls(path, root)
        tmp = path.with_name(f".partial-{path.name}")
        if tmp.exists():
            root = zarr.open_group(str(tmp), mode="r+")
            if root.attrs.get("tile_chunks") == tile_chunks and root.attrs.get("model") == meta.get("name"):
                return cls(tmp, root)  # resume the interrupted run
            shutil.rmtree(tmp)
        root = zarr.open_group(str(tmp), mode="w")
        ny, nx = sum(out_chunks[0]), sum(out_chunks[1])
        spacing = np.broadcast_to(np.asarray(attrs.get("spacing") or [1.0, 1.0], float), (2,))
        # zarr chunks = the regular Dask block: no two blocks ever write the same zarr chunk
        root.create_array("tiles", shape=(ny, nx), chunks=(out_chunks[0][0], out_chunks[1][0]),
                          dtype="float64", dimension_names=["y", "x"], fill_value=np.nan)
        root.create_array("done", shape=(len(out_chunks[0]), len(out_chunks[1])), chunks=(1, 1),
                          dtype="bool", fill_value=False, dimension_names=["chunk_y", "chunk_x"])
        for name, n, h in (("y", ny, spacing[0]), ("x", nx, spacing[1])):
            coord = root.create_array(name, shape=(n,), chunks=(n,), dtype="float64", dimension_names=[name])
            coord[:] = (np.arange(n) * focus + focus / 2) * h  # tile-centre coordinates in Å
            coord.attrs.update({"units": "Å", "long_name": f"{name} of the focus-region centre"})
        root["tiles"].attrs.update({"units": meta.get("target", {}).get("units", ""),
                                    "long_name": "EDNN tile contribution", "focus_px": focus})
        root.attrs.update({"tile_chunks": tile_chunks, "model": meta.get("name"), "complete": False})
        return cls(tmp, root)

    def read_done(self, iy: int, ix: int):
        if not self.root["done"][iy, ix]:
            return None
        (y0, y1), (x0, x1) = self._span(iy, ix)
        return self.root["tiles"][y0:y1, x0:x1]

    def write(self, iy: int, ix: int, values: np.ndarray) -> None:
        (y0, y1), (x0, x1) = self._span(iy, ix)
        self.root["tiles"][y0:y1, x0:x1] = values
        self.root["done"][iy, ix] = True  # after the values: a chunk marked done is always complete

    def finish(self, total: float) -> None:
        self.root.attrs.update({"complete": True, "total": total})
        final = self.path.with_name(self.path.name.replace(".partial-", "", 1))
        if final != self.path:
            os.replace(self.path, final)
            self.path, self._root = final, None

    def _span(self, iy, ix):
        oy, ox = self.offsets
        return (oy[iy], oy[iy + 1]), (ox[ix], ox[ix + 1])
