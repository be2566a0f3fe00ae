"""``ednn-dask dataset``, ``make-sheet`` and ``rasterize``: data on disk."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError
from ._types import at_least, positive

__all__ = ["add_commands"]


def add_commands(sub, common) -> None:
    """Register ``make-sheet``, ``rasterize`` and ``dataset ising|sheets`` on the subparsers ``sub``."""
    mk = sub.add_parser("make-sheet", parents=[common], help="build a large sheet and store its atoms compactly (.npz)")
    mk.add_argument("--kind", choices=["porous-graphene"], default="porous-graphene")
    mk.add_argument("--size-um", type=positive, default=0.1, help="edge of the square sheet in micrometres")
    mk.add_argument("--temperature", type=at_least(0.0, float), default=1000.0, help="K, in-plane Einstein displacements")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--out", required=True)
    mk.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out file (atomically, once the new one is complete)")
    mk.set_defaults(func=_cmd_make_sheet)

    ra = sub.add_parser("rasterize", parents=[common], help="rasterize a structure into a chunked Zarr v3 array (Dask)")
    ra.add_argument("structure", help="atoms .npz (make-sheet) or any single-frame ASE-readable file")
    ra.add_argument("output", help="output .zarr directory")
    ra.add_argument("--model", help="take spacing, species, channels and lattice from this model "
                    "(default: ednn.evaluate.model, the model `evaluate` uses, porous-graphene)")
    ra.add_argument("--spacing", type=positive, help="override: square pixels of this size in Å")
    ra.add_argument("--chunk", type=at_least(1), default=1024, help="chunk edge in pixels")
    ra.add_argument("--no-register", action="store_true",
                    help="keep the atoms where they are (default: translate the sheet onto the honeycomb origin "
                    "the sheet models were trained on, which leaves its energy unchanged)")
    ra.add_argument("--overwrite", action="store_true", help="replace an output raster written by ednn-dask")
    ra.add_argument("--quiet", action="store_true")
    ra.set_defaults(func=_cmd_rasterize)

    ds = sub.add_parser("dataset", help="generate a training dataset")
    dss = ds.add_subparsers(dest="system", required=True)
    di = dss.add_parser("ising", parents=[common], help="Swendsen-Wang Ising configurations with exact energies (.npz)")
    di.add_argument("--n", type=at_least(1), default=100_000)
    di.add_argument("--L", type=at_least(1), default=8)
    di.add_argument("--seed", type=int, default=1)
    di.add_argument("--out", required=True)
    di.add_argument("--overwrite", action="store_true",
                    help="replace an existing --out file (atomically, once the new one is complete)")
    di.set_defaults(func=_cmd_dataset_ising)

    dsh = dss.add_parser("sheets", parents=[common], help="sheet structures, rasters and Tersoff energies (Zarr v3)")
    dsh.add_argument("--kind", choices=["hexagonal", "hexagonal-alloy", "porous-graphene"], default="hexagonal")
    dsh.add_argument("--n", type=at_least(1), default=20000)
    dsh.add_argument("--seed", type=int, default=1)
    dsh.add_argument("--block", type=at_least(1), default=100, help="structures per resumable block")
    dsh.add_argument("--sampler", choices=["md", "einstein"], default="md",
                     help="md: Langevin molecular dynamics with the reference potential (relaxed defects and edges, "
                     "random translations and mirrors); einstein: independent displacements on the perfect lattice")
    dsh.add_argument("--schedule", choices=["uniform", "ladder"], default="uniform",
                     help="md temperatures: uniform in the kind's range, or cycling 300/700/1000/1500 K (test sets)")
    dsh.add_argument("--frames", type=at_least(1), default=4, help="md snapshots per trajectory, 50 fs apart")
    dsh.add_argument("--workers", type=at_least(1), default=None)
    dsh.add_argument("--quiet", action="store_true")
    dsh.add_argument("--out", required=True, help="Zarr directory (an existing one is resumed)")
    dsh.set_defaults(func=_cmd_dataset_sheets)

    dfs = dss.add_parser("from-structures", parents=[common],
                         help="your labelled structures (extxyz, OUTCAR, vasprun.xml, ...) as a training dataset")
    dfs.add_argument("files", nargs="+", help="files ASE reads; every frame of each is used")
    dfs.add_argument("--out", required=True, help="Zarr directory to write")
    dfs.add_argument("--model", default="hexagonal-sheet",
                     help="rasterize for this model: its pixel spacing, species channels and lattice (default "
                     "hexagonal-sheet, B/C/N; the model you will fine-tune with train sheets --init-from)")
    dfs.add_argument("--spacing", type=positive, nargs="+", metavar="H",
                     help="instead of the model's: pixels of H Å (square) or HY HX Å (no lattice registration), "
                     "with --species")
    dfs.add_argument("--species", nargs="+", help="with --spacing: the species channels, e.g. B C N")
    dfs.add_argument("--energy-key", help="read the energy from this key of each frame's info "
                     "(default: the file's energy, e.g. extxyz energy=, OUTCAR, vasprun.xml)")
    dfs.add_argument("--label", choices=["file", "reference"], default="file",
                     help="reference: label every frame with the package's Tersoff reference (files without "
                     "energies: LAMMPS dumps, POSCAR, CIF)")
    dfs.add_argument("--format", dest="file_format", help="ASE format name, when the file name does not tell it")
    dfs.add_argument("--overwrite", action="store_true", help="replace an existing dataset written by ednn-dask")
    dfs.set_defaults(func=_cmd_dataset_from_structures)


def _cmd_dataset_ising(args) -> int:
    from ..systems.ising import IsingDataset

    from .._outputs import atomic_path, check_file_output

    out = Path(args.out)
    if out.suffix != ".npz":
        raise InputError(f"--out must end in .npz, got {out}")
    check_file_output(out, overwrite=args.overwrite)  # before the sampling: no existing file, a writable folder
    data = IsingDataset.generate(args.n, args.L, seed=args.seed)
    with atomic_path(out, overwrite=args.overwrite) as tmp, open(tmp, "wb") as fh:  # a file object: numpy adds no ".npz" to the name
        data.save(fh)
    print(f"wrote {args.n} {args.L}x{args.L} configurations to {out}", file=sys.stderr)
    return 0


def _cmd_dataset_sheets(args) -> int:
    from ..data.sheets import generate_dataset

    generate_dataset(args.out, args.kind, n=args.n, seed=args.seed, block=args.block, workers=args.workers,
                     progress=not args.quiet, sampler=args.sampler, schedule=args.schedule, frames=args.frames)
    print(f"dataset complete: {args.out}", file=sys.stderr)
    return 0


def _cmd_dataset_from_structures(args) -> int:
    from ..data.structures import read_labelled, write_structures_dataset
    from ..reference import REFERENCE_NAME

    if args.spacing is not None:
        if not args.species:
            raise InputError("--spacing needs --species (the channels, e.g. --species B C N)")
        if len(args.spacing) > 2:
            raise InputError(f"--spacing takes one (square) or two (HY HX) values, got {len(args.spacing)}")
        spacing = tuple(args.spacing) if len(args.spacing) == 2 else (args.spacing[0],) * 2
        species, lattice, gamma = list(args.species), None, 0.2
        for_what = f"{spacing[0]:g} x {spacing[1]:g} Å pixels"
    else:
        if args.species:
            raise InputError("--species goes with --spacing; with --model the model's species are used")
        from ..models import read_card, resolve_model

        card = read_card(resolve_model(args.model))  # its metadata is all a dataset needs
        if not card.takes_atoms:
            raise InputError(f"model {args.model!r} does not take atoms")
        settings = card.raster_settings()
        spacing, species, lattice = settings.spacing, list(settings.species), settings.lattice
        gamma = card.gamma or 0.2
        for_what = f"model {args.model}"
    frames = read_labelled(args.files, energy_key=args.energy_key, label=args.label, file_format=args.file_format)
    reference = REFERENCE_NAME if args.label == "reference" else "the user's labels"
    out = write_structures_dataset(frames, args.out, spacing, species, lattice, gamma=gamma, overwrite=args.overwrite,
                                   inputs=args.files, description=f"from {len(args.files)} file(s) for {for_what}",
                                   reference=reference)
    forces = "with forces" if all(f.forces is not None for f in frames) else "without forces"
    print(f"wrote {len(frames)} structures ({forces}) to {out} for {for_what}", file=sys.stderr)
    return 0


def _cmd_make_sheet(args) -> int:
    from .._outputs import check_file_output
    from ..systems.large import porous_graphene_arrays, save_atoms_npz

    out = Path(args.out)
    if out.suffix != ".npz":
        raise InputError(f"--out must end in .npz (compact atoms), got {out}")
    check_file_output(out, overwrite=args.overwrite)  # before the sheet is built: no existing file, a writable folder
    side = args.size_um * 1e4  # Å
    atoms = porous_graphene_arrays((side, side), seed=args.seed, temperature=args.temperature)
    save_atoms_npz(atoms, out, overwrite=args.overwrite, kind=args.kind, seed=args.seed)
    Lx, Ly = atoms.lengths_xy
    print(f"wrote {atoms.numbers.size:,} atoms, cell {Lx:.1f} x {Ly:.1f} Å, to {out}", file=sys.stderr)
    return 0


def _cmd_rasterize(args) -> int:
    from .. import config
    from .._outputs import check_output
    from ..models import read_card, resolve_model
    from ..raster import RASTER_KIND, rasterize_to_zarr
    from ..systems.large import load_atoms

    # the raster is drawn for a model (its metadata is all it needs): --model, else the one `evaluate` uses
    name = args.model or config.get("evaluate.model")
    card = read_card(resolve_model(name))
    if not card.takes_atoms:
        raise InputError(f"model {name!r} does not take rasters")
    settings = card.raster_settings()
    spacing = (args.spacing, args.spacing) if args.spacing else settings.spacing
    lattice = None if args.no_register else settings.lattice
    out = check_output(args.output, RASTER_KIND, inputs=[args.structure], overwrite=args.overwrite)
    atoms = load_atoms(args.structure)
    rasterize_to_zarr(atoms, out, spacing, settings.species, settings.channels, chunk=args.chunk,
                      overwrite=args.overwrite, progress=not args.quiet, lattice=lattice)
    channels = ", ".join(settings.species) if settings.channels == "species" else settings.channels
    print(f"wrote {args.output} (for model {name}: {channels} channels, {spacing[0]:.4g} Å pixels)", file=sys.stderr)
    return 0
