"""Predictions for files a user brings: Ising spin arrays and structure files.

``ednn-dask predict MODEL INPUT`` is :func:`predict_file` plus printing.
Every input problem is an :class:`~ednn_dask.errors.EDNNError` with a
message for the user; structures that are sheets but off the model's
plane give a :class:`~ednn_dask.raster.SheetWarning`, collected once per
call in :attr:`Prediction.warning`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import InputError

__all__ = ["Prediction", "read_spins", "validate_spins", "read_structures", "read_input", "check_frames",
           "predict_file", "predict_spins", "predict_frames"]


@dataclass
class Prediction:
    """Totals of a batch of inputs, in the model's units.

    Attributes
    ----------
    energies : numpy.ndarray
        ``(N,)`` float64 totals.
    n_atoms : numpy.ndarray or None
        ``(N,)`` atoms per structure (structure inputs only).
    model, units : str
    warning : str or None
        One line on the structures that are sheets but off the model's plane.
    """

    energies: np.ndarray
    model: str
    units: str
    n_atoms: np.ndarray | None = None
    warning: str | None = None
    #: ``(N,)`` uncertainty of each total (model units), for models with a domain (``card.domain``)
    uncertainty: np.ndarray | None = None
    #: ``(N,)`` whether each structure is outside the model's domain (models with a domain)
    out_of_domain: np.ndarray | None = None
    #: why, per structure outside the domain
    reasons: dict[int, list[str]] = field(default_factory=dict)

    @property
    def domain_warning(self) -> str | None:
        """One line on the structures outside the model's domain, or ``None``."""
        if self.out_of_domain is None or not self.out_of_domain.any():
            return None
        bad = np.flatnonzero(self.out_of_domain)
        k = int(bad[0])
        why = "; ".join(self.reasons.get(k, []))
        if bad.size == 1:
            return (f"structure {k} is outside the domain of model {self.model!r}: {why}; "
                    "its energy is an extrapolation, not to be trusted")
        return (f"{bad.size} of {self.out_of_domain.size} structures are outside the domain of model "
                f"{self.model!r} (structure {k}: {why}); their energies are extrapolations, not to be trusted")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"energies": self.energies.tolist()}
        if self.n_atoms is not None:
            out["energies_per_atom"] = (self.energies / self.n_atoms).tolist()
        if self.uncertainty is not None:
            out["uncertainties"] = self.uncertainty.tolist()
            if self.n_atoms is not None:
                out["uncertainties_per_atom"] = (self.uncertainty / self.n_atoms).tolist()
        if self.out_of_domain is not None:
            out["out_of_domain"] = bool(self.out_of_domain.any())
            out["out_of_domain_structures"] = np.flatnonzero(self.out_of_domain).tolist()
            out["domain_reasons"] = {str(k): v for k, v in self.reasons.items()}
        out.update(model=self.model, n=int(self.energies.size))
        return out


