"""``ednn-dask evaluate``: a sheet on a LocalCluster or on N batch jobs, planned before anything starts."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from ..errors import InputError
from ._types import at_least

__all__ = ["add_commands"]


def add_commands(sub, common) -> None:
    """Register ``evaluate`` on the subparsers ``sub``."""
    ev = sub.add_parser("evaluate", parents=[common], help="evaluate a model over a large sheet with Dask")
    ev.add_argument("sheet", help="Zarr raster (ednn-dask rasterize) or a structure file rasterized on the fly")
    ev.add_argument("--model", help="bundled model name or file (default: ednn.evaluate.model, porous-graphene)")
    ev.add_argument("--scheduler", choices=["local", "slurm", "pbs"], default=None,
                    help="local (default) LocalCluster, or a batch cluster through dask-jobqueue")
    ev.add_argument("--profile", help="cluster profile: bundled name (cluster/*.yaml) or YAML path")
    ev.add_argument("--nodes", type=at_least(1), default=None, help="batch jobs, one per node (slurm/pbs)")
    ev.add_argument("--cores", type=at_least(1), default=None, help="cores per job (overrides the profile)")
    ev.add_argument("--memory", default=None, help="memory per job, e.g. 120GB (overrides the profile)")
    ev.add_argument("--walltime", default=None, help="job walltime, e.g. 01:00:00 (overrides the profile)")
    ev.add_argument("--queue", default=None, help="partition / queue (overrides the profile)")
    ev.add_argument("--account", default=None, help="account / project (overrides the profile)")
    ev.add_argument("--dry-run", action="store_true", help="print the job script that would be submitted and exit")
    ev.add_argument("--workers", type=at_least(0), default=None,
                    help="local worker processes (default: cores / threads; 0 = no cluster, threads in-process)")
    ev.add_argument("--threads", type=at_least(1), default=1, help="threads per worker")
    ev.add_argument("--chunk", type=at_least(1), default=None, help="target chunk edge in pixels")
    ev.add_argument("--halo-sharing", action=argparse.BooleanOptionalAction, default=None,
                    help="run the conv stack once per window instead of once per tile (default: whenever the "
                    "model allows it; exact; speed-up in benchmarks/bench_halo_sharing.py)")
    ev.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast of the conv stack (needs halo sharing; see docs/evaluate.md for its error)")
    ev.add_argument("--out", help="write the tile-contribution map (xarray-readable Zarr, coordinates in Å)")
    ev.add_argument("--overwrite", action="store_true",
                    help="replace an --out tile map written by ednn-dask and an existing --png; discard an unfinished run "
                    "there that another input, model or options made")
    ev.add_argument("--png", help="energy-density map PNG (needs --out)")
    ev.add_argument("--json", action="store_true", help="print only a JSON summary")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=_cmd_evaluate)


def _interrupt_on_signals() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt, so jobs are cancelled and partial results kept.

    SIGINT is set explicitly: a process started in the background of a
    non-interactive shell inherits it ignored, and batch systems send SIGTERM.
    """
    import signal
    import threading

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, handler)


def _cmd_evaluate(args) -> int:
    from ..cluster import job_script, use_profile
    from ..evaluate import plan_evaluation, run_plan

    with use_profile(args.profile) as profile:
        spec, found = _batch_spec(args, profile)
        if args.dry_run:
            print(*found, sep="\n", file=sys.stderr, end="\n" if found else "")
            print(job_script(spec), end="")
            return 0
        _check_outputs(args)
        # everything that can be checked without pixels, before any cluster is asked for
        plan = plan_evaluation(args.sheet, args.model, chunk=args.chunk, out=args.out,
                               halo_sharing=args.halo_sharing, bf16=args.bf16 or None, overwrite=args.overwrite)
        print(*found, sep="\n", file=sys.stderr, end="\n" if found else "")
        _interrupt_on_signals()
        try:
            with _cluster(args, spec) as client:
                res = run_plan(plan, client=client, progress=not args.json and not args.quiet)
        except KeyboardInterrupt:
            if plan.out is not None:
                print("ednn-dask: interrupted; finished chunks are kept, re-run the same command to resume",
                      file=sys.stderr)
            raise
    if args.png:
        _draw_map(plan.out, args.png)
    _report(args, res)
    return 0


def _batch_spec(args, profile) -> tuple:
    """``(ClusterSpec or None, lines saying what batch-system detection found)``."""
    from ..cluster import resolve_batch

    overrides = {k: getattr(args, k) for k in ("cores", "memory", "walltime", "queue", "account")}
    scheduler = args.scheduler or profile.get("ednn", {}).get("cluster", {}).get("scheduler")  # None: detect
    found: list[str] = []  # said once the input has passed its checks too
    spec = resolve_batch(args.nodes, scheduler, args.profile, overrides, dry_run=args.dry_run,
                         log=None if args.json else found.append)
    if spec is None and (args.dry_run or any(v is not None for v in overrides.values())):
        raise InputError("--dry-run and job settings need --nodes, --scheduler slurm or pbs, or a batch --profile")
    return spec, found


def _check_outputs(args) -> None:
    from .._outputs import check_file_output

    if not Path(args.sheet).exists():
        raise InputError(f"sheet not found: {args.sheet}")
    if args.png and not args.out:
        raise InputError("--png needs --out (the tile map is read from it)")
    if args.png:
        check_file_output(args.png, inputs=[args.sheet], overwrite=args.overwrite, suffix=".png")


@contextlib.contextmanager
def _cluster(args, spec):
    """The Dask client the run uses: batch jobs for ``spec``, else a LocalCluster, else none (``--workers 0``)."""
    from ..cluster import local_cluster, start_cluster

    def log(msg):
        if not args.json:
            print(msg, file=sys.stderr)

    if spec is not None:
        with start_cluster(spec, log=log) as client:
            yield client
    elif args.workers != 0:
        with local_cluster(args.workers, args.threads) as client:
            log(f"Dask dashboard: {client.dashboard_link}")
            yield client
    else:
        yield None


def _draw_map(store, png) -> None:
    from ..plots import energy_map

    try:
        energy_map(store, png)
    except OSError as exc:
        raise InputError(f"cannot write {png} ({exc.strerror or exc}); the tile map is in {store}") from None


def _report(args, res) -> None:
    if args.json:
        print(json.dumps(res.as_json()))
        return
    per = f", {res.per_atom:.6f} {res.units}/atom ({res.n_atoms:,} atoms)" if res.per_atom is not None else ""
    print(f"total {res.total:.6f} {res.units}{per}")
    rate = f"{res.pixels / res.seconds:,.0f} px/s"
    if res.n_atoms:
        rate += f", {res.n_atoms / res.seconds:,.0f} atoms/s"
    print(f"{res.tiles:,} tiles, {res.pixels:,} pixels in {res.seconds:.2f} s ({rate}); model {res.model}")
