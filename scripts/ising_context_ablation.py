"""Paper §3.1 context ablation: f = 1 with c = 1, 2, 3 at the same training budget.

Every run uses the same data (same seed), the same number of epochs, batch
size and learning-rate schedule, and the paper's dense subnet sized for its
tile (32 (f+2c)^2 -> 64 -> 64 -> 1), so larger contexts mean more weights to
fit in the same number of steps, as in the paper.

    python scripts/ising_context_ablation.py [--n 20000] [--epochs 15] [--out docs/ising_ablation.json]

Prints a Markdown table and writes the full metrics as JSON.
"""
from __future__ import annotations

import argparse
import json
import time

from ednn_dask import _json
from ednn_dask.train import TrainConfig
from ednn_dask.train.ising import train_ising


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--contexts", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--out", default="docs/ising_ablation.json")
    p.add_argument("--table-only", action="store_true", help="print the table of an existing --out file")
    args = p.parse_args()
    if args.table_only:
        with open(args.out) as fh:
            saved = json.load(fh)
        print_table(saved["runs"], saved["n"], saved["epochs"])
        return
    rows = []
    for c in args.contexts:
        cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=1e-3, lr_final=1e-6, seed=0, progress=False)
        t0 = time.perf_counter()
        model, _, report = train_ising(1, c, n=args.n, config=cfg, data_seed=1)
        n_params = sum(p.numel() for p in model.parameters())
        rows.append({**report, "focus": 1, "context": c, "parameters": n_params, "wall_seconds": time.perf_counter() - t0})
        print(f"done c={c}", flush=True)
        with open(args.out, "w") as fh:  # after every run: a crash loses only the run in progress
            fh.write(_json.dumps({"n": args.n, "epochs": args.epochs, "runs": rows}, indent=1))
    print_table(rows, args.n, args.epochs)


def print_table(rows, n, epochs) -> None:
    print(f"\n{n} 8x8 configurations (90% train), {epochs} epochs, batch 128, Adam 1e-3 -> 1e-6 cosine\n")
    print("| f | c | parameters | 8x8 median abs err [J] | 8x8 MAE [J] | 128x128 median rel err | train time [s] |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| 1 | {r['context']} | {r['parameters']:,} | {r['test']['median_ae']:.2e} | {r['test']['mae']:.2e} "
            f"| {r['transfer']['median_rel']:.1e} | {r.get('wall_seconds', r['seconds']['train']):.0f} |"
        )


if __name__ == "__main__":
    main()
