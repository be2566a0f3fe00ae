"""The bundled models at work, no training: ``ednn-dask demo [sheet|ising]``.

Each demo prints a short report through ``echo`` and returns what it
measured, so the same checks run from Python.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["demo_sheet", "demo_ising", "sheet_reference_error"]

#: Largest sheet checked against the Tersoff reference (about 20 s for 0.1 µm² on 2 cores).
REFERENCE_MAX_ATOMS = 500_000


def sheet_reference_error(atoms, total: float) -> tuple[float, float]:
    """``(Tersoff energy in eV, EDNN error in meV/atom)`` of a compact sheet and its EDNN ``total``."""
    from ase import Atoms

    from .reference import tersoff_energy

    Lx, Ly = atoms.lengths_xy
    ref = tersoff_energy(Atoms(numbers=atoms.numbers, positions=np.column_stack(
        [atoms.positions, np.zeros(len(atoms.positions))]), cell=[Lx, Ly, 20.0], pbc=True))
    return ref, (total - ref) / atoms.numbers.size * 1e3


def demo_sheet(size_um: float = 0.02, seed: int = 0, echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Build a porous graphene sheet, evaluate it with the default model on a LocalCluster, check it against Tersoff."""
    import tempfile

    from . import config
    from .cluster import local_cluster
    from .evaluate import evaluate
    from .systems.large import porous_graphene_arrays, save_atoms_npz

    side = size_um * 1e4
    model = config.get("evaluate.model")
    with tempfile.TemporaryDirectory() as tmp:
        atoms = porous_graphene_arrays((side, side), seed=seed)
        path = save_atoms_npz(atoms, Path(tmp) / "sheet.npz")
        Lx, Ly = atoms.lengths_xy
        echo(f"porous graphene sheet: {Lx / 10:.1f} x {Ly / 10:.1f} nm, {atoms.numbers.size:,} atoms (seed {seed})")
        workers = max(1, os.cpu_count() or 1)
        with local_cluster(workers, 1) as client:
            echo(f"LocalCluster: {workers} workers x 1 thread; dashboard {client.dashboard_link}")
            res = evaluate(path, model, client=client, progress=True)
    echo(f"EDNN ({res.model}): {res.total:,.3f} eV = {res.per_atom:.5f} eV/atom")
    echo(f"  {res.tiles:,} tiles, {res.pixels:,} pixels on the fly in {res.seconds:.1f} s: "
         f"{res.pixels / res.seconds:,.0f} px/s, {res.n_atoms / res.seconds:,.0f} atoms/s")
    out: dict[str, Any] = {"total": res.total, "per_atom": res.per_atom, "n_atoms": res.n_atoms}
    if atoms.numbers.size <= REFERENCE_MAX_ATOMS:
        ref, err = sheet_reference_error(atoms, res.total)
        echo(f"Tersoff reference: {ref:,.3f} eV = {ref / atoms.numbers.size:.5f} eV/atom; "
             f"EDNN error {err:+.2f} meV/atom")
        out.update(reference=ref, error_mev_per_atom=err)
    return out


def demo_ising(seed: int = 0, echo: Callable[[str], Any] = print) -> list[dict[str, float]]:
    """The bundled Ising model against exact energies on fresh 8x8 and 128x128 samples."""
    import torch

    from .models import get_model
    from .systems.ising import T_CRITICAL, ising_energy, sample_ising
    from .train.ising import spins_to_fields

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = get_model("ising")
    echo(f"model: bundled '{model.name}' (f={model.card.focus}, c={model.card.context})")
    echo(f"{'L':>5} {'T/Tc':>6} {'exact E [J]':>14} {'EDNN E [J]':>14} {'|err| [J]':>10} {'rel err':>9}")
    rows = []
    for L, ratios in ((8, (0.5, 1.0, 2.0)), (128, (0.9, 1.0, 1.1))):
        temps = [r * T_CRITICAL for r in ratios]
        spins, T = sample_ising(len(temps), L, temps, seed=seed, n_equilibrate=200)
        t0 = time.perf_counter()
        pred = model.predict(spins_to_fields(spins)).numpy()
        dt = time.perf_counter() - t0
        for e, p, t in zip(ising_energy(spins), pred, T):
            rel = abs(p - e) / abs(e) if e else float("nan")
            echo(f"{L:>5} {t / T_CRITICAL:>6.2f} {e:>14.3f} {p:>14.3f} {abs(p - e):>10.2e} {rel:>9.1e}")
            rows.append({"L": L, "T": float(t), "exact": float(e), "ednn": float(p)})
        echo(f"      ({len(temps)} configurations of {L}x{L}: {L * L * len(temps) / dt:,.0f} tiles/s)")
    return rows
