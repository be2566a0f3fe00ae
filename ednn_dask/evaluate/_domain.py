"""A model's domain over a whole sheet: total uncertainty, out-of-domain tiles and where they are.

For a model with a domain every chunk gives two maps, contributions and
feature distances ``d2`` (:func:`._worker.block_maps`). The per-tile
uncertainty is elementwise (:func:`ednn_dask.domain.tile_sigma`). Whether a
tile is out of the domain also depends on the ``window_tiles`` tiles around
it, so :func:`flag_map` is one ``map_overlap`` of
:func:`ednn_dask.domain.tile_flags` — the in-memory function — over the
lazy ``d2`` map with a periodic border of half a window: each chunk sees
its neighbours' tiles, and no chunk is judged alone.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ._running import running

__all__ = ["domain_graph", "flag_map", "summarise", "circular_span"]


def _flags(block: np.ndarray, spec) -> np.ndarray:
    from ..domain import tile_flags

    return tile_flags(spec, block, periodic=True)


def _sigma2(block: np.ndarray, spec) -> np.ndarray:
    from ..domain import tile_sigma

    return tile_sigma(spec, block) ** 2


def flag_map(d2, spec, boundary: str = "periodic"):
    """The lazy ``bool`` map of tiles outside the domain of ``spec`` (a ``DomainSpec``), for a lazy ``d2`` map.

    Equal to ``tile_flags(spec, d2.compute())``: the window is the whole
    map's (``window_tiles``, at most the map's edge), and every chunk gets
    half a window of border (``boundary``: Dask's ``"periodic"`` on the
    periodic sheet; chunks smaller than the border are merged first).
    Local means are summed in another order than over the whole map, so a
    tile whose mean lies within float64 round-off of the limit could come
    out the other way.
    """
    import dask.array as da

    w = max(1, min(spec.window_tiles, *d2.shape))
    # the whole map's window: every padded block is at least w tiles wide, so tile_flags keeps it
    local = dataclasses.replace(spec, window_tiles=w)
    return da.map_overlap(_flags, d2, depth=w // 2, boundary=boundary, trim=True, allow_rechunk=True,
                          dtype=bool, meta=np.empty((0, 0), bool), spec=local)


def domain_graph(total, d2, spec, out_chunks, split_every: int, boundary: str = "periodic", store=None,
                 run: str = ""):
    """One lazy value for the whole run: ``(total, sum of sigma^2, tiles out, rows with one, columns with one)``.

    ``d2`` is the lazy feature-distance map in chunks ``out_chunks``;
    ``boundary`` the edge treatment of :func:`flag_map`. With a ``store``
    the ``out_of_domain`` map is written chunk by chunk on the way (under
    :func:`~._running.running` for ``run``, like the tile maps).
    """
    import dask

    var = d2.map_blocks(_sigma2, spec=spec, dtype=np.float64).sum(dtype=np.float64, split_every=split_every)
    flags = flag_map(d2, spec, boundary).rechunk(out_chunks)  # back to the store's chunks: one writer per zarr chunk
    if store is not None:
        flags = flags.map_blocks(_store_flags, store=store, run=run, dtype=bool, meta=np.empty((0, 0), bool))
    n = flags.sum(dtype=np.int64, split_every=split_every)
    rows, cols = flags.any(axis=1, split_every=split_every), flags.any(axis=0, split_every=split_every)
    return dask.delayed(tuple)([total, var, n, rows, cols])


def _store_flags(flags: np.ndarray, store, run: str, block_info=None) -> np.ndarray:
    with running(run):
        store.write_flags(*block_info[0]["chunk-location"], flags)
    return flags


def circular_span(hit: np.ndarray) -> tuple[int, int] | None:
    """The shortest periodic index range ``[start, stop)`` that holds every ``True`` of ``hit``.

    ``start > stop`` when the range crosses the end of the axis; ``(0, n)``
    when every gap is a single index; ``None`` when nothing is hit.
    """
    idx = np.flatnonzero(hit)
    if idx.size == 0:
        return None
    n = hit.size
    gaps = np.diff(np.append(idx, idx[0] + n))  # from each hit to the next one, around the axis
    k = int(np.argmax(gaps))
    if gaps[k] == 1:
        return 0, n
    return int(idx[(k + 1) % idx.size]), int(idx[k]) + 1  # all but the largest empty stretch


def summarise(values, focus: int, spacing) -> dict[str, Any]:
    """The :class:`~._result.EvaluationResult` fields of a model's domain from :func:`domain_graph`'s values.

    ``spacing`` is the raster's pixel spacing ``(h_y, h_x)`` in Å (1 where unknown).
    """
    _, var, n, rows, cols = values
    h = np.broadcast_to(np.asarray(spacing or [1.0, 1.0], float), (2,))
    ty, tx = focus * float(h[0]), focus * float(h[1])  # tile edge, Å
    box = None
    if n:
        (y0, y1), (x0, x1) = circular_span(rows), circular_span(cols)
        box = {"tiles_y": [y0, y1], "tiles_x": [x0, x1], "y": [y0 * ty, y1 * ty], "x": [x0 * tx, x1 * tx]}
    return {"uncertainty": float(np.sqrt(var)), "out_of_domain_tiles": int(n), "out_of_domain_box": box}
