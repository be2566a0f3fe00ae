"""Training loop: reproducibility, checkpoint/resume, readout refit, metrics."""
import numpy as np
import pytest
import torch

from ednn_dask.train import TrainConfig, error_metrics, fit_label_scaling, predict_batched, refit_readout, train
from ednn_dask.train.ising import build_ising_model, ising_symmetries, spins_to_fields
from ednn_dask.systems.ising import ising_energy


def _fit(data, epochs, seed=0, checkpoint=None, resume=False, refit=False):
    model = build_ising_model(1, 1, seed=seed)
    cfg = TrainConfig(epochs=epochs, batch_size=100, lr=1e-3, seed=seed, progress=False, refit_readout=refit)
    hist = train(model, spins_to_fields(data.spins[:600]), data.energies[:600], cfg, checkpoint, resume,
                 n_sites=64, augment=ising_symmetries)
    return model, hist


def test_same_seed_same_weights(small_ising):
    a, ha = _fit(small_ising, 2)
    b, hb = _fit(small_ising, 2)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert ha == hb
    c, _ = _fit(small_ising, 2, seed=1)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_resume_from_checkpoint_equals_uninterrupted(small_ising, tmp_path):
    x, y = spins_to_fields(small_ising.spins[:600]), small_ising.energies[:600]
    cfg = TrainConfig(epochs=3, batch_size=100, lr=1e-3, progress=False, refit_readout=True)
    full = build_ising_model(1, 1, seed=0)
    hist_full = train(full, x, y, cfg, n_sites=64, augment=ising_symmetries)

    class Killed(Exception):
        pass

    calls = {"n": 0}

    def dies_in_third_epoch(batch, gen):
        calls["n"] += 1
        if calls["n"] > 2 * 6:  # 540 training fields / 100 per batch = 6 batches per epoch
            raise Killed
        return ising_symmetries(batch, gen)

    ck = tmp_path / "ck.pt"
    with pytest.raises(Killed):
        train(build_ising_model(1, 1, seed=0), x, y, cfg, ck, n_sites=64, augment=dies_in_third_epoch)
    assert torch.load(ck, weights_only=True)["epoch"] == 1
    assert not (tmp_path / "ck.pt.tmp").exists()
    resumed = build_ising_model(1, 1, seed=5)  # different init: the state must come from the checkpoint
    hist = train(resumed, x, y, cfg, ck, resume=True, n_sites=64, augment=ising_symmetries)
    for pa, pb in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(pa, pb)
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]
    assert hist[-1]["val_mae"] == hist_full[-1]["val_mae"]


def test_refit_readout_reduces_training_error(small_ising):
    model, _ = _fit(small_ising, 1)
    x, y = spins_to_fields(small_ising.spins[:600]), small_ising.energies[:600]
    before = error_metrics(predict_batched(model, x), y)["rmse"]
    refit_readout(model, x, y)
    after = error_metrics(predict_batched(model, x), y)["rmse"]
    assert after < 0.9 * before


def test_label_scaling_is_per_tile():
    e = np.array([-128.0, -64.0, 0.0])
    offset, scale = fit_label_scaling(e, 64)
    assert offset == pytest.approx(-1.0)
    assert scale == pytest.approx(np.std(e / 64))


def test_augmentation_preserves_energy(small_ising):
    x = spins_to_fields(small_ising.spins[:50])
    gen = torch.Generator().manual_seed(0)
    for _ in range(8):
        aug = ising_symmetries(x, gen)
        np.testing.assert_array_equal(ising_energy(aug[:, 0].numpy()), small_ising.energies[:50])


def test_error_metrics():
    m = error_metrics([1.0, 2.5, -3.0], [1.0, 2.0, -4.0], n_sites=2)
    assert m["mae"] == pytest.approx(0.5) and m["median_ae"] == pytest.approx(0.5)
    assert m["max_ae"] == 1.0 and m["mae_per_site"] == pytest.approx(0.25)
    assert m["median_rel"] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        error_metrics([], [])


def test_refit_readout_with_tile_count_not_a_multiple_of_the_tile_batch():
    """Inference pads tile batches to a fixed size; the refit must use the real tiles only."""
    from ednn_dask.systems.ising import IsingDataset

    data = IsingDataset.generate(60, 6, seed=2)  # 36 tiles per field, 5 fields per call: 180 -> padded to 192
    model = build_ising_model(1, 1, seed=0)
    x = spins_to_fields(data.spins)
    model.tile_net.offset.fill_(-2.0)
    before = error_metrics(predict_batched(model, x), data.energies)["rmse"]
    refit_readout(model, x, data.energies, batch_size=5)
    after = error_metrics(predict_batched(model, x), data.energies)["rmse"]
    assert after < 0.5 * before