def read_spins(path: str) -> np.ndarray:
    """An array from a ``.npy`` file, never unpickling it."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"input file not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"input is a directory, not a .npy file: {path}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read {path} as a .npy array ({exc})") from None


def validate_spins(arr: np.ndarray, focus: int, name: str = "input") -> np.ndarray:
    """Check an ``(N, L, M)`` array of ±1 spins for an Ising model; return int8."""
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: expected a numeric array of +-1 spins, got dtype {arr.dtype}")
    if arr.ndim != 3:
        raise InputError(f"{name}: expected shape (N, L, L) of +-1 spins, got {arr.ndim}-D shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: empty array of shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError(f"{name}: contains NaN or infinite values")
    bad = ~np.isin(arr, (-1, 1))
    if bad.any():
        first = arr[bad].flat[0]
        raise InputError(f"{name}: spins must be -1 or +1, found {first!r} ({int(bad.sum())} bad values)")
    L, M = arr.shape[1:]
    if L % focus or M % focus:
        raise InputError(f"{name}: lattice {L}x{M} is not a multiple of the model's focus f={focus}")
    return arr.astype(np.int8)


def read_structures(path: str) -> list:
    """All frames of an ASE-readable file; one clear error for missing, unreadable or empty files."""
    from .systems.files import read_frames

    return read_frames(path)


def predict_spins(model, spins: np.ndarray, name: str = "input") -> Prediction:
    """Energies of ``(N, L, M)`` ±1 spin configurations with an Ising model."""
    from .train.ising import spins_to_fields

    spins = validate_spins(spins, model.card.focus, name)
    energies = model.predict(spins_to_fields(spins)).numpy()
    return Prediction(energies, model.name, model.card.units)


def _check_frame(card, atoms, k: int):
    """The raster grid of frame ``k`` at the spacing of the model with ``card``, with whole focus regions."""
    from .raster import StructureError, grid_for_atoms
    from .tiles import check_tiling

    f, (hy, hx) = card.focus, card.pixel_spacing
    try:
        grid = grid_for_atoms(atoms, card.pixel_spacing, lattice=card.lattice)
        check_tiling(grid.shape, f, 0)
    except StructureError as exc:
        raise StructureError(f"structure {k}: {exc}") from None
    except ValueError:
        Lx, Ly = atoms.cell.lengths()[:2]
        raise InputError(
            f"structure {k}: cell {Lx:.4g} x {Ly:.4g} Å is {grid.shape[1]} x {grid.shape[0]} pixels, "
            f"not a whole number of {f}-pixel focus regions ({f * hx:.4g} x {f * hy:.4g} Å)"
        ) from None
    return grid


def check_frames(card, frames: Sequence) -> str | None:
    """Check every frame against the model with ``card`` (its metadata: no network is needed).

    Returns the one line on the frames that are sheets but off the model's
    plane (``None`` if there are none); raises the first frame's
    :class:`~ednn_dask.errors.EDNNError` otherwise.
    """
    from .raster import SheetWarning

    flagged = []  # (structure, warning) of structures that are sheets but off the model's plane
    for k, atoms in enumerate(frames):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SheetWarning)
            _check_frame(card, atoms, k)
        flagged += [(k, w.message) for w in caught if issubclass(w.category, SheetWarning)]
    if not flagged:
        return None
    more = f" (and {len(flagged) - 1} more of {len(frames)} structures)" if len(flagged) > 1 else ""
    return f"structure {flagged[0][0]}: {flagged[0][1]}{more}"


def predict_frames(model, frames: Sequence, warning: str | None = None, checked: bool = False) -> Prediction:
    """Energies (eV) of ASE structures with a sheet model, every frame checked first.

    ``checked=True`` (with ``warning`` from :func:`check_frames`) skips the
    checks that :func:`read_input` has already made.
    """
    from .raster import SheetWarning
    from .train.sheets import predict_structures

    if not checked:
        warning = check_frames(model.card, frames)
    from .domain import DomainSpec, assess

    spec = DomainSpec.from_card(model.card)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SheetWarning)  # reported once, in Prediction.warning
        if spec is None:
            energies = predict_structures(model, frames)
        else:
            energies, maps = predict_structures(model, frames, maps=True)
    n_atoms = np.array([len(a) for a in frames])
    if spec is None:
        return Prediction(energies, model.name, model.card.units, n_atoms, warning)
    verdicts = [assess(spec, m[1], a.positions, a.numbers, a.cell.lengths()[:2]) for m, a in zip(maps, frames)]
    return Prediction(energies, model.name, model.card.units, n_atoms, warning,
                      uncertainty=np.array([v.sigma for v in verdicts]),
                      out_of_domain=np.array([v.out_of_domain for v in verdicts]),
                      reasons={k: v.reasons for k, v in enumerate(verdicts) if v.reasons})


@dataclass
class CheckedInput:
    """What :func:`read_input` read and checked: structures (with their warning line) or spins."""

    frames: list | None = None
    warning: str | None = None
    spins: np.ndarray | None = None
    name: str = "input"


def read_input(card, path: str) -> CheckedInput:
    """Read ``path`` and check it against the model with ``card``, before any network is loaded.

    ±1 spins (``.npy``) for Ising models, structures for sheet models.
    """
    if card.takes_atoms:
        frames = read_structures(path)
        return CheckedInput(frames=frames, warning=check_frames(card, frames), name=path)
    if card.input_kind != "ising-spins":
        raise InputError(f"model {card.name!r} takes input of kind {card.input_kind!r}, which predict does not handle")
    return CheckedInput(spins=validate_spins(read_spins(path), card.focus, path), name=path)


def predict_file(model, path: str | CheckedInput) -> Prediction:
    """Predict what ``path`` holds (or what :func:`read_input` read from it) with a loaded model."""
    got = path if isinstance(path, CheckedInput) else read_input(model.card, path)
    if got.frames is not None:
        return predict_frames(model, got.frames, got.warning, checked=True)
    return predict_spins(model, got.spins, got.name)
