"""The Ising example end to end: data, training, held-out and transfer tests."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import _json
from ..errors import InputError
from ..models import _schema
from ..nn import EDNN, DenseSubnet, TileNet
from ..systems.ising import T_CRITICAL, IsingDataset, ising_energy, sample_ising
from .metrics import error_metrics
from .trainer import TrainConfig, predict_batched, train

__all__ = ["ising_symmetries", "spins_to_fields", "build_ising_model", "train_ising", "evaluate_ising", "ising_metadata"]


def spins_to_fields(spins: np.ndarray) -> torch.Tensor:
    """``(N, L, M)`` ±1 spins -> ``(N, 1, L, M)`` float32 fields."""
    return torch.from_numpy(np.ascontiguousarray(spins, dtype=np.float32))[:, None]


def ising_symmetries(fields: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Apply random symmetries of the Ising energy to a batch of fields.

    Each configuration's spins are flipped globally with probability 1/2;
    the batch is transposed (square lattices only) and mirrored along each
    axis with probability 1/2. All leave ``H`` unchanged.
    """
    sign = torch.randint(0, 2, (fields.shape[0],) + (1,) * (fields.dim() - 1), generator=gen) * 2 - 1
    out = fields * sign.to(device=fields.device, dtype=fields.dtype)
    coin = torch.randint(0, 2, (3,), generator=gen).tolist()
    if coin[0] and out.shape[-1] == out.shape[-2]:
        out = out.transpose(-1, -2)
    if coin[1]:
        out = out.flip(-1)
    if coin[2]:
        out = out.flip(-2)
    return out


def build_ising_model(focus: int = 1, context: int = 1, seed: int = 0) -> EDNN:
    """An untrained EDNN with the paper's dense Ising subnet."""
    torch.manual_seed(seed)
    return EDNN(TileNet(DenseSubnet.paper_ising(focus, context)), focus, context)


def evaluate_ising(
    predict, L_small: int = 8, n_test: int = 10000, n_large: int = 200, L_large: int = 128, seed: int = 12345
) -> dict[str, Any]:
    """Held-out ``L_small`` test and transfer to ``L_large`` near Tc.

    Parameters
    ----------
    predict : callable
        ``fields (N, 1, L, L) -> totals (N,)`` in J.
    n_test, n_large : int
        Sizes of the two test sets; both are sampled afresh from ``seed``,
        independently of any training data.

    Returns
    -------
    dict
        ``test`` and ``transfer`` metric dicts (see
        :func:`~ednn_dask.train.error_metrics`) plus the sampling settings.
    """
    test = IsingDataset.generate(n_test, L_small, seed=seed)
    p_test = np.asarray(predict(spins_to_fields(test.spins)), dtype=np.float64)
    # the paper's transfer set: 128x128 near the critical temperature
    temps = np.linspace(0.95 * T_CRITICAL, 1.05 * T_CRITICAL, 5)
    big, _ = sample_ising(n_large, L_large, temps, seed=seed + 1, n_equilibrate=200, interval=10, max_chains=50)
    e_big = ising_energy(big)
    p_big = np.asarray(predict(spins_to_fields(big)), dtype=np.float64)
    return {
        "test": error_metrics(p_test, test.energies, L_small * L_small),
        "transfer": error_metrics(p_big, e_big, L_large * L_large),
        "test_set": f"{n_test} {L_small}x{L_small} configurations, T uniform in [1, 5] J/k_B, 25% near Tc, 5% at T=inf, seed {seed}",
        "transfer_set": (
            f"{n_large} {L_large}x{L_large} configurations at T in [0.95, 1.05] Tc, "
            f"Swendsen-Wang, seed {seed + 1}"
        ),
    }


def ising_metadata(focus: int, context: int, config: TrainConfig, n_train: int, L: int, report=None) -> dict:
    """Metadata stored with a trained Ising model."""
    data = (f"{n_train} {L}x{L} Swendsen-Wang configurations, T uniform in [1, 5] J/k_B "
            f"25% of chains in [0.9, 1.1] Tc, 5% at T=inf; exact energies; spin-flip and D4 augmentation")
    return _schema.model_metadata(
        name="ising",
        description="2-D nearest-neighbour Ising energy H = -J sum_<ij> s_i s_j (periodic)",
        channels=1,
        input=_schema.ising_input(),
        target=_schema.target("energy", "J"),
        pixel_spacing=_schema.pixel_spacing(1.0, "lattice sites"),
        training=_schema.training(data, config.as_metadata()),
        accuracy=report,
    )


def train_ising(
    focus: int = 1,
    context: int = 1,
    n: int = 100_000,
    L: int = 8,
    config: TrainConfig | None = None,
    data_seed: int = 1,
    data_cache: str | Path | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    evaluate: bool = True,
) -> tuple[EDNN, list[dict], dict | None]:
    """Sample data, train the paper's Ising EDNN and measure its accuracy.

    Returns
    -------
    model : EDNN
    history : list of dict
    report : dict or None
        From :func:`evaluate_ising` plus wall times, if ``evaluate``.
    """
    config = config or TrainConfig()
    t0 = time.perf_counter()
    cache = Path(data_cache) if data_cache else None
    if cache is not None and cache.exists():
        data = IsingDataset.load(cache)
        if data.spins.shape[0] != n or data.spins.shape[1] != L:
            raise InputError(f"cached data {cache} has shape {data.spins.shape}, expected ({n}, {L}, {L})")
    else:
        data = IsingDataset.generate(n, L, seed=data_seed)
        if cache is not None:
            data.save(cache)
    t_data = time.perf_counter() - t0
    model = build_ising_model(focus, context, seed=config.seed)
    t1 = time.perf_counter()
    history = train(model, spins_to_fields(data.spins), data.energies, config, checkpoint, resume, n_sites=L * L, augment=ising_symmetries)
    t_train = time.perf_counter() - t1
    report = None
    if evaluate:
        report = evaluate_ising(lambda x: predict_batched(model, x, 256))
        report["seconds"] = {"data": round(t_data, 1), "train": round(t_train, 1)}
        report["final_epoch"] = {k: v for k, v in history[-1].items()}
    return model, history, report


def write_report(report: dict, path: str | Path) -> None:
    """Write a JSON report."""
    Path(path).write_text(_json.dumps(report, indent=1))
