"""``ednn-dask evaluate``: a sheet on a LocalCluster or on N batch jobs, planned before anything starts."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from ..errors import DomainError, InputError
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
    ev.add_argument("--out", help="write the tile-contribution map (xarray-readable Zarr, coordinates in Å; for a "
                    "model with a domain also the uncertainty and out_of_domain maps)")
    ev.add_argument("--overwrite", action="store_true",
                    help="replace an --out tile map written by ednn-dask and an existing --png; discard an unfinished run "
                    "there that another input, model or options made")
    ev.add_argument("--png", help="energy-density map PNG (needs --out); for a model with a domain also "
                    "NAME-uncertainty.png: per-tile uncertainty and out-of-domain tiles")
    ev.add_argument("--strict", action="store_true",
                    help="fail (exit 2, nothing on stdout) when any tile is outside the model's domain instead of "
                    "warning (models without a domain are not checked); that is known only once every tile is "
                    "computed, so --out and --png are still written (complete, valid data: the out_of_domain map "
                    "shows where) and the error names them")
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
        pngs = _pngs(args, plan)
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
    for png, draw in pngs:
        _draw_map(plan.out, png, draw)
    _domain_report(args, res, [png for png, _ in pngs])
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


def _pngs(args, plan) -> list:
    """``(path, drawing function)`` of each PNG to write; the uncertainty map's path is checked here, before the run."""
    from .. import plots
    from .._outputs import check_file_output

    if not args.png:
        return []
    out = [(args.png, plots.energy_map)]
    if plan.domain is not None:
        png = plots.uncertainty_png(args.png)
        check_file_output(png, inputs=[args.sheet], overwrite=args.overwrite, suffix=".png")
        out.append((str(png), plots.uncertainty_map))
    return out


def _draw_map(store, png, draw) -> None:
    try:
        draw(store, png)
    except OSError as exc:
        raise InputError(f"cannot write {png} ({exc.strerror or exc}); the tile map is in {store}") from None


def _domain_report(args, res, pngs: list[str]) -> None:
    """The one line on tiles outside the model's domain: a warning, or with ``--strict`` the error."""
    line = res.domain_warning
    if line and args.strict:
        kept = [p for p in (res.out, *pngs) if p]
        raise DomainError(f"{line} (--strict: the evaluation is complete{' and kept in ' if kept else ''}"
                          f"{', '.join(kept)})")
    if line:
        print(f"ednn-dask: warning: {line}", file=sys.stderr)


def _report(args, res) -> None:
    if args.json:
        print(json.dumps(res.as_json()))
        return
    per = f", {res.per_atom:.6f} {res.units}/atom ({res.n_atoms:,} atoms)" if res.per_atom is not None else ""
    if res.uncertainty is not None:
        per += f", +- {res.uncertainty:.3g} {res.units}"
        per += f" ({res.uncertainty / res.n_atoms * 1e3:.2g} m{res.units}/atom)" if res.n_atoms else ""
    print(f"total {res.total:.6f} {res.units}{per}")
    rate = f"{res.pixels / res.seconds:,.0f} px/s"
    if res.n_atoms:
        rate += f", {res.n_atoms / res.seconds:,.0f} atoms/s"
    print(f"{res.tiles:,} tiles, {res.pixels:,} pixels in {res.seconds:.2f} s ({rate}); model {res.model}")
