"""Sheet models end to end: VALID CNN, training on a sheet dataset, accuracy tests."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms

from ..data.sheets import SHEET_SPACING, SPECIES, open_dataset, sample_structure
from ..nn import EDNN, ConvSubnet, TileNet
from ..raster import StructureError, raster_from_atoms
from ..reference import REFERENCE_NAME, tersoff_energy
from ..systems import sheets as S
from .metrics import error_metrics
from .trainer import TrainConfig, predict_batched, train

__all__ = [
    "SHEET_LAYERS",
    "build_sheet_model",
    "sheet_symmetries",
    "train_sheets",
    "evaluate_sheet_model",
    "sheet_metadata",
    "predict_structures",
]

#: VALID convolution stack of the bundled sheet models, (filters, kernel, stride).
#: Total stride 8, so a focus of 40 px puts every tile origin on the stride
#: lattice (exact halo-shared evaluation). An 88-px tile (f=40, c=24) ends
#: in a 64 × 6 × 6 map.
SHEET_LAYERS: tuple[tuple[int, int, int], ...] = (
    (16, 5, 2),
    (32, 3, 2),
    (32, 3, 1),
    (64, 3, 2),
    (64, 3, 1),
)


def build_sheet_model(
    focus: int = 40,
    context: int = 24,
    channels: int = 3,
    seed: int = 0,
    activation: str = "relu",
    widths: Sequence[int] | None = None,
    dense: Sequence[int] = (128,),
) -> EDNN:
    """An untrained sheet EDNN with the VALID CNN subnet.

    ``widths`` replaces the filter counts of ``SHEET_LAYERS`` (kernels and
    strides stay, so the total stride stays 8); ``dense`` gives the hidden
    widths of the head.
    """
    layers = SHEET_LAYERS
    if widths is not None:
        if len(widths) != len(SHEET_LAYERS):
            raise ValueError(f"widths needs {len(SHEET_LAYERS)} filter counts, got {len(widths)}")
        layers = tuple((int(w), k, s) for w, (_, k, s) in zip(widths, SHEET_LAYERS))
    torch.manual_seed(seed)
    sub = ConvSubnet(channels, focus + 2 * context, layers, dense=tuple(dense), padding="valid", activation=activation)
    return EDNN(TileNet(sub, focus_baseline=(focus, context, channels)), focus, context)


def sheet_symmetries(fields: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Energy-preserving transforms of rectangular-cell rasters: mirror x and/or y.

    (Transposes are not symmetries: the two pixel spacings differ.)
    """
    coin = torch.randint(0, 2, (2,), generator=gen).tolist()
    out = fields
    if coin[0]:
        out = out.flip(-1)
    if coin[1]:
        out = out.flip(-2)
    return out


def predict_structures(model, structures: Sequence[Atoms]) -> np.ndarray:
    """Energies (float64, model units) of structures of any size, one at a time.

    ``model`` is a :class:`~ednn_dask.models.LoadedModel` or anything with
    ``metadata`` and ``predict``; each structure is rasterized at the
    model's pixel spacing and species.
    """
    meta = model.metadata
    spacing = meta["pixel_spacing"]["value"]
    species = meta["input"]["species"]
    out = np.empty(len(structures))
    for i, atoms in enumerate(structures):
        try:
            raster = raster_from_atoms(atoms, spacing, species, channels=meta["input"].get("channels", "species"),
                                       lattice=meta["input"].get("lattice"))
        except StructureError as exc:
            raise StructureError(f"structure {i}: {exc}") if len(structures) > 1 else exc from None
        out[i] = float(model.predict(torch.from_numpy(raster)[None])[0])
    return out


def sheet_metadata(name: str, kind: str, focus: int, context: int, config: TrainConfig, attrs: dict, report=None):
    """Metadata stored with a sheet model."""
    meta: dict[str, Any] = {
        "name": name,
        "description": f"total energy of {kind} sheets; reference: {REFERENCE_NAME}",
        "channels": len(attrs["species"]),
        "input": {
            "kind": "raster",
            "species": list(attrs["species"]),
            "channels": attrs["channels"],
            "gamma": attrs["gamma"],
            "raster": "V_s(x, y) = sum over atoms of species s of Z exp(-r^2 / (2 gamma^2)), periodic; "
            "pixel (i, j) at (x, y) = (j h_x, i h_y)",
        },
        "pixel_spacing": {"value": list(attrs["spacing"]), "axes": ["y", "x"], "units": "Å"},
        "target": {"name": "energy", "units": "eV"},
        "reference": REFERENCE_NAME,
        "halo_shared_ok": True,
        "training": {
            "data": f"{attrs['n']} {kind} structures (seed {attrs['seed']}), "
            f"T in {attrs['temperature_range']} K, ednn-dask dataset sheets",
            "config": config.as_metadata(),
        },
    }
    if attrs.get("lattice"):  # trained on registered cells: structures are registered before prediction too
        meta["input"]["lattice"] = dict(attrs["lattice"])
    if report is not None:
        meta["accuracy"] = report
    return meta


