"""Saved models: export, metadata (read through :class:`ModelCard`), loading and the bundled models."""
from .card import ModelCard, RasterSettings
from .registry import bundled_models, get_model, resolve_model
from .serialize import LoadedModel, ModelFileError, load_model, read_card, read_metadata, save_model, update_metadata, upgrade_model

__all__ = [
    "LoadedModel",
    "ModelCard",
    "ModelFileError",
    "RasterSettings",
    "bundled_models",
    "get_model",
    "load_model",
    "read_card",
    "read_metadata",
    "resolve_model",
    "save_model",
    "update_metadata",
    "upgrade_model",
]
