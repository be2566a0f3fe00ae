"""Large-domain evaluation with Dask: where the total is reduced.

:func:`plan_evaluation` resolves the model and how it runs, opens the
source (:mod:`._source`) and checks everything that needs no pixels,
including the output path; :func:`run_plan` builds the graph and reduces
the total. A raster is rechunked to focus-aligned chunks and one
``map_overlap`` call with ``depth = c`` and periodic boundaries hands
every chunk its context; a structure file needs no raster at all: each
task draws its chunk *with* the context border from the atoms that reach
it, so no pixels move between workers. The block function runs the
model's tile code; a float64 tree reduction gives the total. For a model
with a domain the blocks give feature distances too, and the same compute
reduces the uncertainty and finds the tiles out of the domain (:mod:`._domain`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import config
from .._outputs import OutputLock, check_output
from ..errors import EDNNError
from ._domain import domain_graph, summarise
from ._errors import EvaluationError
from ._result import EvaluationResult
from ._running import compute_on_cluster, new_run, running
from ._source import Source, aligned_chunks, open_raster, open_source
from ._store import DOMAIN_MAPS, KIND, TileStore
from ._worker import ModelRef, block_contributions, block_maps, cached_model
from ..models.card import ModelCard
from ..models.inference import RunMode, resolve_mode

if TYPE_CHECKING:
    from ..domain import DomainSpec

__all__ = ["EvaluationError", "EvaluationResult", "Plan", "aligned_chunks", "evaluate", "open_raster",
           "plan_evaluation", "run_plan", "BOUNDARY"]

#: User words for the edge treatment, translated once for Dask.
BOUNDARY = {"wrap": "periodic", "periodic": "periodic"}


@dataclass
class Plan:
    """Everything decided before the computation: model, how it runs, the source, chunks and output."""

    model_path: str
    model_bytes: bytes
    ref: ModelRef
    card: ModelCard
    mode: RunMode
    source: Source
    array: Any
    small: bool
    out_chunks: tuple[tuple[int, ...], tuple[int, ...]]
    split_every: int
    out: Path | None = None
    overwrite: bool = False
    n_atoms: int | None = None
    #: the model's domain, or ``None``: then only contributions are computed
    domain: DomainSpec | None = None

    @property
    def focus(self) -> int:
        return self.card.focus

    @property
    def context(self) -> int:
        return self.card.context

    def provenance(self) -> dict[str, Any]:
        """What makes this run's numbers: a resumed store must have been made by the same."""
        import torch

        from .. import __version__

        reg = self.source.registration
        return {
            "input": {"kind": self.source.kind, "fingerprint": self.source.fingerprint},
            "model": {"name": self.card.name, "sha256": self.ref.token},
            "options": {**self.mode.as_dict(), "tile_chunks": [list(self.out_chunks[0]), list(self.out_chunks[1])],
                        "registration": reg, **({"maps": DOMAIN_MAPS} if self.domain is not None else {})},
            "versions": {"ednn_dask": __version__, "torch": torch.__version__.split("+")[0]},
        }


