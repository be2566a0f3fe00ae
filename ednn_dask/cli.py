"""The ``ednn-dask`` command line.

Every failure the user can cause (bad file, bad model name, bad values)
prints one line ``ednn-dask: error: ...`` on stderr and exits with status 2;
``--json`` output goes to stdout alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["main"]


class UserError(Exception):
    """An error caused by the user's input; reported as one line."""


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"input file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"input is a directory, not a .npy file: {path}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"cannot read {path} as a .npy array ({exc})") from None


def validate_spins(arr: np.ndarray, focus: int, name: str = "input") -> np.ndarray:
    """Check an ``(N, L, M)`` array of ±1 spins for an Ising model; return int8."""
    if arr.dtype.kind not in "biuf":
        raise UserError(f"{name}: expected a numeric array of +-1 spins, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise UserError(f"{name}: expected shape (N, L, L) of +-1 spins, got {arr.ndim}-D shape {arr.shape}")
    if arr.size == 0:
        raise UserError(f"{name}: empty array of shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise UserError(f"{name}: contains NaN or infinite values")
    bad = ~np.isin(arr, (-1, 1))
    if bad.any():
        first = arr[bad].flat[0]
        raise UserError(f"{name}: spins must be -1 or +1, found {first!r} ({int(bad.sum())} bad values)")
    L, M = arr.shape[1:]
    if L % focus or M % focus:
        raise UserError(f"{name}: lattice {L}x{M} is not a multiple of the model's focus f={focus}")
    return arr.astype(np.int8)


def _cmd_models(args) -> int:
    from .models import bundled_models

    models = bundled_models()
    if args.json:
        print(json.dumps({k: {kk: vv for kk, vv in v.items()} for k, v in models.items()}, indent=1))
        return 0
    for name, meta in models.items():
        spacing = meta.get("pixel_spacing", {})
        acc = meta.get("accuracy", {})
        print(f"{name}")
        print(f"  file            {meta['path']}")
        print(f"  target          {meta['target'].get('name')} [{meta['target'].get('units')}]")
        print(f"  focus/context   f={meta['focus']} c={meta['context']} (tile {meta['focus'] + 2 * meta['context']} px)")
        print(f"  pixel spacing   {spacing.get('value')} {spacing.get('units', '')}")
        print(f"  reference       {meta.get('description', '')}")
        if lat := meta.get("input", {}).get("lattice"):
            print(f"  lattice         {lat['kind']}, a = {lat['a']} Å, zigzag along {lat.get('zigzag_axis', 'x')}: "
                  "structures are moved onto its origin and orientation before rasterizing")
        for key, label in (("test", "held-out"), ("transfer", "transfer")):
            if key in acc:
                m = acc[key]
                if "mae_mev_per_atom" in m:
                    print(f"  {label:<15} MAE {m['mae_mev_per_atom']:.3g} meV/atom, median "
                          f"{m['median_mev_per_atom']:.3g} meV/atom ({acc.get(key + '_set', '')})")
                else:
                    print(
                        f"  {label:<15} median |err| {m['median_ae']:.3g} {meta['target'].get('units')}, "
                        f"median rel {m['median_rel']:.2g} ({acc.get(key + '_set', '')})"
                    )
        if "supercells" in acc:
            print(f"  supercells      MAE {acc['supercells']['mae_mev_per_atom']:.3g} meV/atom "
                  f"({acc['supercells']['set']}, up to 4x4)")
    return 0


def _cmd_predict(args) -> int:
    import torch

    from .models import get_model
    from .train.ising import spins_to_fields

    model = get_model(args.model)
    kind = model.metadata.get("input", {}).get("kind")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if kind == "raster":
        return _predict_structures(model, args)
    if kind != "ising-spins":
        raise UserError(f"model {model.name!r} takes input of kind {kind!r}, which predict does not handle")
    spins = validate_spins(_load_npy(args.input), model.metadata["focus"], args.input)
    energies = model.predict(spins_to_fields(spins)).numpy()
    if args.json:
        print(json.dumps({"energies": energies.tolist(), "model": model.name, "n": int(energies.size)}))
    else:
        units = model.metadata["target"].get("units", "")
        for i, e in enumerate(energies):
            print(f"{i}\t{e:.6f} {units}")
    return 0


def read_structures(path: str) -> list:
    """All frames of an ASE-readable file; one clear error for missing, unreadable or empty files."""
    from .raster import StructureError
    from .systems.files import read_frames

    try:
        return read_frames(path)
    except StructureError as exc:
        raise UserError(str(exc)) from None


def _predict_structures(model, args) -> int:
    from .raster import SheetWarning, StructureError, grid_for_atoms
    from .tiles import check_tiling
    from .train.sheets import predict_structures

    frames = read_structures(args.input)
    f = model.metadata["focus"]
    spacing = model.metadata["pixel_spacing"]["value"]
    lattice = model.metadata["input"].get("lattice")
    flagged = []  # (structure, warning) of structures that are sheets but off the models' plane
    for k, atoms in enumerate(frames):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SheetWarning)
                grid = grid_for_atoms(atoms, spacing, lattice=lattice)
            flagged += [(k, w.message) for w in caught if issubclass(w.category, SheetWarning)]
            check_tiling(grid.shape, f, 0)
        except StructureError as exc:
            raise UserError(f"structure {k}: {exc}") from None
        except ValueError:
            Lx, Ly = atoms.cell.lengths()[:2]
            raise UserError(
                f"structure {k}: cell {Lx:.4g} x {Ly:.4g} Å is {grid.shape[1]} x {grid.shape[0]} pixels, "
                f"not a whole number of {f}-pixel focus regions ({f * spacing[1]:.4g} x {f * spacing[0]:.4g} Å)"
            ) from None
    if flagged:
        more = f" (and {len(flagged) - 1} more of {len(frames)} structures)" if len(flagged) > 1 else ""
        print(f"ednn-dask: warning: structure {flagged[0][0]}: {flagged[0][1]}{more}", file=sys.stderr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SheetWarning)  # reported above, once
            energies = predict_structures(model, frames)
    except StructureError as exc:
        raise UserError(str(exc)) from None
    natoms = np.array([len(a) for a in frames])
    if args.json:
        print(json.dumps({"energies": energies.tolist(), "energies_per_atom": (energies / natoms).tolist(),
                          "model": model.name, "n": len(frames)}))
    else:
        for i, (e, n) in enumerate(zip(energies, natoms)):
            print(f"{i}\t{e:.6f} eV\t{e / n:.6f} eV/atom\t{n} atoms")
    return 0


def _cmd_dataset_ising(args) -> int:
    from .systems.ising import IsingDataset

    out = Path(args.out)
    if out.suffix != ".npz":
        raise UserError(f"--out must end in .npz, got {out}")
    data = IsingDataset.generate(args.n, args.L, seed=args.seed)
    tmp = out.with_name(f".{out.stem}.tmp.npz")
    data.save(tmp)
    os.replace(tmp, out)
    print(f"wrote {args.n} {args.L}x{args.L} configurations to {out}", file=sys.stderr)
    return 0


def _model_out(path: str) -> Path:
    out = Path(path)
    if out.suffix not in (".pt2", ".pt"):
        raise UserError(f"--out must end in .pt2 (torch.export) or .pt (TorchScript), got {out}")
    return out


def _train_config(args):
    import torch

    from .train import TrainConfig

    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise UserError(f"--device {args.device!r} is not a torch device ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: torch sees no CUDA GPU on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {args.device}: the MPS backend is not available on this machine")

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_final=args.lr_final,
                       seed=args.seed, threads=args.threads, progress=not args.quiet, device=args.device)


