"""Langevin MD of graphene at 1000 K with the EDNN calculator against MD with the reference: g(r) and energies.

    PYTHONPATH=$PWD python scripts/md_gr.py [--model hexagonal-sheet] [--steps 3000] [--out docs/md_gr.png]

The 60-atom graphene cell (a = 2.5 Å) runs the same in-plane Langevin MD (:func:`ednn_dask.systems.md.run_md`:
1 fs, friction 0.01/fs, z fixed, the same seed) twice: with ``EDNNCalculator(model)`` (float32, the model
file's program) and with the Tersoff B/C/N reference, a frame every 20 fs; a run stops where the calculator
refuses the structure. Reported: g(r) of the frames after 1 ps, the reference energy of every frame minus its
mean over the reference run's last ``steps`` - 1000 (does the EDNN's dynamics stay where the reference's does),
how many frames the model's domain check flags and when first, and where a run stopped. Writes the figure and
``.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _run(atoms, calc, temperature: float, steps: int, every: int, model) -> dict:
    """In-plane Langevin MD as :func:`ednn_dask.systems.md.run_md` runs it (same settings, seed 0), a frame
    and the model's domain verdict every ``every`` steps; stops where the calculator refuses the structure."""
    from ase import Atoms, units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from ednn_dask.errors import EDNNError
    from ednn_dask.predict import predict_frames
    from ednn_dask.systems import md

    rng = np.random.default_rng(0)
    at = md._in_plane(atoms, calc)
    MaxwellBoltzmannDistribution(at, temperature_K=temperature, rng=rng)
    v = at.get_velocities()
    v[:, 2] = 0.0
    at.set_velocities(v)
    dyn = Langevin(at, 1.0 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, fixcm=False, rng=rng)
    frames, flags, failed, done = [], [], None, 0
    while done < steps:
        try:
            dyn.run(every)
        except EDNNError as exc:
            failed = {"step": done + 1, "error": str(exc)}
            break
        done += every
        frame = Atoms(at.numbers, positions=at.positions, cell=at.cell, pbc=True)
        frame.wrap()
        frames.append(frame)
        try:
            flags.append(bool(predict_frames(model, [frame]).out_of_domain[0]))
        except EDNNError:
            flags.append(True)
    first = next((k for k, f in enumerate(flags) if f), None)
    return {"frames": frames, "steps": done, "failed": failed, "frames_out_of_domain": int(sum(flags)),
            "first_flagged_step": None if first is None else (first + 1) * every}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hexagonal-sheet")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--temperature", type=float, default=1000.0)
    ap.add_argument("--out", default="docs/md_gr.png")
    args = ap.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ednn_dask.ase import EDNNCalculator
    from ednn_dask.models import get_model
    from ednn_dask.reference import tersoff_calculator, tersoff_energy
    from ednn_dask.simulate import radial_distribution
    from ednn_dask.systems import sheets as S

    torch.set_num_threads(1)
    atoms = S.hexagonal_sheet()
    L = atoms.cell.lengths()[:2]
    every, equil = 20, 1000
    runs = {}
    model = get_model(args.model)
    for name, calc in (("reference", tersoff_calculator()), (args.model, EDNNCalculator(model))):
        runs[name] = _run(atoms, calc, args.temperature, args.steps, every, model)
        print(name, {k: v for k, v in runs[name].items() if k != "frames"}, flush=True)
    rmax = float(min(L)) / 2
    report = {"temperature_K": args.temperature, "atoms": len(atoms), "steps": args.steps}
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.6))
    skip = equil // every
    ref_mean = np.mean([tersoff_energy(f) for f in runs["reference"]["frames"][skip:]])
    for name, style in (("reference", dict(color="k")), (args.model, dict(color="tab:red", ls="--"))):
        run = runs[name]
        fr = run["frames"]
        e = np.array([tersoff_energy(f) for f in fr]) - ref_mean
        report[name] = {k: v for k, v in run.items() if k != "frames"}
        bx.plot((np.arange(len(e)) + 1) * every / 1000, e, label=f"MD with {name}", **style)
        if len(fr) > skip:
            r, g = radial_distribution([f.positions[:, :2] for f in fr[skip:]], L, rmax)
            peak = np.where((r > 1.2) & (r < 1.8), g, -1)
            report[name].update(first_peak=[float(r[np.argmax(peak)]), float(peak.max())], g=g.round(4).tolist())
            report["r"] = r.round(4).tolist()
            ax.plot(r, g, label=f"MD with {name}", **style)
    ax.set_xlabel("r (Å)")
    ax.set_ylabel("g(r), in plane")
    ax.set_title(f"graphene, {len(atoms)} atoms, {args.temperature:.0f} K")
    ax.legend()
    bx.set_xlabel("time (ps)")
    bx.set_yscale("symlog", linthresh=1.0)
    bx.set_ylabel("reference energy − mean of reference run (eV)")
    bx.legend()
    fig.tight_layout()
    out = Path(args.out)
    fig.savefig(out, dpi=120)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "g"} if isinstance(v, dict) else v)
                      for k, v in report.items() if k != "r"}))


if __name__ == "__main__":
    main()