def _supercell_structures(n_per_size: int, sizes, seed: int, alloys: bool = False) -> list[tuple[str, Atoms]]:
    """Unseen configurations on n x m supercells: new stripes, defects, displacements (and B/N alloys)."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m in sizes:
        for _ in range(n_per_size):
            base = S.random_hexagonal(rng, n, m, alloys, stripe_width=(2.0, 12.5), max_vacancies=2 * n * m)
            out.append((f"{n}x{m}", S.thermal_displacements(base, rng.uniform(100, 1000), rng)))
    return out


def evaluate_sheet_model(model, test_path: str | Path, supercells: bool = True, seed: int = 777) -> dict[str, Any]:
    """Held-out per-atom errors and supercell transfer (meV/atom), as in the issue's targets."""
    test = open_dataset(test_path, model.metadata["input"]["species"])
    fields = torch.from_numpy(test["rasters"])
    pred = model.predict(fields).numpy()
    per_atom = error_metrics(pred / test["n_atoms"], test["energies"] / test["n_atoms"])
    report: dict[str, Any] = {
        "test": {**error_metrics(pred, test["energies"], test["n_atoms"]),
                 "mae_mev_per_atom": 1e3 * per_atom["mae"], "median_mev_per_atom": 1e3 * per_atom["median_ae"]},
        "test_set": f"{len(pred)} held-out structures from {test_path} (seed {test['attrs']['seed']})",
        "pred_test": pred.tolist(),
    }
    if supercells:
        alloys = test["attrs"].get("kind") == "hexagonal-alloy"
        structs = _supercell_structures(5, [(1, 1), (2, 2), (3, 3), (4, 4), (2, 3), (4, 1)], seed, alloys)
        ref = np.array([tersoff_energy(a) for _, a in structs])
        natoms = np.array([len(a) for _, a in structs])
        p = predict_structures(model, [a for _, a in structs])
        err = np.abs(p - ref) / natoms * 1e3
        by_size = {}
        for label in dict.fromkeys(lbl for lbl, _ in structs):
            sel = np.array([lbl == label for lbl, _ in structs])
            by_size[label] = {"mae_mev_per_atom": float(err[sel].mean()), "n": int(sel.sum()),
                              "atoms": int(natoms[sel].max())}
        report["supercells"] = {
            "mae_mev_per_atom": float(err.mean()),
            "max_mev_per_atom": float(err.max()),
            "by_size": by_size,
            "set": f"5 unseen configurations per size, seed {seed}" + (" (incl. B/N alloys)" if alloys else ""),
        }
    return report


def train_sheets(
    data_path: str | Path,
    focus: int = 40,
    context: int = 24,
    config: TrainConfig | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    species: Sequence[str] | None = None,
    activation: str = "relu",
    init_from: str | None = None,
    widths: Sequence[int] | None = None,
    dense: Sequence[int] = (128,),
) -> tuple[EDNN, list[dict], dict]:
    """Train a sheet EDNN on a dataset written by ``ednn-dask dataset sheets``.

    ``init_from`` (a bundled name or model file with the same subnet) starts
    from that model's weights and label scaling instead of from scratch:
    fine-tuning. Its per-tile energy function already assigns energy to the
    right tiles, which training from scratch must discover from cell totals
    alone — slow when a cell has many tiles (81 for porous graphene).
    ``widths`` and ``dense`` size the subnet (see :func:`build_sheet_model`).
    """
    config = config or TrainConfig(epochs=20, batch_size=32, lr=1e-3, lr_final=1e-6)
    data = open_dataset(data_path, species)
    attrs = data["attrs"]
    model = build_sheet_model(focus, context, channels=len(attrs["species"]), seed=config.seed, activation=activation,
                              widths=widths, dense=dense)
    if init_from is not None:
        _init_from(model, init_from, list(attrs["species"]), focus, context)
    t0 = time.perf_counter()
    history = train(
        model,
        torch.from_numpy(data["rasters"]),
        data["energies"],
        config,
        checkpoint,
        resume,
        n_sites=data["n_atoms"],
        augment=sheet_symmetries,
        fit_scaling=init_from is None,
    )
    return model, history, {"seconds_train": time.perf_counter() - t0, "attrs": attrs}


def _init_from(model: EDNN, source: str, species: list[str], focus: int, context: int) -> None:
    """Copy weights, baseline and label scaling of a saved sheet model into ``model`` (species by name)."""
    from ..models import get_model

    src = get_model(source)
    meta = src.metadata
    if (meta["focus"], meta["context"]) != (focus, context):
        raise ValueError(f"--init-from {source}: f={meta['focus']}, c={meta['context']} differ from f={focus}, c={context}")
    have = list(meta["input"]["species"])
    missing = [s for s in species if s not in have]
    if missing:
        raise ValueError(f"--init-from {source} has no channel for {', '.join(missing)}")
    pick = [have.index(s) for s in species]
    state = src.halo_shared().tile_net.state_dict()
    state["subnet.features.0.weight"] = state["subnet.features.0.weight"][:, pick]
    state["focus_weights"] = state["focus_weights"][pick]
    model.tile_net.load_state_dict(state, strict=True)


class InMemory:
    """Adapter giving a training-time EDNN the ``predict``/``metadata`` interface of a loaded model."""

    def __init__(self, model: EDNN, metadata: dict):
        self.model, self.metadata = model, metadata

    def predict(self, fields: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(predict_batched(self.model, fields.float(), 16))