def _cmd_train_ising(args) -> int:
    from .models import save_model
    from .train.ising import ising_metadata, train_ising, write_report

    out = _model_out(args.out)
    config = _train_config(args)
    model, history, report = train_ising(
        args.focus,
        args.context,
        n=args.n,
        L=args.L,
        config=config,
        data_seed=args.data_seed,
        data_cache=args.data,
        checkpoint=args.checkpoint,
        resume=args.resume,
        evaluate=not args.no_eval,
    )
    meta = ising_metadata(args.focus, args.context, config, args.n, args.L, report)
    save_model(model, out, meta)
    if args.report:
        write_report({"focus": args.focus, "context": args.context, **(report or {}), "history": history}, args.report)
    if report:
        t, b = report["test"], report["transfer"]
        print(
            f"f={args.focus} c={args.context}: held-out {args.L}x{args.L} median |err| {t['median_ae']:.3g} J "
            f"(MAE {t['mae']:.3g} J); 128x128 near Tc median rel err {b['median_rel']:.3g}"
        )
    print(f"saved {out}", file=sys.stderr)
    return 0


def _cmd_dataset_sheets(args) -> int:
    from .data.sheets import generate_dataset

    generate_dataset(args.out, args.kind, n=args.n, seed=args.seed, block=args.block, workers=args.workers,
                     progress=not args.quiet)
    print(f"dataset complete: {args.out}", file=sys.stderr)
    return 0


