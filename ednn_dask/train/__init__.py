"""Training loop and metrics."""
from .metrics import error_metrics
from .trainer import (
    TrainConfig,
    fit_focus_baseline,
    fit_label_scaling,
    predict_batched,
    refit_readout,
    split_indices,
    train,
)

__all__ = ["TrainConfig", "error_metrics", "fit_focus_baseline", "fit_label_scaling", "predict_batched", "refit_readout", "split_indices", "train"]
