"""Training: Adam on the MSE of the summed tile contributions.

The loss follows the paper: every tile of a field goes through the shared
subnet, the contributions are summed, and the mean squared error of the sum
against the label is minimised. Labels are scaled per tile (see
:func:`fit_label_scaling`) so that the model stays extensive.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .._outputs import atomic_path
from ..errors import InputError
from ..nn import EDNN, TileNet
from ..tiles import n_tiles, tile_field
from .metrics import error_metrics

__all__ = ["TrainConfig", "fit_focus_baseline", "fit_label_scaling", "train", "predict_batched", "refit_readout", "split_indices"]


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train`.

    Attributes
    ----------
    epochs : int
        Passes over the training set.
    batch_size : int
        Fields per optimisation step.
    lr, lr_final : float
        Adam learning rate, decayed along a cosine to ``lr_final``.
    val_fraction : float
        Fraction of the examples held out for validation.
    seed : int
        Seeds weight initialisation order, the split and the shuffling.
    threads : int or None
        torch intra-op threads; ``None`` uses all cores.
    progress : bool
        Show a progress bar.
    refit_readout : bool
        After the last epoch, solve the final linear layer exactly by
        float64 least squares on the training split (see
        :func:`refit_readout`).
    device : str
        Where the model and the training fields live while training
        (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...). The fields are copied
        to the device once; the trained model is returned on the CPU.
        On CUDA, training runs with TF32 off (full float32, as on a CPU).
    """

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    lr_final: float = 1e-6
    val_fraction: float = 0.1
    seed: int = 0
    threads: int | None = None
    progress: bool = True
    refit_readout: bool = True
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        """The settings worth recording with a model or checkpoint."""
        return {k: v for k, v in asdict(self).items() if k not in ("extra", "progress")}


def fit_label_scaling(energies: np.ndarray, tiles_per_field) -> tuple[float, float]:
    """Per-tile label offset and scale from training labels.

    ``offset`` is the mean energy per tile and ``scale`` the standard
    deviation of the energy per tile, both over the training set. Applied as
    ``scale * g(tile) + offset`` on *every* tile, they keep the model
    extensive.

    Returns
    -------
    offset, scale : float
        In the units of the labels per tile.
    """
    per_tile = np.asarray(energies, dtype=np.float64) / np.asarray(tiles_per_field, dtype=np.float64)
    scale = float(per_tile.std()) or 1.0
    return float(per_tile.mean()), scale


@torch.no_grad()
def fit_focus_baseline(model: EDNN, fields: torch.Tensor, energies: np.ndarray, index=None) -> None:
    """Fit the linear focus baseline, offset and scale of ``model.tile_net`` (see :class:`TileNet`).

    Least squares of the labels on the per-channel pixel sums of each field
    and its tile count; ``scale`` becomes the per-tile spread of what is
    left, which the subnet then learns.
    """
    net = model.tile_net
    index = np.arange(fields.shape[0]) if index is None else np.asarray(index)
    ntile = n_tiles(fields.shape[2:], model.focus)
    X = _channel_sums(fields, index).numpy()
    A = np.column_stack([X, np.full(len(X), float(ntile))])
    y = np.asarray(energies, dtype=np.float64)[index]
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = (y - A @ coef) / ntile
    net.focus_weights.copy_(torch.from_numpy(coef[:-1]).to(net.focus_weights.dtype))
    net.offset.fill_(float(coef[-1]))
    net.scale.fill_(float(resid.std()) or 1.0)