def _cmd_train_sheets(args) -> int:
    import torch

    from .models import save_model
    from .train.ising import write_report
    from .train.sheets import InMemory, evaluate_sheet_model, sheet_metadata, train_sheets

    out = _model_out(args.out)
    for path in (args.data, args.test):
        if path and not Path(path).exists():
            raise UserError(f"dataset not found: {path}")
    config = _train_config(args)
    model, history, info = train_sheets(args.data, args.focus, args.context, config, args.checkpoint, args.resume,
                                        species=args.species, activation=args.activation, init_from=args.init_from,
                                        widths=args.widths, dense=args.dense, symmetries=args.symmetries)
    attrs = info["attrs"]
    meta = sheet_metadata(args.name, attrs["kind"], args.focus, args.context, config, attrs)
    meta["training"]["symmetries"] = info["symmetries"]
    report = {"seconds_train": round(info["seconds_train"], 1)}
    if args.test:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        report.update(evaluate_sheet_model(InMemory(model, meta), args.test,
                                           supercells=attrs["kind"].startswith("hexagonal")))
        pred = report.pop("pred_test")
        if args.plot:
            from .plots import parity_plot
            from .data.sheets import open_dataset

            test = open_dataset(args.test, meta["input"]["species"])
            parity_plot(test["energies"] / test["n_atoms"], np.asarray(pred) / test["n_atoms"], args.plot,
                        title=f"{args.name}: held-out {attrs['kind']} (f={args.focus}, c={args.context})",
                        units="eV/atom")
    meta["accuracy"] = {k: v for k, v in report.items() if k in ("test", "test_set", "supercells")}
    save_model(model, out, meta)
    if args.report:
        write_report({"focus": args.focus, "context": args.context, **report, "history": history}, args.report)
    if "test" in report:
        line = f"held-out MAE {report['test']['mae_mev_per_atom']:.3f} meV/atom"
        if "supercells" in report:
            line += f"; supercells up to 4x4 MAE {report['supercells']['mae_mev_per_atom']:.3f} meV/atom"
        print(line)
    print(f"saved {out}", file=sys.stderr)
    return 0


def _cmd_make_sheet(args) -> int:
    from .systems.large import porous_graphene_arrays, save_atoms_npz

    out = Path(args.out)
    if out.suffix != ".npz":
        raise UserError(f"--out must end in .npz (compact atoms), got {out}")
    if args.size_um <= 0:
        raise UserError(f"--size-um must be positive, got {args.size_um}")
    side = args.size_um * 1e4  # Å
    atoms = porous_graphene_arrays((side, side), seed=args.seed, temperature=args.temperature)
    save_atoms_npz(atoms, out, kind=args.kind, seed=args.seed)
    Lx, Ly = atoms.lengths_xy
    print(f"wrote {atoms.numbers.size:,} atoms, cell {Lx:.1f} x {Ly:.1f} Å, to {out}", file=sys.stderr)
    return 0


