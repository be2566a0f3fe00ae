"""``ednn-dask models``, ``predict`` and ``demo``: the bundled models and what they say about an input."""
from __future__ import annotations

import json
import os
import sys

from ..errors import DomainError
from ._types import positive

__all__ = ["add_commands"]


def add_commands(sub, common) -> None:
    """Register ``models``, ``predict`` and ``demo`` on the subparsers ``sub``."""
    m = sub.add_parser("models", parents=[common], help="list bundled models")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_cmd_models)

    up = sub.add_parser("upgrade-model", parents=[common],
                        help="re-save a model file of an older format in the current one (same weights, checked)")
    up.add_argument("model", help="model file to read")
    up.add_argument("out", help="model file to write (.pt2 or .pt)")
    up.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    up.set_defaults(func=_cmd_upgrade_model)

    pr = sub.add_parser("predict", parents=[common], help="predict totals with a model")
    pr.add_argument("model", help="bundled model name (e.g. ising) or model file path")
    pr.add_argument("input", help="Ising models: .npy array (N, L, L) of +-1 spins; "
                    "sheet models: any ASE-readable structure file (extxyz, cif, POSCAR, ...)")
    pr.add_argument("--json", action="store_true", help="print JSON only")
    pr.add_argument("--strict", action="store_true",
                    help="fail (exit 2, nothing printed) when a structure is outside the model's domain")
    pr.set_defaults(func=_cmd_predict)

    d = sub.add_parser("demo", parents=[common], help="bundled models at work, no training: a porous sheet evaluated "
                       "with Dask (default) or Ising energies")
    d.add_argument("system", nargs="?", choices=["sheet", "ising"], default="sheet")
    d.add_argument("--size-um", type=positive, default=0.02, help="sheet edge in micrometres")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)


def _accuracy_lines(card) -> list[str]:
    acc, units = card.accuracy, card.units
    lines = []
    for key, label in (("test", "held-out"), ("transfer", "transfer")):
        if key in acc:
            m, where = acc[key], acc.get(key + "_set", "")
            if "mae_mev_per_atom" in m:
                lines.append(f"  {label:<15} MAE {m['mae_mev_per_atom']:.3g} meV/atom, median "
                             f"{m['median_mev_per_atom']:.3g} meV/atom ({where})")
            else:
                lines.append(f"  {label:<15} median |err| {m['median_ae']:.3g} {units}, "
                             f"median rel {m['median_rel']:.2g} ({where})")
    if "supercells" in acc:
        lines.append(f"  supercells      MAE {acc['supercells']['mae_mev_per_atom']:.3g} meV/atom "
                     f"({acc['supercells']['set']}, up to 4x4)")
    return lines


def _cmd_models(args) -> int:
    from ..models import bundled_models
    from ..models.card import ModelCard

    models = bundled_models()
    if args.json:
        print(json.dumps(models, indent=1))
        return 0
    for name, meta in models.items():
        card = ModelCard(meta, meta["path"])
        spacing = list(card.pixel_spacing) if card.pixel_spacing else None
        print(name)
        print(f"  file            {card.source}")
        print(f"  target          {card.target_name} [{card.units}]")
        print(f"  focus/context   f={card.focus} c={card.context} (tile {card.tile} px)")
        print(f"  pixel spacing   {spacing} {card.pixel_spacing_units}")
        print(f"  reference       {card.description}")
        if lat := card.lattice:
            print(f"  lattice         {lat['kind']}, a = {lat['a']} Å, zigzag along {lat.get('zigzag_axis', 'x')}: "
                  "structures are moved onto its origin and orientation before rasterizing")
        for line in _accuracy_lines(card):
            print(line)
    return 0


def _cmd_upgrade_model(args) -> int:
    from .._outputs import check_file_output
    from ..models import read_card, upgrade_model

    out = check_file_output(args.out, inputs=[args.model], overwrite=args.overwrite)
    path = upgrade_model(args.model, out)
    card = read_card(path)
    print(f"wrote {path}: model format {card.format_version}, program {card.program['kind']}"
          f"{', halo sharing runs the file' if card.halo_sharing_allowed else ''}")
    return 0


def _cmd_predict(args) -> int:
    import torch

    from ..models import get_model
    from ..predict import predict_file

    model = get_model(args.model)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    res = predict_file(model, args.input)
    if args.strict and res.domain_warning:
        raise DomainError(res.domain_warning)
    for line in (res.warning, res.domain_warning):
        if line:
            print(f"ednn-dask: warning: {line}", file=sys.stderr)
    if args.json:
        print(json.dumps(res.as_json()))
    elif res.n_atoms is None:
        for i, e in enumerate(res.energies):
            print(f"{i}\t{e:.6f} {res.units}")
    else:
        for i, (e, n) in enumerate(zip(res.energies, res.n_atoms)):
            line = f"{i}\t{e:.6f} eV\t{e / n:.6f} eV/atom\t{n} atoms"
            if res.uncertainty is not None:
                line += f"\t+- {res.uncertainty[i] / n * 1e3:.2g} meV/atom"
                line += "\tOUT OF DOMAIN" if res.out_of_domain[i] else ""
            print(line)
    return 0


def _cmd_demo(args) -> int:
    from ..demo import demo_ising, demo_sheet

    if args.system == "ising":
        demo_ising(args.seed)
    else:
        demo_sheet(args.size_um, args.seed)
    return 0