def _channel_sums(fields: torch.Tensor, index: np.ndarray, batch: int = 256) -> torch.Tensor:
    """Per-channel pixel sums ``(len(index), C)`` in float64, a batch at a time (no copy of the data set)."""
    out = []
    for i in range(0, len(index), batch):
        part = fields[torch.from_numpy(index[i : i + batch]).to(fields.device)].double()
        out.append(part.sum(dim=tuple(range(2, part.dim()))).cpu())
    return torch.cat(out)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation split of ``n`` examples."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(val_fraction * n))
    if n > 1 and val_fraction > 0:
        n_val = max(n_val, 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@torch.no_grad()
def predict_batched(model: EDNN, fields: torch.Tensor, batch_size: int = 1024) -> np.ndarray:
    """Totals of many fields in float64, evaluated in batches."""
    model.eval()
    out = [model(fields[i : i + batch_size]).double().cpu() for i in range(0, fields.shape[0], batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0)


def train(
    model: EDNN,
    fields: torch.Tensor,
    energies: np.ndarray,
    config: TrainConfig,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    n_sites=None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    fit_scaling: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` in place and return the per-epoch history.

    ``fit_scaling=False`` keeps the model's label offset, scale and baseline
    (fine-tuning a trained model) instead of fitting them to ``energies``.

    Parameters
    ----------
    model : EDNN
        Its ``tile_net`` must be a :class:`~ednn_dask.nn.TileNet`; its label
        scaling is fitted here from the training split (unless resuming).
    fields : torch.Tensor
        ``(N, C, *spatial)`` float32 fields.
    energies : numpy.ndarray
        ``(N,)`` labels.
    config : TrainConfig
    checkpoint : path, optional
        Written after every epoch (model, optimiser, scheduler, history);
        with ``resume=True`` training continues from it, giving the same
        result as an uninterrupted run.
    n_sites : array_like or int, optional
        Sites per field, for per-site metrics.
    augment : callable, optional
        ``augment(batch, generator) -> batch``: a symmetry of the labels
        applied to each training batch (e.g. spin flips and lattice
        rotations for Ising); drawn from the epoch's seeded generator, so
        resumed runs stay identical.

    Returns
    -------
    list of dict
        One entry per epoch: ``epoch``, ``loss``, ``lr`` and validation
        metrics prefixed ``val_``.
    """
    if not isinstance(model.tile_net, TileNet):
        raise TypeError("train() needs an EDNN whose tile_net is a TileNet")
    with _no_tf32():
        return _train(model, fields, energies, config, checkpoint, resume, n_sites, augment, fit_scaling)


@contextmanager
def _no_tf32():
    """Full float32 on CUDA: TF32 convolutions and matmuls (10-bit mantissa) off while training.

    The model is evaluated in float32 on CPUs; training it through TF32 would fit
    a slightly different function (and the float64 readout refit needs exact
    features). The small sheet and Ising subnets are launch-bound on a GPU, so
    this costs little.
    """
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def _train(model, fields, energies, config, checkpoint, resume, n_sites, augment, fit_scaling):
    if threads := config.threads:
        torch.set_num_threads(threads)
    energies = np.asarray(energies, dtype=np.float64)
    if fields.shape[0] != energies.shape[0]:
        raise ValueError(f"{fields.shape[0]} fields but {energies.shape[0]} labels")
    device = torch.device(config.device)
    model.to(device)
    fields = fields.to(device)  # one copy on an accelerator; the same tensor on the CPU
    tr, va = split_indices(fields.shape[0], config.val_fraction, config.seed)
    ntile = n_tiles(fields.shape[2:], model.focus)
    sites = None if n_sites is None else np.broadcast_to(np.asarray(n_sites), energies.shape)

    steps_per_epoch = max(1, math.ceil(tr.size / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    ratio = config.lr_final / config.lr
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
    )
    history: list[dict[str, float]] = []
    start = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = _load_checkpoint(checkpoint, device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history = list(state["history"])
        start = int(state["epoch"]) + 1
    elif fit_scaling:
        if model.tile_net.baseline is not None:
            fit_focus_baseline(model, fields, energies, index=tr)
        else:
            offset, scale = fit_label_scaling(energies[tr], ntile)
            model.tile_net.offset.fill_(offset)
            model.tile_net.scale.fill_(scale)

    scale = float(model.tile_net.scale) * ntile
    y_all = torch.from_numpy(energies).to(device=device, dtype=fields.dtype)
    bar = _progress(range(start, config.epochs), config.progress, initial=start, total=config.epochs)
    for epoch in bar:
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 100003 + epoch)
        order = torch.from_numpy(tr)[torch.randperm(tr.size, generator=gen)].to(device)
        running = 0.0
        for i in range(0, order.numel(), config.batch_size):
            idx = order[i : i + config.batch_size]
            batch = fields[idx] if augment is None else augment(fields[idx], gen)
            pred = model(batch)
            # the loss is the MSE of the sums, measured in units of the label spread
            loss = torch.mean(((pred - y_all[idx]) / scale) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.detach().double() * idx.numel()  # no host sync per step on an accelerator
        row: dict[str, float] = {"epoch": epoch, "loss": float(running) / tr.size, "lr": opt.param_groups[0]["lr"]}
        if va.size:
            p = predict_batched(model, fields[va])
            m = error_metrics(p, energies[va], None if sites is None else sites[va])
            row.update({f"val_{k}": v for k, v in m.items() if k != "n"})
        history.append(row)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{row['loss']:.2e}", val_median=f"{row.get('val_median_ae', float('nan')):.2e}")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, opt, sched, epoch, history, config)
    if config.refit_readout and start <= config.epochs:
        row = {"epoch": config.epochs, "loss": None, "lr": 0.0, "refit": float(_refit(model, fields, energies, tr, va))}
        if va.size:
            p = predict_batched(model, fields[va])
            m = error_metrics(p, energies[va], None if sites is None else sites[va])
            row.update({f"val_{k}": v for k, v in m.items() if k != "n"})
        history.append(row)
    model.eval()
    model.to("cpu")
    return history


def _refit(model: EDNN, fields, energies, tr: np.ndarray, va: np.ndarray) -> bool:
    """:func:`refit_readout` on the training split, kept only where it helps: with fewer training fields
    than twice the readout's unknowns it is not done (least squares would interpolate them), and a refit
    that is worse on the validation fields is undone. Returns whether the refit was kept."""
    net, layer = model.tile_net, _readout_layer(model)
    if tr.size < 2 * (layer.in_features + 1 + (0 if net.baseline is None else net.focus_weights.numel())):
        return False
    params = [layer.weight, layer.bias] + ([] if net.baseline is None else [net.focus_weights])
    saved = [t.detach().clone() for t in params]
    before = np.abs(predict_batched(model, fields[va]) - energies[va]).mean() if va.size else np.inf
    refit_readout(model, fields, energies, index=tr)
    if va.size and np.abs(predict_batched(model, fields[va]) - energies[va]).mean() > before:
        with torch.no_grad():
            for t, old in zip(params, saved):
                t.copy_(old)
        return False
    return True


def _readout_layer(model: EDNN) -> torch.nn.Linear:
    last = None
    for mod in model.tile_net.modules():
        if isinstance(mod, torch.nn.Linear):
            last = mod
    if last is None or last.out_features != 1:
        raise TypeError("refit_readout needs a subnet whose last layer is a width-1 nn.Linear")
    return last


@torch.no_grad()
def refit_readout(
    model: EDNN, fields: torch.Tensor, energies: np.ndarray, batch_size: int = 512, ridge: float = 1e-10, index=None
):
    """Solve the subnet's last linear layer by least squares on summed features.

    The prediction is ``sum_t [scale (w . phi_t + b) + offset]`` where
    ``phi_t`` are the inputs of the final width-1 linear layer for tile
    ``t``. It is linear in ``(w, b)``, so the MSE of the sums has a closed
    form minimum: regress ``(E - n offset) / scale`` on ``(sum_t phi_t, n)``
    in float64. This removes the optimiser's residual noise from the readout
    while keeping the model extensive (every tile still gets the same
    ``w``, ``b``, offset and scale).

    Parameters
    ----------
    model : EDNN
    fields : torch.Tensor
        Training fields ``(N, C, *spatial)``.
    energies : numpy.ndarray
        Their labels ``(N,)``.
    index : array of int, optional
        Use only these fields (avoids copying a training split).
    ridge : float
        Tikhonov regularisation relative to the mean diagonal of the normal matrix.
    """
    model.eval()
    layer = _readout_layer(model)
    index = np.arange(fields.shape[0]) if index is None else np.asarray(index)
    sub = getattr(model.tile_net, "subnet", None)
    if model.halo_sharing and getattr(sub, "spec", {}).get("dense"):
        phi = _shared_feature_sums(model, fields, index)
    else:
        phi = _tile_feature_sums(model, layer, fields, index, batch_size)
    net = model.tile_net
    ntile = n_tiles(fields.shape[2:], model.focus)
    offset, scale = float(net.offset), float(net.scale)
    k = phi.shape[1]
    cols = [phi, torch.full((phi.shape[0], 1), float(ntile), dtype=torch.float64)]
    if net.baseline is not None:  # the baseline weights are linear too: solve them jointly, in label units / scale
        cols.append(_channel_sums(fields, index) / scale)
    A = torch.cat(cols, dim=1)
    y = (torch.from_numpy(np.asarray(energies, dtype=np.float64)[index]) - ntile * offset) / scale
    # equilibrate columns so the ridge acts evenly, then solve the normal equations in float64
    norm = A.abs().max(0).values.clamp_min(1e-300)
    An = A / norm
    normal = An.T @ An
    normal += ridge * normal.diagonal().mean() * torch.eye(normal.shape[0], dtype=torch.float64)
    coef = torch.linalg.solve(normal, An.T @ y) / norm
    layer.weight.copy_(coef[:k].reshape(1, -1))
    layer.bias.copy_(coef[k : k + 1])
    if net.baseline is not None:
        net.focus_weights.copy_(coef[k + 1 :])


def _shared_feature_sums(model: EDNN, fields: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """Per-field sums ``(N, hidden)`` of the readout's inputs over all tiles, by halo-shared convolution."""
    from ..tiles import periodic_pad

    per_field = math.prod(s + 2 * model.context for s in fields.shape[2:]) * fields.shape[1]
    step = max(1, min(len(index), 2**22 // per_field))  # ~16 MB of padded input per batch
    rows = []
    for i in range(0, len(index), step):
        chunk = fields[torch.from_numpy(index[i : i + step]).to(fields.device)]
        feat = model.tile_net.subnet.shared_features(periodic_pad(chunk, model.context, model.ndim), model.focus)
        rows.append(feat.double().sum((2, 3)).cpu())
    return torch.cat(rows)


def _tile_feature_sums(model: EDNN, layer, fields: torch.Tensor, index: np.ndarray, batch_size: int) -> torch.Tensor:
    """Per-field sums ``(N, hidden)`` of the readout's inputs, tile by tile (a forward hook on ``layer``)."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda mod, inp: captured.append(inp[0].detach()))
    ntile = n_tiles(fields.shape[2:], model.focus)
    step = model.tile_batch or ntile
    try:
        rows = []
        for i in range(0, len(index), batch_size):
            captured.clear()
            chunk = fields[torch.from_numpy(index[i : i + batch_size]).to(fields.device)]
            # the real tiles in field order, straight through the tile network (inference would pad
            # and reorder them into fixed batch slots)
            tiles = tile_field(chunk, model.focus, model.context, model.ndim)
            flat = tiles.reshape(-1, *tiles.shape[1 + model.ndim :])
            for j in range(0, flat.shape[0], step):
                model.tile_net(flat[j : j + step])
            phi = torch.cat(captured).double().reshape(chunk.shape[0], ntile, -1).sum(1)
            rows.append(phi.cpu())
    finally:
        handle.remove()
    return torch.cat(rows)


def _load_checkpoint(path: str | os.PathLike, device: torch.device) -> dict[str, Any]:
    """Read a checkpoint written by :func:`_save_checkpoint`.

    ``weights_only=True`` (torch's restricted unpickler: tensors, containers,
    numbers) keeps a checkpoint from running code; anything else in it is
    refused with a ``ValueError`` naming the file.
    """
    import pickle

    try:
        state = torch.load(path, weights_only=True, map_location=device)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot resume from {path}: not a checkpoint ednn-dask wrote ({first})") from None
    if not isinstance(state, dict) or not {"model", "optimizer", "scheduler", "epoch", "history"} <= set(state):
        raise InputError(f"cannot resume from {path}: not a checkpoint ednn-dask wrote (missing entries)")
    return state


def _save_checkpoint(path, model, opt, sched, epoch, history, config) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "history": history,
        "config": config.as_metadata(),
    }
    with atomic_path(path) as tmp:  # a crash mid-write never leaves a truncated checkpoint
        torch.save(state, tmp)


def _progress(iterable, enabled: bool, **kw):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc="epochs", unit="epoch", **kw)