def _cmd_rasterize(args) -> int:
    from . import config
    from ._outputs import check_output
    from .models import get_model
    from .raster import StructureError
    from .raster._zarr import RASTER_KIND, rasterize_to_zarr
    from .systems.large import load_atoms

    # the raster is drawn for a model: --model, else the one `evaluate` uses by default
    name = args.model or config.get("evaluate.model")
    meta = get_model(name).metadata
    inp = meta.get("input", {})
    if inp.get("kind") != "raster":
        raise UserError(f"model {name!r} does not take rasters")
    spacing, species = meta["pixel_spacing"]["value"], inp["species"]
    channels, lattice = inp.get("channels", "species"), inp.get("lattice")
    if args.no_register:
        lattice = None
    if args.spacing:
        spacing = (args.spacing, args.spacing)
    out = check_output(args.output, RASTER_KIND, inputs=[args.structure], overwrite=args.overwrite)
    try:
        atoms = load_atoms(args.structure)
        rasterize_to_zarr(atoms, out, spacing, species, channels, chunk=args.chunk, overwrite=args.overwrite,
                          progress=not args.quiet, lattice=lattice)
    except StructureError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {args.output} (for model {name}: {', '.join(species) if channels == 'species' else channels} "
          f"channels, {spacing[0]:.4g} Å pixels)", file=sys.stderr)
    return 0


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
    from .cluster import ClusterError

    try:
        return _evaluate_cli(args)
    except ClusterError as exc:
        raise UserError(str(exc)) from None


def _evaluate_cli(args) -> int:
    import contextlib

    from ._outputs import check_file_output
    from .cluster import job_script, local_cluster, resolve_batch, start_cluster, use_profile
    from .evaluate import EvaluationError, plan_evaluation, run_plan

    overrides = {k: getattr(args, k) for k in ("cores", "memory", "walltime", "queue", "account")}
    with use_profile(args.profile) as profile:
        scheduler = args.scheduler or profile.get("ednn", {}).get("cluster", {}).get("scheduler")  # None: detect

        found: list[str] = []  # what detection found, said once the input has passed its checks too
        spec = resolve_batch(args.nodes, scheduler, args.profile, overrides, dry_run=args.dry_run,
                             log=None if args.json else found.append)
        if spec is None and (args.dry_run or any(v is not None for v in overrides.values())):
            raise UserError("--dry-run and job settings need --nodes, --scheduler slurm or pbs, or a batch --profile")
        if args.dry_run:
            print(*found, sep="\n", file=sys.stderr, end="\n" if found else "")
            print(job_script(spec), end="")
            return 0
        if not Path(args.sheet).exists():
            raise UserError(f"sheet not found: {args.sheet}")
        if args.png and not args.out:
            raise UserError("--png needs --out (the tile map is read from it)")
        if args.png:
            check_file_output(args.png, inputs=[args.sheet], overwrite=args.overwrite, suffix=".png")
        try:  # everything that can be checked without pixels, before any cluster is asked for
            plan = plan_evaluation(args.sheet, args.model, chunk=args.chunk, out=args.out,
                                   halo_sharing=args.halo_sharing, bf16=args.bf16 or None, overwrite=args.overwrite)
        except EvaluationError as exc:
            raise UserError(str(exc)) from None
        print(*found, sep="\n", file=sys.stderr, end="\n" if found else "")

        def log(msg):
            if not args.json:
                print(msg, file=sys.stderr)

        _interrupt_on_signals()
        if spec is not None:
            cm = start_cluster(spec, log=log)
        elif args.workers != 0:
            cm = local_cluster(args.workers, args.threads)
        else:
            cm = contextlib.nullcontext()
        try:
            with cm as client:
                if client is not None and spec is None:
                    log(f"Dask dashboard: {client.dashboard_link}")
                res = run_plan(plan, client=client, progress=not args.json and not args.quiet)
        except EvaluationError as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            if plan.out is not None:
                print("ednn-dask: interrupted; finished chunks are kept, re-run the same command to resume",
                      file=sys.stderr)
            raise
    if args.png:
        from .plots import energy_map

        try:
            energy_map(plan.out, args.png)
        except OSError as exc:
            raise UserError(f"cannot write {args.png} ({exc.strerror or exc}); the tile map is in {plan.out}") from None
    if args.json:
        print(json.dumps(res.as_json()))
    else:
        per = f", {res.per_atom:.6f} {res.units}/atom ({res.n_atoms:,} atoms)" if res.per_atom is not None else ""
        print(f"total {res.total:.6f} {res.units}{per}")
        rate = f"{res.pixels / res.seconds:,.0f} px/s"
        if res.n_atoms:
            rate += f", {res.n_atoms / res.seconds:,.0f} atoms/s"
        print(f"{res.tiles:,} tiles, {res.pixels:,} pixels in {res.seconds:.2f} s ({rate}); model {res.model}")
    return 0


