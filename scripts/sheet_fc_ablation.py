"""Focus/context ablation for the hexagonal-sheet EDNN at one training budget.

Every run trains the same VALID sheet CNN (``SHEET_LAYERS``; only the dense
head's input grows with the tile) on the same cells with the same schedule,
then measures the held-out per-atom error and the supercell transfer. The
focus must divide the 120-px cell and be a multiple of the stride 8 (8, 24,
40 or 120 px), and the tile must survive the VALID stack (f + 2c >= 56).

    ednn-dask dataset sheets --kind hexagonal --n 5000 --seed 3 --out runs/hex_5k.zarr
    python scripts/sheet_fc_ablation.py --data runs/hex_5k.zarr --test runs/hex_test.zarr \
        --epochs 8 --out docs/sheet_fc_ablation.json

``--batch-size``, ``--lr`` and ``--widths`` change the training budget's other
knobs for every pair in ``--grid`` (e.g. ``--grid 8x24 --widths 32 64 64 128 128
--append``); the table lists what differs from the defaults.

Prints a Markdown table and writes the metrics as JSON after every run.
"""
from __future__ import annotations

import argparse
import json
import time

from ednn_dask import _json
from ednn_dask.train import TrainConfig
from ednn_dask.train.sheets import SHEET_LAYERS, InMemory, evaluate_sheet_model, sheet_metadata, train_sheets

#: (f, c) in pixels; 1 px is about 0.105 A
DEFAULT_GRID = ["40x8", "40x16", "40x24", "40x32", "24x16", "24x24", "120x24"]
#: the training budget's other knobs, as recorded with every run
DEFAULT_BATCH, DEFAULT_LR = 32, 1e-3
DEFAULT_WIDTHS = [w for w, _, _ in SHEET_LAYERS]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="training dataset (required unless --table-only)")
    p.add_argument("--test", help="held-out dataset (required unless --table-only)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--grid", nargs="+", default=DEFAULT_GRID, help="FxC pairs in pixels")
    p.add_argument("--out", default="docs/sheet_fc_ablation.json")
    p.add_argument("--append", action="store_true", help="add runs to an existing --out file")
    p.add_argument("--table-only", action="store_true", help="print the table of an existing --out file")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    p.add_argument("--lr", type=float, default=DEFAULT_LR)
    p.add_argument("--widths", type=int, nargs=5, metavar="N", default=DEFAULT_WIDTHS, help="conv filters")
    args = p.parse_args()
    if args.table_only:
        with open(args.out) as fh:
            saved = json.load(fh)
        print_table(saved)
        return
    if not (args.data and args.test):
        p.error("--data and --test are required")
    rows = []
    if args.append:
        with open(args.out) as fh:
            rows = json.load(fh)["runs"]
    for pair in args.grid:
        f, c = (int(v) for v in pair.lower().split("x"))
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_final=1e-6, seed=0, progress=False)
        t0 = time.perf_counter()
        model, history, info = train_sheets(args.data, f, c, cfg, activation="silu", widths=args.widths)
        seconds = time.perf_counter() - t0
        meta = sheet_metadata("ablation", info["attrs"]["kind"], f, c, cfg, info["attrs"])
        report = evaluate_sheet_model(InMemory(model, meta), args.test)
        spacing = info["attrs"]["spacing"]
        rows.append({
            "focus": f, "context": c, "batch_size": args.batch_size, "lr": args.lr,
            "widths": list(args.widths),
            "context_angstrom": round(c * min(spacing), 2),
            "parameters": sum(q.numel() for q in model.parameters()),
            "test_mae_mev_per_atom": report["test"]["mae_mev_per_atom"],
            "test_median_mev_per_atom": report["test"]["median_mev_per_atom"],
            "supercells_mae_mev_per_atom": report["supercells"]["mae_mev_per_atom"],
            "final_train_loss": next(h["loss"] for h in reversed(history) if h.get("loss") is not None),
            "train_seconds": seconds,
        })
        print(f"done f={f} c={c}: {rows[-1]['test_mae_mev_per_atom']:.2f} meV/atom", flush=True)
        with open(args.out, "w") as fh:  # after every run: a crash loses only the run in progress
            fh.write(_json.dumps(_saved(args, rows), indent=1))
    print_table(_saved(args, rows))


def _saved(args, rows) -> dict:
    return {"data": args.data, "test": args.test, "epochs": args.epochs, "runs": rows}


def print_table(saved: dict) -> None:
    print(f"\ntrain {saved['data']}, test {saved['test']}, {saved['epochs']} epochs, "
          f"Adam -> 1e-6 cosine, SiLU (batch {DEFAULT_BATCH}, lr {DEFAULT_LR:g}, widths {' '.join(map(str, DEFAULT_WIDTHS))} "
          "unless listed)\n")
    print("| f [px] | c [px] | c [Å] | variant | parameters | held-out MAE [meV/atom] | median | supercells MAE | train [s] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in saved["runs"]:
        print(f"| {r['focus']} | {r['context']} | {r['context_angstrom']} | {_variant(r)} | {r['parameters']:,} "
              f"| {r['test_mae_mev_per_atom']:.2f} | {r['test_median_mev_per_atom']:.2f} "
              f"| {r['supercells_mae_mev_per_atom']:.2f} | {r['train_seconds']:.0f} |")


def _variant(row: dict) -> str:
    """What differs from the default batch, lr and widths ("—" if nothing)."""
    parts = []
    if row.get("batch_size", DEFAULT_BATCH) != DEFAULT_BATCH:
        parts.append(f"batch {row['batch_size']}")
    if row.get("lr", DEFAULT_LR) != DEFAULT_LR:
        parts.append(f"lr {row['lr']:g}")
    if row.get("widths", DEFAULT_WIDTHS) != DEFAULT_WIDTHS:
        parts.append("widths " + " ".join(map(str, row["widths"])))
    return ", ".join(parts) or "—"


if __name__ == "__main__":
    main()
