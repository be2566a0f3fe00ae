"""``ednn-dask models``, ``predict``, ``demo``, ``upgrade-model`` and ``fit-domain``: the models and what they say."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import DomainError, InputError
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

    fd = sub.add_parser("fit-domain", parents=[common],
                        help="give a sheet model its domain of validity: fitted on its training data, calibrated on "
                        "held-out data (see docs/uncertainty.md)")
    fd.add_argument("model", help="bundled model name or model file")
    fd.add_argument("--train", required=True, help="training dataset (ednn-dask dataset sheets) the model learned from")
    fd.add_argument("--held-out", required=True, help="held-out dataset drawn like the training data")
    fd.add_argument("--out", required=True, help="model file to write (.pt2)")
    fd.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    fd.set_defaults(func=_cmd_fit_domain)

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
        print(f"  domain          {_domain_line(card)}")
    return 0


def _domain_line(card) -> str:
    domain = card.domain
    if domain is None:
        return "none recorded: predictions carry no uncertainty and no out-of-domain check"
    cal = domain["uncertainty"]["calibration"]
    return (f"fitted ({domain['fitted_on']}); held-out: {cal['flagged']} of {cal['held_out']} flagged, median "
            f"uncertainty {cal['median_sigma_mev_per_atom']:.2g} meV/atom, {cal['within_2_sigma']:.0%} within 2 sigma")


def _cmd_upgrade_model(args) -> int:
    from .._outputs import check_file_output
    from ..models import read_card, upgrade_model

    out = check_file_output(args.out, inputs=[args.model], overwrite=args.overwrite)
    path = upgrade_model(args.model, out)
    card = read_card(path)
    print(f"wrote {path}: model format {card.format_version}, program {card.program['kind']}"
          f"{', halo sharing runs the file' if card.halo_sharing_allowed else ''}")
    return 0


def _cmd_fit_domain(args) -> int:
    from .._outputs import check_file_output
    from ..domain._model import add_domain
    from ..models import get_model, read_card

    for path in (args.train, args.held_out):
        if not Path(path).exists():
            raise InputError(f"dataset not found: {path}")
    model = get_model(args.model)
    out = check_file_output(args.out, inputs=[model.source, args.train, args.held_out], overwrite=args.overwrite,
                            suffix=".pt2")
    path = add_domain(model, args.train, args.held_out, out)
    cal = read_card(path).domain["uncertainty"]["calibration"]
    print(f"wrote {path}: held-out cells flagged {cal['flagged']} of {cal['held_out']}, within 1 / 2 sigma "
          f"{cal['within_1_sigma']:.0%} / {cal['within_2_sigma']:.0%}")
    return 0


def _cmd_predict(args) -> int:
    import torch

    from ..models import load_model, read_card, resolve_model
    from ..predict import predict_file, read_input

    path = resolve_model(args.model)
    checked = read_input(read_card(path, tile_shape=False), args.input)  # the input's errors come before the network loads
    model = load_model(path)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    res = predict_file(model, checked)
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