def _cmd_demo(args) -> int:
    return _demo_ising(args) if args.system == "ising" else _demo_sheet(args)


def _demo_sheet(args) -> int:
    """Build a porous graphene sheet, evaluate it with the bundled model on a LocalCluster, check against Tersoff."""
    import tempfile

    from . import config
    from .evaluate import evaluate
    from .reference import tersoff_energy
    from .systems.large import porous_graphene_arrays, save_atoms_npz

    side = args.size_um * 1e4
    model = config.get("evaluate.model")
    with tempfile.TemporaryDirectory() as tmp:
        atoms = porous_graphene_arrays((side, side), seed=args.seed)
        path = save_atoms_npz(atoms, Path(tmp) / "sheet.npz")
        Lx, Ly = atoms.lengths_xy
        print(f"porous graphene sheet: {Lx / 10:.1f} x {Ly / 10:.1f} nm, {atoms.numbers.size:,} atoms (seed {args.seed})")
        from .cluster import local_cluster

        workers = max(1, os.cpu_count() or 1)
        with local_cluster(workers, 1) as client:
            print(f"LocalCluster: {workers} workers x 1 thread; dashboard {client.dashboard_link}")
            res = evaluate(path, model, client=client, progress=True)
        print(f"EDNN ({res.model}): {res.total:,.3f} eV = {res.per_atom:.5f} eV/atom")
        print(f"  {res.tiles:,} tiles, {res.pixels:,} pixels on the fly in {res.seconds:.1f} s: "
              f"{res.pixels / res.seconds:,.0f} px/s, {res.n_atoms / res.seconds:,.0f} atoms/s")
        if atoms.numbers.size <= 500_000:  # the reference takes ~20 s for 0.1 µm²
            from ase import Atoms

            ref = tersoff_energy(Atoms(numbers=atoms.numbers, positions=np.column_stack(
                [atoms.positions, np.zeros(len(atoms.positions))]), cell=[Lx, Ly, 20.0], pbc=True))
            err = (res.total - ref) / atoms.numbers.size * 1e3
            print(f"Tersoff reference: {ref:,.3f} eV = {ref / atoms.numbers.size:.5f} eV/atom; "
                  f"EDNN error {err:+.2f} meV/atom")
    return 0


