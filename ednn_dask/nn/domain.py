"""The domain of validity of a tile network: how far a tile's readout features lie from the training tiles'."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FeatureDomain", "fit_feature_domain"]


class FeatureDomain(nn.Module):
    """Squared Mahalanobis distance, per feature, of a tile's readout features from those of the training tiles.

    ``d2 = |W (z - mean)|^2 / H`` for the ``H`` inputs ``z`` of the readout
    (the last width-1 linear layer), with ``W^T W`` the inverse of the
    training tiles' (slightly regularised) feature covariance. Training-like
    tiles have ``d2`` about 1; a tile the network has not seen the like of
    has features off the training tiles' ellipsoid and a large ``d2``, whatever
    the network answers for it. Computed on the same features the readout
    uses, it adds one ``H x H`` product per tile (H = 128 for the bundled
    sheet models) to a conv stack of millions of multiply-adds.

    Parameters
    ----------
    features : int
        ``H``, the readout's input width.
    """

    def __init__(self, features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(int(features)))
        self.register_buffer("whiten", torch.eye(int(features)))

    @property
    def features(self) -> int:
        return int(self.mean.numel())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``d2`` of ``(N, H)`` features (per tile) or ``(B, H, n_y, n_x)`` feature maps (per map position)."""
        if z.dim() == 2:
            y = (z - self.mean) @ self.whiten.T
            return torch.linalg.vector_norm(y, dim=1) ** 2 / self.features
        bias = -(self.whiten @ self.mean)
        y = nn.functional.conv2d(z, self.whiten[:, :, None, None], bias)
        return torch.linalg.vector_norm(y, dim=1) ** 2 / self.features  # one pass over y, no squared copy


@torch.no_grad()
def fit_feature_domain(features: torch.Tensor, ridge: float = 1e-6) -> FeatureDomain:
    """A :class:`FeatureDomain` fitted to ``(N, H)`` training-tile features (float64 statistics).

    The covariance gets ``ridge`` times its mean diagonal added, so that
    directions the training tiles never vary along (dead units) give a
    large but finite distance.
    """
    z = features.double()
    mean = z.mean(0)
    cov = torch.cov((z - mean).T)
    cov = cov + ridge * float(cov.diagonal().mean()) * torch.eye(cov.shape[0], dtype=cov.dtype)
    chol = torch.linalg.cholesky(torch.linalg.inv(cov))  # precision = L L^T, so W = L^T
    domain = FeatureDomain(z.shape[1])
    domain.mean.copy_(mean.float())
    domain.whiten.copy_(chol.T.float())
    return domain
