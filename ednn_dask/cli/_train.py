"""``ednn-dask train ising|sheets``: training a model and saving it with its measured accuracy."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError
from ._types import at_least, positive

__all__ = ["add_commands"]


def add_commands(sub, common) -> None:
    """Register ``train ising`` and ``train sheets`` on the subparsers ``sub``."""
    tr = sub.add_parser("train", help="train a model")
    trs = tr.add_subparsers(dest="system", required=True)
    ti = trs.add_parser("ising", parents=[common], help="train the paper's dense Ising EDNN")
    ti.add_argument("--focus", "-f", type=at_least(1), default=1)
    ti.add_argument("--context", "-c", type=at_least(0), default=1)
    ti.add_argument("--n", type=at_least(1), default=100_000, help="training+validation configurations")
    ti.add_argument("--L", type=at_least(1), default=8)
    ti.add_argument("--epochs", type=at_least(1), default=40)
    ti.add_argument("--batch-size", type=at_least(1), default=128)
    ti.add_argument("--lr", type=positive, default=1e-3)
    ti.add_argument("--lr-final", type=at_least(0.0, float), default=1e-6)
    ti.add_argument("--seed", type=int, default=0, help="weights, split and shuffling")
    ti.add_argument("--data-seed", type=int, default=1)
    ti.add_argument("--data", help="cache the sampled dataset in this .npz (reused if present)")
    ti.add_argument("--threads", type=at_least(1), default=None)
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
    ts.add_argument("--test", help="held-out dataset for the accuracy report and the calibration of the "
                    "model's domain (fitted on --data; see docs/uncertainty.md)")
    ts.add_argument("--name", default="hexagonal-sheet")
    ts.add_argument("--activation", choices=["relu", "silu", "tanh"], default="relu")
    ts.add_argument("--species", nargs="+", help="train on these species' channels only (e.g. C for porous graphene)")
    ts.add_argument("--init-from", help="fine-tune: start from this model's weights (bundled name or file)")
    ts.add_argument("--widths", type=int, nargs=5, metavar="N", help="filters of the 5 conv layers (default 16 32 32 64 64)")
    ts.add_argument("--dense", type=int, nargs="+", default=[128], metavar="N", help="hidden widths of the dense head")
    ts.add_argument("--symmetries", choices=["auto", "lattice", "mirrors", "none"], default="auto",
                    help="training augmentation: lattice (mirror x and the lattice vector a2, which keep a registered "
                    "raster registered), mirrors (flip x and y), auto: lattice for registered datasets")
    ts.add_argument("--focus", "-f", type=at_least(1), default=40)
    ts.add_argument("--context", "-c", type=at_least(0), default=24)
    ts.add_argument("--epochs", type=at_least(1), default=30)
    ts.add_argument("--batch-size", type=at_least(1), default=32)
    ts.add_argument("--lr", type=positive, default=1e-3)
    ts.add_argument("--lr-final", type=at_least(0.0, float), default=1e-6)
    ts.add_argument("--seed", type=int, default=0)
    ts.add_argument("--threads", type=at_least(1), default=None)
    ts.add_argument("--device", default="cpu", help="train on this torch device, e.g. cuda (the model is saved for the CPU)")
    ts.add_argument("--checkpoint")
    ts.add_argument("--resume", action="store_true")
    ts.add_argument("--report")
    ts.add_argument("--plot", help="parity plot PNG of the held-out set")
    ts.add_argument("--quiet", action="store_true")
    ts.add_argument("--out", required=True)
    ts.set_defaults(func=_cmd_train_sheets)


def _can_fit_domain(model) -> bool:
    """A domain needs the readout's hidden features: a conv subnet with a dense layer before the readout."""
    spec = getattr(model.tile_net.subnet, "spec", {})
    return spec.get("type") == "conv" and bool(spec.get("dense"))


def _model_out(path: str) -> Path:
    out = Path(path)
    if out.suffix not in (".pt2", ".pt"):
        raise InputError(f"--out must end in .pt2 (torch.export) or .pt (TorchScript), got {out}")
    return out


def _train_config(args):
    import torch

    from ..train import TrainConfig

    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise InputError(f"--device {args.device!r} is not a torch device ({e})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {args.device}: torch sees no CUDA GPU on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {args.device}: the MPS backend is not available on this machine")

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_final=args.lr_final,
                       seed=args.seed, threads=args.threads, progress=not args.quiet, device=args.device)


def _cmd_train_ising(args) -> int:
    from ..models import save_model
    from ..train.ising import ising_metadata, train_ising, write_report

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


def _cmd_train_sheets(args) -> int:
    import torch

    from ..models import save_model
    from ..train.ising import write_report
    from ..models.card import ModelCard
    from ..train.sheets import InMemory, evaluate_sheet_model, sheet_metadata, train_sheets

    out = _model_out(args.out)
    for path in (args.data, args.test):
        if path and not Path(path).exists():
            raise InputError(f"dataset not found: {path}")
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
            from ..data.sheets import open_dataset
            from ..plots import parity_plot

            test = open_dataset(args.test, ModelCard(meta).species)
            parity_plot(test["energies"] / test["n_atoms"], np.asarray(pred) / test["n_atoms"], args.plot,
                        title=f"{args.name}: held-out {attrs['kind']} (f={args.focus}, c={args.context})",
                        units="eV/atom")
    meta["accuracy"] = {k: v for k, v in report.items() if k in ("test", "test_set", "supercells")}
    if args.test and _can_fit_domain(model):
        from ..domain._model import fit_for_card
        from ..models._save import _network_fields

        # the card of the file about to be written: the metadata plus what the network itself gives
        card = ModelCard({**meta, **_network_fields(model, model.tile_net, "torch.export", meta["channels"])})
        if card.halo_sharing_exact:
            meta["domain"] = fit_for_card(model.tile_net, card, args.data, args.test)
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