def _demo_ising(args) -> int:
    """Train-free demo: the bundled Ising model on fresh 8x8 and 128x128 samples."""
    import time

    import torch

    from .models import get_model
    from .systems.ising import T_CRITICAL, ising_energy, sample_ising
    from .train.ising import spins_to_fields

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = get_model("ising")
    print(f"model: bundled '{model.name}' (f={model.metadata['focus']}, c={model.metadata['context']})")
    print(f"{'L':>5} {'T/Tc':>6} {'exact E [J]':>14} {'EDNN E [J]':>14} {'|err| [J]':>10} {'rel err':>9}")
    for L, ratios in ((8, (0.5, 1.0, 2.0)), (128, (0.9, 1.0, 1.1))):
        temps = [r * T_CRITICAL for r in ratios]
        spins, T = sample_ising(len(temps), L, temps, seed=args.seed, n_equilibrate=200)
        t0 = time.perf_counter()
        pred = model.predict(spins_to_fields(spins)).numpy()
        dt = time.perf_counter() - t0
        exact = ising_energy(spins)
        for e, p, t in zip(exact, pred, T):
            rel = abs(p - e) / abs(e) if e else float("nan")
            print(f"{L:>5} {t / T_CRITICAL:>6.2f} {e:>14.3f} {p:>14.3f} {abs(p - e):>10.2e} {rel:>9.1e}")
        print(f"      ({len(temps)} configurations of {L}x{L}: {L * L * len(temps) / dt:,.0f} tiles/s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="ednn-dask", description="Extensive deep neural networks over large domains.")
    p.add_argument("--version", action="version", version=f"ednn-dask {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="also show Dask's logs and other libraries' warnings on stderr")

    d = sub.add_parser("demo", parents=[common], help="bundled models at work, no training: a porous sheet evaluated with Dask "
                       "(default) or Ising energies")
    d.add_argument("system", nargs="?", choices=["sheet", "ising"], default="sheet")
    d.add_argument("--size-um", type=float, default=0.02, help="sheet edge in micrometres")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)

    m = sub.add_parser("models", parents=[common], help="list bundled models")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_cmd_models)

    pr = sub.add_parser("predict", parents=[common], help="predict totals with a model")
    pr.add_argument("model", help="bundled model name (e.g. ising) or model file path")
    pr.add_argument("input", help="Ising models: .npy array (N, L, L) of +-1 spins; "
                    "sheet models: any ASE-readable structure file (extxyz, cif, POSCAR, ...)")
    pr.add_argument("--json", action="store_true", help="print JSON only")
    pr.set_defaults(func=_cmd_predict)

    mk = sub.add_parser("make-sheet", parents=[common], help="build a large sheet and store its atoms compactly (.npz)")
    mk.add_argument("--kind", choices=["porous-graphene"], default="porous-graphene")
    mk.add_argument("--size-um", type=float, default=0.1, help="edge of the square sheet in micrometres")
    mk.add_argument("--temperature", type=float, default=1000.0, help="K, in-plane Einstein displacements")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--out", required=True)
    mk.set_defaults(func=_cmd_make_sheet)

    ra = sub.add_parser("rasterize", parents=[common], help="rasterize a structure into a chunked Zarr v3 array (Dask)")
    ra.add_argument("structure", help="atoms .npz (make-sheet) or any single-frame ASE-readable file")
    ra.add_argument("output", help="output .zarr directory")
    ra.add_argument("--model", help="take spacing, species, channels and lattice from this model "
                    "(default: ednn.evaluate.model, the model `evaluate` uses, porous-graphene)")
    ra.add_argument("--spacing", type=float, help="override: square pixels of this size in Å")
    ra.add_argument("--chunk", type=int, default=1024, help="chunk edge in pixels")
    ra.add_argument("--no-register", action="store_true",
                    help="keep the atoms where they are (default: translate the sheet onto the honeycomb origin "
                    "the sheet models were trained on, which leaves its energy unchanged)")
    ra.add_argument("--overwrite", action="store_true", help="replace an output raster written by ednn-dask")
    ra.add_argument("--quiet", action="store_true")
    ra.set_defaults(func=_cmd_rasterize)

    ev = sub.add_parser("evaluate", parents=[common], help="evaluate a model over a large sheet with Dask")
    ev.add_argument("sheet", help="Zarr raster (ednn-dask rasterize) or a structure file rasterized on the fly")
    ev.add_argument("--model", help="bundled model name or file (default: ednn.evaluate.model, porous-graphene)")
    ev.add_argument("--scheduler", choices=["local", "slurm", "pbs"], default=None,
                    help="local (default) LocalCluster, or a batch cluster through dask-jobqueue")
    ev.add_argument("--profile", help="cluster profile: bundled name (cluster/*.yaml) or YAML path")
    ev.add_argument("--nodes", type=int, default=None, help="batch jobs, one per node (slurm/pbs)")
    ev.add_argument("--cores", type=int, default=None, help="cores per job (overrides the profile)")
    ev.add_argument("--memory", default=None, help="memory per job, e.g. 120GB (overrides the profile)")
    ev.add_argument("--walltime", default=None, help="job walltime, e.g. 01:00:00 (overrides the profile)")
    ev.add_argument("--queue", default=None, help="partition / queue (overrides the profile)")
    ev.add_argument("--account", default=None, help="account / project (overrides the profile)")
    ev.add_argument("--dry-run", action="store_true", help="print the job script that would be submitted and exit")
    ev.add_argument("--workers", type=int, default=None,
                    help="local worker processes (default: cores / threads; 0 = no cluster, threads in-process)")
    ev.add_argument("--threads", type=int, default=1, help="threads per worker")
    ev.add_argument("--chunk", type=int, default=None, help="target chunk edge in pixels")
    ev.add_argument("--halo-sharing", action=argparse.BooleanOptionalAction, default=None,
                    help="run the conv stack once per window instead of once per tile (default: whenever the "
                    "model allows it; exact; speed-up in benchmarks/bench_halo_sharing.py)")
    ev.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast of the conv stack (needs halo sharing; see docs/evaluate.md for its error)")
    ev.add_argument("--out", help="write the tile-contribution map (xarray-readable Zarr, coordinates in Å)")
    ev.add_argument("--overwrite", action="store_true",
                    help="replace an --out tile map (and --png) written by ednn-dask, or discard its unfinished run")
    ev.add_argument("--png", help="energy-density map PNG (needs --out)")
    ev.add_argument("--json", action="store_true", help="print only a JSON summary")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=_cmd_evaluate)

    ds = sub.add_parser("dataset", help="generate a training dataset")
    dss = ds.add_subparsers(dest="system", required=True)
    di = dss.add_parser("ising", parents=[common], help="Swendsen-Wang Ising configurations with exact energies (.npz)")
    di.add_argument("--n", type=int, default=100_000)
    di.add_argument("--L", type=int, default=8)
    di.add_argument("--seed", type=int, default=1)
    di.add_argument("--out", required=True)
    di.set_defaults(func=_cmd_dataset_ising)

    dsh = dss.add_parser("sheets", parents=[common], help="sheet structures, rasters and Tersoff energies (Zarr v3)")
    dsh.add_argument("--kind", choices=["hexagonal", "hexagonal-alloy", "porous-graphene"], default="hexagonal")
    dsh.add_argument("--n", type=int, default=20000)
    dsh.add_argument("--seed", type=int, default=1)
    dsh.add_argument("--block", type=int, default=100, help="structures per resumable block")
    dsh.add_argument("--workers", type=int, default=None)
    dsh.add_argument("--quiet", action="store_true")
    dsh.add_argument("--out", required=True, help="Zarr directory (an existing one is resumed)")
    dsh.set_defaults(func=_cmd_dataset_sheets)

    tr = sub.add_parser("train", help="train a model")
    trs = tr.add_subparsers(dest="system", required=True)
    ti = trs.add_parser("ising", parents=[common], help="train the paper's dense Ising EDNN")
    ti.add_argument("--focus", "-f", type=int, default=1)
    ti.add_argument("--context", "-c", type=int, default=1)
    ti.add_argument("--n", type=int, default=100_000, help="training+validation configurations")
    ti.add_argument("--L", type=int, default=8)
    ti.add_argument("--epochs", type=int, default=40)
    ti.add_argument("--batch-size", type=int, default=128)
    ti.add_argument("--lr", type=float, default=1e-3)
    ti.add_argument("--lr-final", type=float, default=1e-6)
    ti.add_argument("--seed", type=int, default=0, help="weights, split and shuffling")
    ti.add_argument("--data-seed", type=int, default=1)
    ti.add_argument("--data", help="cache the sampled dataset in this .npz (reused if present)")
    ti.add_argument("--threads", type=int, default=None)
    ti.add_argument("--device", default="cpu", help="train on this torch device, e.g. cuda (the model is saved for the CPU)")
    ti.add_argument("--checkpoint", help="checkpoint file, written every epoch")
    ti.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    ti.add_argument("--no-eval", action="store_true", help="skip the held-out and 128x128 tests")
    ti.add_argument("--report", help="write metrics and history to this JSON file")
    ti.add_argument("--quiet", action="store_true", help="no progress bar")
    ti.add_argument("--out", required=True, help="model file (.pt2 or .pt)")
    ti.set_defaults(func=_cmd_train_ising)
    ts = trs.add_parser("sheets", parents=[common], help="train a sheet EDNN (VALID CNN) on a sheet dataset")
    ts.add_argument("--data", required=True, help="training dataset (ednn-dask dataset sheets)")
    ts.add_argument("--test", help="held-out dataset for the accuracy report")
    ts.add_argument("--name", default="hexagonal-sheet")
    ts.add_argument("--activation", choices=["relu", "silu", "tanh"], default="relu")
    ts.add_argument("--species", nargs="+", help="train on these species' channels only (e.g. C for porous graphene)")
    ts.add_argument("--init-from", help="fine-tune: start from this model's weights (bundled name or file)")
    ts.add_argument("--widths", type=int, nargs=5, metavar="N", help="filters of the 5 conv layers (default 16 32 32 64 64)")
    ts.add_argument("--dense", type=int, nargs="+", default=[128], metavar="N", help="hidden widths of the dense head")
    ts.add_argument("--symmetries", choices=["auto", "lattice", "mirrors", "none"], default="auto",
                    help="training augmentation: lattice (mirror x and the lattice vector a2, which keep a registered "
                    "raster registered), mirrors (flip x and y), auto: lattice for registered datasets")
    ts.add_argument("--focus", "-f", type=int, default=40)
    ts.add_argument("--context", "-c", type=int, default=24)
    ts.add_argument("--epochs", type=int, default=30)
    ts.add_argument("--batch-size", type=int, default=32)
    ts.add_argument("--lr", type=float, default=1e-3)
    ts.add_argument("--lr-final", type=float, default=1e-6)
    ts.add_argument("--seed", type=int, default=0)
    ts.add_argument("--threads", type=int, default=None)
    ts.add_argument("--device", default="cpu", help="train on this torch device, e.g. cuda (the model is saved for the CPU)")
    ts.add_argument("--checkpoint")
    ts.add_argument("--resume", action="store_true")
    ts.add_argument("--report")
    ts.add_argument("--plot", help="parity plot PNG of the held-out set")
    ts.add_argument("--quiet", action="store_true")
    ts.add_argument("--out", required=True)
    ts.set_defaults(func=_cmd_train_sheets)
    return p


def _one_line_warnings(verbose: bool) -> None:
    """Our warnings as one line each on stderr; other libraries' warnings and Dask's logs only with --verbose."""
    import logging

    from .errors import EDNNWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, EDNNWarning):
            print(f"ednn-dask: warning: {str(message).splitlines()[0]}", file=sys.stderr)
        elif verbose:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    if not verbose:
        # worker processes inherit the environment; this process's loggers are set directly
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "critical"
        for name in ("distributed", "tornado", "asyncio", "bokeh"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ednn-dask``; returns the exit status."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _one_line_warnings(verbose)
    from .models import ModelFileError

    try:
        return int(args.func(args) or 0)
    except (UserError, ModelFileError, ValueError) as exc:
        print(f"ednn-dask: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ednn-dask: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
