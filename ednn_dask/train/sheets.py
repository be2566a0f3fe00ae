"""Sheet models end to end: VALID CNN, training on a sheet dataset, accuracy tests."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms

from ..data.sheets import open_dataset
from ..errors import InputError
from ..models import _schema
from ..models.card import ModelCard
from ..nn import EDNN, ConvSubnet, TileNet
from ..raster import StructureError, raster_from_atoms
from ..reference import REFERENCE_NAME, tersoff_energy
from ..systems import sheets as S
from .metrics import error_metrics
from ..tiles import n_tiles
from .trainer import TrainConfig, _channel_sums, predict_batched, split_indices, train

__all__ = [
    "SHEET_LAYERS",
    "build_sheet_model",
    "sheet_symmetries",
    "LatticeSymmetries",
    "symmetries_for",
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
            raise InputError(f"widths needs {len(SHEET_LAYERS)} filter counts, got {len(widths)}")
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


class LatticeSymmetries:
    """Energy-preserving transforms that keep a *registered* raster registered.

    Sheet datasets are rasterized after registration (:mod:`ednn_dask.raster._register`):
    every cell's honeycomb sits at the same origin relative to the pixels, and so does
    every structure the model is later asked about. A training augmentation should
    therefore map registered rasters onto registered rasters, or the network spends
    capacity on pixel alignments it never meets. With the honeycomb of
    ``HONEYCOMB`` (zigzag along x, an atom at the origin):

    * mirror x is a symmetry of the lattice about ``x = 0``; the pixel flip
      ``j -> n-1-j`` mirrors about ``x = (n-1) h_x / 2``, so the flipped raster is
      the lattice moved by ``-h_x``, put back by rolling one pixel along x;
    * the lattice vector ``a2 = (a/2, a√3/2)`` is ``(20, 12)`` px at the bundled
      spacing: rolling by it shows the network the other of the two ways the
      lattice sits on the 8-px tile grid (the whole cell moved by ``a2``);
    * mirror y is *not* one of them: the y-flipped honeycomb is off by 2/3 of a
      pixel (0.07 Å) from any registered raster, which :func:`sheet_symmetries`
      shows the network half of the time.

    Parameters
    ----------
    spacing_yx : (float, float)
        Pixel spacing of the rasters (Å).
    lattice : dict
        The dataset's ``lattice`` attribute (a ``HONEYCOMB``-like spec).
    """

    def __init__(self, spacing_yx: Sequence[float], lattice: dict):
        if lattice.get("kind") != "honeycomb" or lattice.get("zigzag_axis", "x") != "x":
            raise InputError(f"no lattice symmetries for {lattice!r}")
        a = float(lattice["a"])
        hy, hx = (float(h) for h in spacing_yx)
        ox = float(lattice.get("origin", (0.0, 0.0))[0])
        # mirror lines of the honeycomb along x: x = o_x + k a/2; the pixel flip adds -h_x - 2 o_x
        self.flip_roll = _integer_pixels(hx + 2 * ox, hx, "the x-mirror's shift")
        self.a2_roll = (_integer_pixels(a * np.sqrt(3.0) / 2, hy, "a2_y"), _integer_pixels(a / 2, hx, "a2_x"))

    def __call__(self, fields: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        coin = torch.randint(0, 2, (2,), generator=gen).tolist()
        out = fields
        if coin[0]:
            out = torch.roll(out.flip(-1), self.flip_roll, -1)
        if coin[1]:
            out = torch.roll(out, self.a2_roll, (-2, -1))
        return out


def _integer_pixels(length: float, h: float, what: str) -> int:
    k = length / h
    if abs(k - round(k)) > 1e-6:
        raise InputError(f"{what} is {k:.4f} pixels, not a whole number: no exact lattice symmetry at this spacing")
    return int(round(k))


def symmetries_for(attrs: dict, kind: str = "auto"):
    """The training augmentation for a sheet dataset: ``"lattice"``, ``"mirrors"`` or ``"none"``.

    ``"auto"`` picks :class:`LatticeSymmetries` for registered datasets (attrs ``lattice``)
    and :func:`sheet_symmetries` otherwise.
    """
    if kind == "auto":
        kind = "lattice" if attrs.get("lattice") else "mirrors"
    if kind == "lattice":
        if not attrs.get("lattice"):
            raise InputError("lattice symmetries need a registered dataset (attrs 'lattice')")
        return LatticeSymmetries(attrs["spacing"], attrs["lattice"]), kind
    if kind == "mirrors":
        return sheet_symmetries, kind
    if kind == "none":
        return None, kind
    raise InputError(f"unknown symmetries {kind!r}; choose auto, lattice, mirrors or none")


def predict_structures(model, structures: Sequence[Atoms], maps: bool = False):
    """Energies (float64, model units) of structures of any size, one at a time.

    ``model`` is a :class:`~ednn_dask.models.LoadedModel` or anything with
    ``metadata`` and ``predict``; each structure is rasterized as its card's
    :meth:`~ednn_dask.models.ModelCard.raster_settings` say (pixel spacing,
    species, channel mode, lattice to register onto). ``maps=True`` (a
    loaded model) also returns each structure's per-tile maps
    (:meth:`~ednn_dask.models.LoadedModel.predict_maps`), as a list.
    """
    how = ModelCard.of(model).raster_settings()
    out = np.empty(len(structures))
    tile_maps = []
    for i, atoms in enumerate(structures):
        try:
            raster = raster_from_atoms(atoms, how.spacing, how.species, channels=how.channels, lattice=how.lattice)
        except StructureError as exc:
            raise StructureError(f"structure {i}: {exc}") if len(structures) > 1 else exc from None
        field = torch.from_numpy(raster)[None]
        if maps:
            m = model.predict_maps(field)[0]
            out[i] = float(m[0].double().sum())
            tile_maps.append(m.double().numpy())
        else:
            out[i] = float(model.predict(field)[0])
    return (out, tile_maps) if maps else out


def sheet_metadata(name: str, kind: str, focus: int, context: int, config: TrainConfig, attrs: dict, report=None):
    """Metadata stored with a sheet model trained on a dataset with attributes ``attrs``.

    A dataset of registered cells (attrs ``lattice``) gives the model its
    lattice: structures are registered onto it before prediction too.
    """
    reference = attrs.get("reference", REFERENCE_NAME)
    sampler = attrs.get("sampler", "einstein")
    if sampler == "user":
        data = f"{attrs['n']} structures from {', '.join(attrs.get('sources', []))}, ednn-dask dataset from-structures"
    else:
        how = (f"MD snapshots of {', '.join(attrs.get('classes', []))}" if sampler == "md"
               else "Einstein displacements")
        data = (f"{attrs['n']} {kind} structures (seed {attrs['seed']}), {how}, "
                f"T in {attrs['temperature_range']} K, ednn-dask dataset sheets")
    return _schema.model_metadata(
        name=name,
        description=f"total energy of {kind} sheets; reference: {reference}",
        channels=len(attrs["species"]),
        input=_schema.raster_input(attrs["species"], attrs["channels"], attrs["gamma"], attrs.get("lattice")),
        target=_schema.target("energy", "eV"),
        pixel_spacing=_schema.pixel_spacing(attrs["spacing"], "Å", axes=("y", "x")),
        training=_schema.training(data, config.as_metadata()),
        accuracy=report,
        reference=reference,
        halo_shared_ok=True,
    )


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
    """Held-out per-atom errors and supercell transfer (meV/atom), the accuracy figures of ``docs/sheets.md``."""
    test = open_dataset(test_path, ModelCard.of(model).species)
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
    symmetries: str = "auto",
) -> tuple[EDNN, list[dict], dict]:
    """Train a sheet EDNN on a dataset written by ``ednn-dask dataset sheets``.

    ``init_from`` (a bundled name or model file with the same subnet) starts
    from that model's weights and label scaling instead of from scratch:
    fine-tuning. Its per-tile energy function already assigns energy to the
    right tiles, which training from scratch must discover from cell totals
    alone — slow when a cell has many tiles (81 for porous graphene).
    ``widths`` and ``dense`` size the subnet (see :func:`build_sheet_model`).
    ``symmetries`` picks the augmentation (see :func:`symmetries_for`).
    """
    config = config or TrainConfig(epochs=20, batch_size=32, lr=1e-3, lr_final=1e-6)
    data = open_dataset(data_path, species)
    attrs = data["attrs"]
    augment, symmetries = symmetries_for(attrs, symmetries)
    model = build_sheet_model(focus, context, channels=len(attrs["species"]), seed=config.seed, activation=activation,
                              widths=widths, dense=dense)
    fields = torch.from_numpy(data["rasters"])
    if init_from is not None:
        _init_from(model, init_from, list(attrs["species"]), focus, context)
        if not resume:
            recentre_baseline(model, fields, data["energies"],
                              split_indices(len(data["energies"]), config.val_fraction, config.seed)[0])
    t0 = time.perf_counter()
    history = train(
        model,
        fields,
        data["energies"],
        config,
        checkpoint,
        resume,
        n_sites=data["n_atoms"],
        augment=augment,
        fit_scaling=init_from is None,
    )
    return model, history, {"seconds_train": time.perf_counter() - t0, "attrs": attrs, "symmetries": symmetries}


@torch.no_grad()
def recentre_baseline(model: EDNN, fields: torch.Tensor, energies: np.ndarray, index: np.ndarray) -> None:
    """Shift a fine-tuned model's linear baseline (per-species weights, per-tile offset) by the least-squares
    fit of its residuals on the fields ``index``, before any gradient step.

    Labels with other per-atom reference energies than the source model's (a DFT code's total energies) then
    start matched up to what the network itself must learn; the change is exact and linear (the baseline
    adds the channel sums times its weights and the tile count times the offset) and never raises the
    training error.
    """
    net = model.tile_net
    if net.baseline is None or len(index) < 2:
        return
    pred = np.concatenate([predict_batched(model, fields[torch.from_numpy(index[i:i + 256])])
                           for i in range(0, len(index), 256)])
    sums = _channel_sums(fields, index).numpy()
    A = np.column_stack([sums, np.full(len(index), float(n_tiles(fields.shape[2:], model.focus)))])
    # columns equilibrated, directions the fields do not determine (atom count and tile count move together
    # in cells of one size) dropped: a truncated least-squares solution
    norm = np.abs(A).max(0).clip(1e-300)
    coef, *_ = np.linalg.lstsq(A / norm, np.asarray(energies, np.float64)[index] - pred, rcond=1e-3)
    coef = coef / norm
    net.focus_weights += torch.from_numpy(coef[:-1]).to(net.focus_weights.dtype)
    net.offset += float(coef[-1])


def _init_from(model: EDNN, source: str, species: list[str], focus: int, context: int) -> None:
    """Copy weights, baseline and label scaling of a saved sheet model into ``model`` (species by name)."""
    from ..models import get_model

    src = get_model(source)
    card = src.card
    if (card.focus, card.context) != (focus, context):
        raise InputError(f"--init-from {source}: f={card.focus}, c={card.context} differ from f={focus}, c={context}")
    have = list(card.species)
    missing = [s for s in species if s not in have]
    if missing:
        raise InputError(f"--init-from {source} has no channel for {', '.join(missing)}")
    pick = [have.index(s) for s in species]
    # the source's domain describes its own training data: the new model's is fitted on its own
    state = {k: v for k, v in src.tile_net().state_dict().items() if not k.startswith("domain.")}
    state["subnet.features.0.weight"] = state["subnet.features.0.weight"][:, pick]
    state["focus_weights"] = state["focus_weights"][pick]
    model.tile_net.load_state_dict(state, strict=True)


class InMemory:
    """Adapter giving a training-time EDNN the ``predict``/``metadata``/``card`` interface of a loaded model."""

    def __init__(self, model: EDNN, metadata: dict):
        self.model, self.metadata = model, metadata

    @property
    def card(self) -> ModelCard:
        return ModelCard(self.metadata, "<in memory>")

    def predict(self, fields: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(predict_batched(self.model, fields.float(), 16))
