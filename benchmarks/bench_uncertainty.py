"""Cost of the per-tile uncertainty: the bundled hexagonal-sheet model with and without its domain, one run.

    python benchmarks/bench_uncertainty.py [--size-um 0.1] [--repeats 3] [--chunk 2048]

Builds a porous graphene sheet (``size_um`` micrometres a side), and
evaluates it with ``ednn_dask.evaluate.evaluate`` straight from its atoms
(rasterized chunk by chunk, threaded scheduler) twice per repeat: with the
bundled model, whose field program also gives each tile's feature distance,
and with the same network re-saved without its domain. Prints the median
times, their ratio and the largest difference of the totals (the energies
must not change).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def _without_domain(model, path: Path) -> Path:
    from ednn_dask.models import save_model
    from ednn_dask.models._upgrade import _FROM_NETWORK
    from ednn_dask.nn import EDNN

    net = model.tile_net()
    net.domain = None
    meta = {k: v for k, v in model.metadata.items() if k not in (*_FROM_NETWORK, "domain")}
    return save_model(EDNN(net, model.card.focus, model.card.context), path, meta)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-um", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--chunk", type=int, default=2048, help="chunk edge in pixels")
    args = p.parse_args()

    import torch

    from ednn_dask.evaluate import evaluate
    from ednn_dask.models import get_model
    from ednn_dask.systems.large import porous_graphene_arrays, save_atoms_npz

    torch.set_num_threads(1)  # two threads of the scheduler, one torch thread each
    model = get_model("hexagonal-sheet")
    side = args.size_um * 1e4
    with tempfile.TemporaryDirectory() as tmp:
        atoms = porous_graphene_arrays((side, side), seed=0)
        sheet = save_atoms_npz(atoms, Path(tmp) / "sheet.npz")
        plain = _without_domain(model, Path(tmp) / "plain.pt2")
        times: dict[str, list[float]] = {"with domain": [], "without": []}
        totals = {}
        for _ in range(args.repeats):
            for name, m in (("without", plain), ("with domain", model.source)):
                t0 = time.perf_counter()
                totals[name] = evaluate(sheet, m, chunk=args.chunk, scheduler="threads").total
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"sheet {args.size_um} um a side, {len(atoms.numbers)} atoms, chunk {args.chunk} px")
    for k, v in med.items():
        print(f"{k:>12}: {v:.2f} s median of {args.repeats}")
    print(f"overhead of the uncertainty: {med['with domain'] / med['without'] - 1:+.1%}")
    print(f"totals: {totals['with domain']:.6f} vs {totals['without']:.6f} eV "
          f"(difference {abs(totals['with domain'] - totals['without']):.2e} eV)")


if __name__ == "__main__":
    main()
