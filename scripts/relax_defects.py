"""Relax a vacancy and a Stone–Wales defect with ASE's FIRE, with the EDNN calculator and with the reference.

    PYTHONPATH=$PWD python scripts/relax_defects.py [--model hexagonal-sheet] [--out docs/relax_defects.png]

Both defects sit in a 3 x 3 supercell of the 60-atom graphene cell (a = 2.5 Å, 540 sites, 37.5 x 39.0 Å): one
atom removed, or one C–C bond rotated by 90° about its midpoint. Each is relaxed in plane (FIRE, fmax
0.05 eV/Å, at most 400 steps) from the same start twice: with ``EDNNCalculator(model, dtype=torch.float64)`` and
with the Tersoff B/C/N reference. Reported per defect (``.json`` next to the figure): the relaxation energy
(E_start - E_relaxed) by each, the reference energy at the EDNN's relaxed geometry minus at its own (how good
the EDNN's geometry is for the reference), the RMS and largest distance between the two relaxed geometries, the
steps taken, and whether the EDNN's domain check flags the start or the relaxed structure. The figure: the
reference energy along both relaxation paths.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np


def stone_wales(atoms):
    """The graphene supercell with the bond nearest its centre rotated by 90° about the bond's midpoint."""
    from scipy.spatial import cKDTree

    out = atoms.copy()
    L = out.cell.lengths()[:2]
    xy = out.positions[:, :2]
    i = int(np.argmin(np.hypot(*(xy - L / 2).T)))
    d, j = cKDTree(xy).query(xy[i], k=4)
    j = int(j[1])
    mid = (xy[i] + xy[j]) / 2
    for k in (i, j):
        v = xy[k] - mid
        out.positions[k, :2] = mid + np.array([-v[1], v[0]])
    return out


def relax(atoms, calc, fmax: float, steps: int):
    from ase.optimize import FIRE

    from ednn_dask.reference import tersoff_calculator

    at = atoms.copy()
    at.calc = calc
    ref = tersoff_calculator()
    path = []

    def record():
        probe = at.copy()
        probe.calc = ref
        path.append(probe.get_potential_energy())

    opt = FIRE(at, logfile=None)
    opt.attach(record)
    converged = opt.run(fmax=fmax, steps=steps)
    return at, np.array(path), bool(converged), opt.get_number_of_steps()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hexagonal-sheet")
    ap.add_argument("--out", default="docs/relax_defects.png")
    ap.add_argument("--fmax", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=400)
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ednn_dask.ase import DomainWarning, EDNNCalculator
    from ednn_dask.reference import tersoff_calculator
    from ednn_dask.systems import sheets as S

    torch.set_num_threads(1)
    base = S.supercell(S.hexagonal_sheet(), 3, 3)
    vacancy = base.copy()
    del vacancy[int(np.argmin(np.hypot(*(vacancy.positions[:, :2] - vacancy.cell.lengths()[:2] / 2).T)))]
    defects = {"vacancy": vacancy, "Stone-Wales": stone_wales(base)}
    report, fig = {}, plt.figure(figsize=(9, 3.6))
    for k, (name, start) in enumerate(defects.items()):
        ednn = EDNNCalculator(args.model, dtype=torch.float64)
        with warnings.catch_warnings():  # the flags are read from the calculator's results
            warnings.simplefilter("ignore", DomainWarning)
            e_start = start.copy()
            e_start.calc = ednn
            E0 = e_start.get_potential_energy()
            flagged_start = bool(e_start.calc.results.get("out_of_domain"))
            relaxed_e, path_e, conv_e, n_e = relax(start, ednn, args.fmax, args.steps)
            E1 = relaxed_e.get_potential_energy()
            flagged_end = bool(relaxed_e.calc.results.get("out_of_domain"))
            reasons_end = list(relaxed_e.calc.results.get("domain_reasons", []))
        relaxed_r, path_r, conv_r, n_r = relax(start, tersoff_calculator(), args.fmax, args.steps)
        d = relaxed_e.positions[:, :2] - relaxed_r.positions[:, :2]
        L = start.cell.lengths()[:2]
        d -= np.round(d / L) * L
        d -= d.mean(0)  # the energies do not depend on a rigid shift
        dist = np.hypot(d[:, 0], d[:, 1])
        report[name] = {
            "atoms": len(start), "ednn_steps": n_e, "ednn_converged": conv_e, "reference_steps": n_r,
            "reference_converged": conv_r,
            "relaxation_energy_ednn_eV": float(E0 - E1), "relaxation_energy_reference_eV": float(path_r[0] - path_r[-1]),
            "reference_at_ednn_geometry_minus_reference_minimum_eV": float(path_e[-1] - path_r[-1]),
            "rms_distance_A": float(np.sqrt(np.mean(dist ** 2))), "max_distance_A": float(dist.max()),
            "flagged_at_start": flagged_start, "flagged_relaxed": flagged_end, "reasons_relaxed": reasons_end,
        }
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot(path_r - path_r[-1], label="relaxed with the reference", color="k")
        ax.plot(path_e - path_r[-1], label=f"relaxed with {args.model}", color="tab:red", ls="--")
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xlabel("FIRE step")
        ax.set_ylabel("reference energy − its minimum (eV)")
        ax.set_title(f"{name}, {len(start)} atoms")
        ax.legend(fontsize=8)
        print(name, json.dumps(report[name]), flush=True)
    fig.tight_layout()
    out = Path(args.out)
    fig.savefig(out, dpi=120)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