def plan_evaluation(
    source,
    model=None,
    chunk: int | None = None,
    out: str | os.PathLike | None = None,
    split_every: int | None = None,
    n_atoms: int | None = None,
    halo_sharing: bool | None = None,
    bf16: bool | None = None,
    overwrite: bool = False,
) -> Plan:
    """Check an evaluation and decide how it runs, without computing (see :func:`evaluate`).

    Everything that can be checked without the pixels is checked here:
    model file, source shape, channels, spacing and tiling against the
    model, the output path. The CLI plans before it starts a cluster.

    Raises
    ------
    EvaluationError, ModelFileError, OutputError
    """
    from ..domain import DomainSpec
    from ..models import LoadedModel, read_card, resolve_model

    model = config.get("evaluate.model", model)
    if isinstance(model, LoadedModel):
        raise EvaluationError("pass a model name or path: workers load the file themselves")
    path = resolve_model(model)
    data = Path(path).read_bytes()
    ref = ModelRef.from_path(path, data)
    card = read_card(path, tile_shape=False)
    f, c = card.focus, card.context
    try:
        mode = resolve_mode(card, config.get("evaluate.halo-sharing", halo_sharing),
                            config.get("evaluate.bf16", bf16))
    except EDNNError as exc:  # the wishes contradict the model
        raise EvaluationError(str(exc)) from None
    target = int(config.get("evaluate.chunk", chunk))
    # with halo sharing, chunk edges fall on window edges: per-tile values do not depend on the chunking
    unit = mode.window if mode.halo_sharing else f
    src = open_source(source, card, target, unit)  # the input's errors come before the network loads
    card = cached_model(ref).card  # the model file checked and its network loaded, as the workers will
    if out is not None:
        inputs = [p for p in (src.path, path) if p is not None]
        out = check_output(out, KIND, inputs=inputs, overwrite=overwrite)
    arr = src.array
    C, H, W = arr.shape
    small = min(H, W) < c
    if small:  # a periodic overlap cannot take more context than one chunk holds: tiny fields go in memory
        arr = arr.rechunk((C, H, W))
    elif src.atoms is None:
        arr = arr.rechunk((C, aligned_chunks(H, unit, c, target), aligned_chunks(W, unit, c, target)))
    out_chunks = (tuple(s // f for s in arr.chunks[1]), tuple(s // f for s in arr.chunks[2]))
    n_atoms = n_atoms if n_atoms is not None else src.attrs.get("n_atoms")
    return Plan(path, data, ref, card, mode, src, arr, small, out_chunks,
                int(config.get("evaluate.split-every", split_every)), out, overwrite,
                int(n_atoms) if n_atoms else None, DomainSpec.from_card(card))


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
    overwrite: bool = False,
) -> EvaluationResult:
    """Evaluate an EDNN over a large raster with Dask.

    Parameters
    ----------
    source : path or dask/numpy array
        Zarr raster store (``ednn-dask rasterize``), a structure file
        (rasterized chunk by chunk on the workers), or an array
        ``(C, H, W)``; arrays carry no spacing, so it is not checked.
    model : str, path
        Bundled model name or file; default ``ednn.evaluate.model``.
    client : distributed.Client, optional
        Run on this cluster; otherwise ``scheduler`` (default threads).
    chunk : int, optional
        Target chunk edge in pixels (rounded to a multiple of ``f``, or of
        the halo window with halo sharing); default ``ednn.evaluate.chunk``.
    out : path, optional
        Write the tile-contribution map (and coordinates in Å) to this Zarr
        store. Chunks finished by an interrupted run with the same input,
        model and options are reused; an unfinished run made otherwise is
        refused. An existing ``out`` is refused unless ``overwrite`` and it
        is a tile map written by ednn-dask (replaced when the new one is
        complete); the input is never overwritten. For a model with a
        domain the store also holds ``d2``, ``uncertainty`` and
        ``out_of_domain`` maps (see ``docs/evaluate.md``). Two runs cannot write
        one ``out`` at once.
    split_every : int, optional
        Fan-in of the float64 tree reduction; default ``ednn.evaluate.split-every``.
    progress : bool
        Show a progress bar (local schedulers) or Dask's progress (distributed).
    halo_sharing : bool, optional
        Run the conv stack once per window of ``ednn.predict.halo-window``
        pixels instead of once per tile: exact for VALID conv models whose
        focus is a multiple of the stride (``benchmarks/bench_halo_sharing.py``
        measures the speed-up). ``None`` (``ednn.evaluate.halo-sharing``)
        turns it on whenever the model allows it; chunks are then multiples
        of the window, so per-tile contributions are the same for every
        chunking. ``True`` fails for a model that does not allow it;
        ``False`` forces per-tile.
    bf16 : bool, optional
        Run the conv stack under bfloat16 autocast (needs ``halo_sharing``;
        label scaling, baseline and the float64 total stay exact); its error
        is measured by ``benchmarks/bench_bf16.py``; off by default
        (``ednn.evaluate.bf16``).
    overwrite : bool
        Replace an existing ``out`` written by ednn-dask, or discard an
        unfinished run there.

    Returns
    -------
    EvaluationResult
        With ``uncertainty`` and the tiles out of the model's domain
        (``domain_warning``) for a model with a domain.
    """
    plan = plan_evaluation(source, model, chunk=chunk, out=out, split_every=split_every, n_atoms=n_atoms,
                           halo_sharing=halo_sharing, bf16=bf16, overwrite=overwrite)
    return run_plan(plan, client=client, scheduler=scheduler, progress=progress)


def run_plan(plan: Plan, client=None, scheduler: str | None = None, progress: bool = False) -> EvaluationResult:
    """Compute a planned evaluation (:func:`plan_evaluation`) on ``client`` or a local ``scheduler``."""
    if client is not None:
        from ._plugin import EDNNWorkerPlugin

        # every worker, including ones that join or restart later: torch threads + the model preloaded
        client.register_plugin(EDNNWorkerPlugin(plan.ref, plan.model_bytes))
    if plan.out is None:
        return _run(plan, None, client, scheduler, progress)
    with OutputLock(plan.out):
        check_output(plan.out, KIND, overwrite=plan.overwrite)  # again, now that no other run can write it
        store = TileStore.open(plan.out, plan.out_chunks, plan.focus, plan.source.attrs, plan.card,
                               plan.provenance(), restart=plan.overwrite, domain=plan.domain is not None)
        return _run(plan, store, client, scheduler, progress)


def _graph(plan: Plan, store: TileStore | None, run: str):
    """The lazy ``(n_y, n_x)`` tile-contribution map of a plan, each chunk read from ``store`` when done.

    For a model with a domain: the ``(2, n_y, n_x)`` maps of contributions and
    feature distances ``d2`` (the store gets each chunk's uncertainty too).
    Every block runs under :func:`~._running.running` for ``run``, so a failed run can wait for its blocks.
    """
    import dask.array as da

    c = plan.context
    ref, mode, spec = plan.ref, plan.mode, plan.domain
    atoms_ref, small = plan.source.atoms, plan.small
    tile_offsets = [np.concatenate([[0], np.cumsum(ch)]) for ch in plan.out_chunks]  # first tile of each chunk

    def contributions(loc, block):
        """Tile maps of chunk ``loc`` = (iy, ix); ``block()`` gives it with its context."""
        with running(run):
            if store is not None and loc is not None:
                done = store.read_done(*loc)
                if done is not None:
                    return done
            origin = (int(tile_offsets[0][loc[0]]), int(tile_offsets[1][loc[1]])) if loc is not None else (0, 0)
            if spec is None:
                res, extra = block_contributions(block(), ref, mode, tile_origin=origin), {}
            else:
                from ..domain import tile_sigma

                res = block_maps(block(), ref, mode, tile_origin=origin)
                extra = {"uncertainty": tile_sigma(spec, res[1])}
            if store is not None and loc is not None:
                store.write(*loc, res, **extra)
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

        loc = tuple(block_info[None]["chunk-location"][-2:])
        return contributions(loc, lambda: raster_block(atoms_ref, block_info, halo=c))

    # the raster's channel axis becomes the maps' axis, or goes where there is one map
    out = {"chunks": plan.out_chunks, "drop_axis": 0} if spec is None else {"chunks": ((2,), *plan.out_chunks)}
    out.update(dtype=np.float64, meta=np.empty((0,) * len(out["chunks"]), np.float64))
    if atoms_ref is not None and not small:
        # each task draws its chunk with the context border straight from the atoms: no halo exchange
        # between workers and one task per chunk instead of map_overlap's slicing and concatenation
        return da.map_blocks(atoms_fn, chunks=out["chunks"], dtype=np.float64, meta=out["meta"])
    if small:
        return da.map_blocks(block_fn, plan.array, **out)
    return da.map_overlap(
        block_fn,
        plan.array,
        depth={0: 0, 1: c, 2: c},
        boundary={0: "none", 1: BOUNDARY["wrap"], 2: BOUNDARY["wrap"]},
        trim=False,
        allow_rechunk=False,
        **out,
    )


def _run(plan: Plan, store: TileStore | None, client, scheduler, progress) -> EvaluationResult:
    run = new_run()
    maps, spec = _graph(plan, store, run), plan.domain
    todo = (maps if spec is None else maps[0]).sum(dtype=np.float64, split_every=plan.split_every)
    if spec is not None:  # one compute: the model runs once for the total, the uncertainty and the flags
        todo = domain_graph(todo, maps[1], spec, plan.out_chunks, plan.split_every, BOUNDARY["wrap"], store, run)
    t0 = time.perf_counter()
    try:
        values = _compute(todo, client, scheduler, progress, run)
    except EvaluationError:
        # bad input found while computing (NaN pixels, a damaged chunk): no partial results are kept;
        # interruptions (Ctrl-C, dead workers) keep them for resuming. No task is running any more here.
        if store is not None:
            store.discard()
        raise
    seconds = time.perf_counter() - t0
    f = plan.focus
    value = float(values if spec is None else values[0])
    domain = {} if spec is None else summarise(values, f, plan.source.attrs.get("spacing"))
    if store is not None:
        store.finish(value, plan.out, plan.overwrite, domain)
    _, H, W = plan.array.shape
    n_atoms, card = plan.n_atoms, plan.card
    return EvaluationResult(
        total=value,
        per_atom=value / n_atoms if n_atoms else None,
        tiles=(H // f) * (W // f),
        pixels=H * W,
        seconds=seconds,
        model=card.name,
        units=card.units,
        n_atoms=n_atoms,
        out=str(plan.out) if plan.out is not None else None,
        extra={"chunks": [list(plan.array.chunks[1]), list(plan.array.chunks[2])], "focus": f,
               "context": plan.context, "halo_sharing": plan.mode.halo_sharing, "bf16": plan.mode.bf16,
               "channels_last": plan.mode.channels_last,
               **plan.source.registration},
        **domain,
    )


def _compute(total, client, scheduler, progress, run: str):
    """The total, or the values of :func:`._domain.domain_graph`.

    When this raises, no task of the run is still running (on the cluster or here).
    """
    if client is not None:
        return compute_on_cluster(total, client, run, progress, config.get("evaluate.cancel-timeout"))
    from .._compute import compute_local

    return compute_local(total, scheduler or config.get("evaluate.scheduler"), progress)
