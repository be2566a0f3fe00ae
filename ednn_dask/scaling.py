"""Strong and weak scaling of the evaluator (used by the scaling notebooks).

Each measurement starts its own cluster — a ``LocalCluster`` of ``n`` worker
processes × 1 thread, or ``n`` batch jobs of a dask-jobqueue profile — warms it
up on a small sheet (worker start-up and model loading are not evaluation
time), then times one :func:`ednn_dask.evaluate.evaluate` of a porous graphene sheet
rasterized on the fly.
"""
from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["sheet_file", "time_evaluation", "strong_scaling", "weak_scaling", "plot_scaling"]


def sheet_file(size_um: float, directory: str | Path, seed: int = 0) -> Path:
    """A square porous graphene sheet of edge ``size_um`` µm saved as compact atoms (``.npz``)."""
    from .systems.large import porous_graphene_arrays, save_atoms_npz

    side = size_um * 1e4
    return save_atoms_npz(porous_graphene_arrays((side, side), seed=seed), Path(directory) / f"sheet-{size_um:g}um.npz")


@contextlib.contextmanager
def _cluster(n: int, cluster: str):
    from .cluster import local_cluster, resolve_batch, start_cluster, use_profile

    if cluster == "local":
        with local_cluster(n, 1) as client:
            yield client
    else:
        with use_profile(cluster) as data:
            # cores/memory the profile leaves null come from sinfo/pbsnodes, as for `evaluate --nodes`
            spec = resolve_batch(n, data.get("ednn", {}).get("cluster", {}).get("scheduler"), cluster)
            with start_cluster(spec) as client:
                client.wait_for_workers(n * spec.workers_per_job, timeout=spec.start_timeout)
                yield client


def time_evaluation(source, n: int, cluster: str = "local", model=None, warmup=None, **kwargs) -> dict[str, Any]:
    """Seconds for one evaluation of ``source`` on ``n`` workers (local) or ``n`` jobs (profile ``cluster``)."""
    from .evaluate import evaluate

    with _cluster(n, cluster) as client:
        if warmup is not None:
            evaluate(warmup, model, client=client, **kwargs)
        t0 = time.perf_counter()
        res = evaluate(source, model, client=client, **kwargs)
        seconds = time.perf_counter() - t0
        workers = len(client.scheduler_info()["workers"])
    return {"n": n, "workers": workers, "seconds": seconds, "pixels": res.pixels, "atoms": res.n_atoms,
            "total": res.total}


def strong_scaling(size_um: float, counts: Sequence[int], cluster: str = "local", model=None, seed: int = 0,
                   **kwargs) -> list[dict]:
    """One fixed sheet evaluated with each worker/job count; adds speed-up and efficiency vs the first count."""
    with tempfile.TemporaryDirectory() as tmp:
        sheet = sheet_file(size_um, tmp, seed)
        warm = sheet_file(min(size_um, 0.005), tmp, seed + 1)
        rows = [time_evaluation(sheet, n, cluster, model, warmup=warm, **kwargs) for n in counts]
    base = rows[0]
    for r in rows:
        r["speedup"] = base["seconds"] / r["seconds"]
        r["efficiency"] = r["speedup"] * base["n"] / r["n"]
    return rows


def weak_scaling(size_um_per_worker: float, counts: Sequence[int], cluster: str = "local", model=None,
                 seed: int = 0, **kwargs) -> list[dict]:
    """Sheet area proportional to the worker/job count; efficiency = t(first) / t(n) per unit of work."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = sheet_file(min(size_um_per_worker, 0.005), tmp, seed + 1)
        for n in counts:
            sheet = sheet_file(size_um_per_worker * np.sqrt(n / counts[0]), tmp, seed)
            rows.append(time_evaluation(sheet, n, cluster, model, warmup=warm, **kwargs))
            sheet.unlink()
    base = rows[0]
    for r in rows:
        # work grows with the pixels; ideal: seconds per (pixel / worker) stays constant
        r["efficiency"] = (base["seconds"] / base["pixels"] * base["n"]) / (r["seconds"] / r["pixels"] * r["n"])
    return rows


def plot_scaling(rows: Sequence[dict], kind: str, path: str | Path | None = None, title: str = ""):
    """Wall time, speed-up (strong) and efficiency against the ideal; saved as PNG if ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = np.array([r["n"] for r in rows], float)
    t = np.array([r["seconds"] for r in rows])
    eff = np.array([r["efficiency"] for r in rows])
    panels = 3 if kind == "strong" else 2
    fig, ax = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), constrained_layout=True)
    ax[0].plot(n, t, "o-", label="measured")
    ideal_t = t[0] * n[0] / n if kind == "strong" else np.full_like(n, t[0])
    ax[0].plot(n, ideal_t, "k--", label="ideal")
    ax[0].set(xlabel="workers / nodes", ylabel="wall time [s]", title="time")
    ax[0].legend()
    if kind == "strong":
        ax[1].plot(n, [r["speedup"] for r in rows], "o-", label="measured")
        ax[1].plot(n, n / n[0], "k--", label="ideal")
        ax[1].set(xlabel="workers / nodes", ylabel="speed-up", title="speed-up")
        ax[1].legend()
    ax[-1].plot(n, eff, "o-")
    ax[-1].axhline(1.0, color="k", ls="--")
    ax[-1].set(xlabel="workers / nodes", ylabel="parallel efficiency", ylim=(0, 1.2), title="efficiency")
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
