"""Metropolis Monte Carlo with incremental re-evaluation: time per trial move against sheet size, one run.

    python benchmarks/bench_mc.py [--sizes 60 540 0.1um] [--trials 300] [--threads 1]

For each sheet (pristine graphene, a = 2.5 Å: the 60-atom cell, its 3 x 3 supercell, and an 80 x 77 supercell
about 0.1 µm on a side, 369 600 atoms), builds :class:`ednn_dask.simulate.Metropolis` with the bundled
``hexagonal-sheet`` model (float64) at 1000 K, step 0.05 Å, times ``--trials`` trial moves (median over
blocks of 50), and the full evaluation of the same sheet (rasterize + network, what a move would cost without
the incremental update); then checks the running total against a full evaluation. Prints one row per sheet.
The paper's Monte Carlo (Chem. Sci. 2019, §3.4) took 0.39 s per energy evaluation.
"""
from __future__ import annotations

import argparse
import statistics
import time


def _sheet(size: str):
    from ednn_dask.systems import sheets as S

    cell = S.hexagonal_sheet()
    if size == "60":
        return cell
    if size == "540":
        return S.supercell(cell, 3, 3)
    if size == "0.1um":
        return S.supercell(cell, 80, 77)
    raise SystemExit(f"unknown size {size!r}: 60, 540 or 0.1um")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["60", "540", "0.1um"])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    from ednn_dask.models import get_model
    from ednn_dask.simulate import Metropolis

    torch.set_num_threads(args.threads)
    model = get_model("hexagonal-sheet")
    print("| sheet | atoms | pixels | ms per trial move (median of blocks of 50) | full evaluation, s | "
          "acceptance | |incremental - full| / |E| |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        atoms = _sheet(size)
        t0 = time.perf_counter()
        mc = Metropolis(model, atoms, 1000.0, step=0.05, seed=0)
        setup = time.perf_counter() - t0
        blocks = []
        for _ in range(max(1, args.trials // 50)):
            t = time.perf_counter()
            mc.run(50)
            blocks.append((time.perf_counter() - t) / 50)
        t = time.perf_counter()
        full = mc.full_energy()
        full_s = time.perf_counter() - t
        rel = abs(mc.energy - full) / abs(full)
        px = mc.grid.shape[0] * mc.grid.shape[1]
        print(f"| {size} | {len(atoms)} | {px} | {statistics.median(blocks) * 1e3:.2f} | {full_s:.3g} "
              f"(setup {setup:.3g}) | {mc.accepted / mc.trials:.2f} | {rel:.1e} |", flush=True)


if __name__ == "__main__":
    main()
