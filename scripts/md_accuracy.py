"""Accuracy of a sheet model on molecular-dynamics test sets, per structure class and temperature.

Test frames come from :mod:`ednn_dask.systems.md` (Langevin with the reference potential, relaxed defects and
edges, random translations and mirrors) with their own seed (2024; the training sets use 1, 2, 11, 12) and
the ladder of temperatures 300/700/1000/1500 K. Each frame goes through ``predict_frames`` as a user's
structure does (checks, registration, domain); a frame the model refuses is counted with the reason.
Energy errors are model − reference per atom, in meV/atom; force errors (:func:`ednn_dask.forces.energy_and_forces`,
float32, against the reference's forces) the mean absolute error of the in-plane components, in eV/Å, beside
the mean absolute reference component (``--markdown JSON --forces`` prints that table)::

    python scripts/md_accuracy.py --model hexagonal-sheet --out docs/md_accuracy_hexagonal.json   # ~3 min
    python scripts/md_accuracy.py --model porous-graphene --out docs/md_accuracy_porous.json
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from ednn_dask.forces import energy_and_forces
from ednn_dask.models import get_model
from ednn_dask.predict import predict_frames
from ednn_dask.reference import REFERENCE_NAME, tersoff_calculator, tersoff_energy
from ednn_dask.systems import md
from ednn_dask.systems import sheets as S

LADDER = (300.0, 700.0, 1000.0, 1500.0)

#: (row label, class, temperatures, trajectories per temperature, frames per trajectory, strain, lattice constant)
HEXAGONAL = [
    *((c, c, LADDER, 3, 2, None, None) for c in ("graphene", "hbn", "stripes", "vacancies", "ribbon-zigzag",
                                                   "ribbon-armchair", "alloy")),
    ("3x3 supercell", "supercell", (700.0, 1000.0), 2, 2, None, None),
    ("2x2 with a hole", "holes", (1000.0,), 2, 2, None, None),
    ("strained +-3 %", "graphene", (300.0, 1000.0), 4, 1, "random", None),
    ("stripes strained +-3 %", "stripes", (300.0, 1000.0), 4, 1, "random", None),
    ("graphene a = 2.46 A", "graphene", (300.0, 1000.0), 3, 1, None, 2.46),
]
POROUS = [
    ("porous", "porous", LADDER, 2, 2, None, None),
    ("3x3 graphene", "supercell", (1000.0,), 2, 2, None, None),
    ("porous strained +-3 %", "porous", (1000.0,), 3, 1, "random", None),
]


def frames_for(cls: str, T: float, runs: int, per_run: int, strain, a, rng) -> list:
    out = []
    for _ in range(runs):
        eps = md.random_strain(rng) if strain == "random" else (0.0, 0.0)
        if a is not None:  # another lattice constant: the whole cell scaled
            eps = (a / S.A_LATTICE - 1 + eps[0], a / S.A_LATTICE - 1 + eps[1])
        out += md.sample(cls, rng, T, strain_xy=eps, steps=150, snapshots=per_run, every=50)
    return out


def measure(model_name: str, rows, seed: int = 2024) -> dict:
    model = get_model(model_name)
    rng = np.random.default_rng(seed)
    table = []
    for label, cls, temps, runs, per_run, strain, a in rows:
        for T in temps:
            frames = frames_for(cls, T, runs, per_run, strain, a, rng)
            err, flagged, refused, dF, F = [], [], [], [], []
            for f in frames:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        p = predict_frames(model, [f])
                except ValueError as exc:
                    refused.append(str(exc).split(": ", 1)[-1][:160])
                    continue
                err.append((float(p.energies[0]) - tersoff_energy(f)) / len(f) * 1e3)
                ref = f.copy()
                ref.calc = tersoff_calculator()
                F.append(ref.get_forces()[:, :2])
                dF.append(energy_and_forces(model, f).forces[:, :2] - F[-1])
                flagged.append(bool(p.out_of_domain[0]) if p.out_of_domain is not None else False)
            err, flagged = np.abs(np.array(err)), np.array(flagged, bool)
            inside = err[~flagged] if err.size else err
            table.append({
                "class": label, "temperature_K": T, "n": len(frames), "accepted": int(err.size),
                "flagged": int(flagged.sum()), "refused": len(refused), "refusal": refused[0] if refused else None,
                "mae": float(err.mean()) if err.size else None, "max": float(err.max()) if err.size else None,
                "mae_in_domain": float(inside.mean()) if inside.size else None,
                "max_in_domain": float(inside.max()) if inside.size else None,
                "force_mae": float(np.abs(np.concatenate(dF)).mean()) if dF else None,
                "force_reference_mean": float(np.abs(np.concatenate(F)).mean()) if F else None,
            })
            r = table[-1]
            print(f"{label:24s} {T:6.0f} K  n={r['n']:3d} accepted={r['accepted']:3d} flagged={r['flagged']:3d}  "
                  f"MAE {r['mae'] if r['mae'] is not None else float('nan'):8.2f}  in-domain MAE "
                  f"{r['mae_in_domain'] if r['mae_in_domain'] is not None else float('nan'):8.2f}  force MAE "
                  f"{r['force_mae'] if r['force_mae'] is not None else float('nan'):.3f} eV/A"
                  + (f"  refused: {r['refusal'][:70]}" if r["refused"] else ""), flush=True)
    return {"model": model_name, "reference": REFERENCE_NAME, "seed": seed, "units": "meV/atom",
            "rows": table}


def markdown(report: dict, forces: bool = False) -> str:
    """One row per class: MAE (meV/atom) per temperature, with the flagged and refused counts; or, with
    ``forces``, the force MAE (eV/Å) / mean absolute reference force component."""
    temps = sorted({r["temperature_K"] for r in report["rows"]})
    classes = list(dict.fromkeys(r["class"] for r in report["rows"]))
    head = "| class | " + " | ".join(f"{t:.0f} K" for t in temps) + " |"
    lines = [head, "|---" * (len(temps) + 1) + "|"]
    for c in classes:
        cells = []
        for t in temps:
            r = next((r for r in report["rows"] if r["class"] == c and r["temperature_K"] == t), None)
            if r is None:
                cells.append("")
            elif not r["accepted"]:
                cells.append(f"refused {r['refused']}/{r['n']}")
            elif forces:
                cells.append(f"{r['force_mae']:.2f} / {r['force_reference_mean']:.2f}")
            else:
                cells.append(f"{r['mae']:.2f}" + (f" (flagged {r['flagged']}/{r['n']})" if r["flagged"] else ""))
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hexagonal-sheet")
    ap.add_argument("--set", choices=["hexagonal", "porous"], help="default: from the model name")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out")
    ap.add_argument("--markdown", metavar="JSON", help="print the table of a saved report and exit")
    ap.add_argument("--forces", action="store_true", help="with --markdown: the force table")
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text()), args.forces))
        return
    which = args.set or ("porous" if "porous" in args.model else "hexagonal")
    t0 = time.perf_counter()
    report = measure(args.model, HEXAGONAL if which == "hexagonal" else POROUS, args.seed)
    report["seconds"] = time.perf_counter() - t0
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
