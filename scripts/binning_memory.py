"""Peak memory of sorting a large sheet's atoms into chunk bins (what each Dask worker does once).

    ednn-dask make-sheet --size-um 1.0 --out runs/s1um.npz
    python scripts/binning_memory.py runs/s1um.npz [--chunk 1024]

Loads the atoms, then bins them at the bundled models' pixel spacing and prints the time and the
process's peak resident memory before and after binning (Linux ``ru_maxrss``). Run it in a fresh
process: the peak is per process.
"""
from __future__ import annotations

import argparse
import resource
import time

from ednn_dask.data.sheets import SHEET_SPACING
from ednn_dask.raster._gaussian import RasterGrid
from ednn_dask.systems.large import load_atoms


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("atoms", help="atoms .npz (ednn-dask make-sheet)")
    p.add_argument("--chunk", type=int, default=1024)
    args = p.parse_args()
    atoms = load_atoms(args.atoms)
    grid = RasterGrid.for_cell(atoms.lengths_xy, SHEET_SPACING)
    before = _peak_gb()
    t0 = time.perf_counter()
    atoms.bin(grid, (args.chunk, args.chunk))
    print(f"{atoms.numbers.size:,} atoms, {grid.shape[0]} x {grid.shape[1]} px: binned in "
          f"{time.perf_counter() - t0:.1f} s; peak memory {before:.2f} GB after loading -> {_peak_gb():.2f} GB")


if __name__ == "__main__":
    main()
