"""Configuration through ``dask.config`` with the bundled ``ednn.yaml``.

Defaults are merged into dask's config the first time :func:`get` is
called, not at import, so importing the package writes nothing.
"""
from __future__ import annotations

from importlib import resources
from typing import Any

__all__ = ["get"]

_loaded = False


def _ensure_defaults() -> None:
    global _loaded
    if _loaded:
        return
    import dask.config
    import yaml

    text = (resources.files("ednn_dask") / "ednn.yaml").read_text()
    dask.config.update_defaults(yaml.safe_load(text))
    _loaded = True


def get(key: str, value: Any = None) -> Any:
    """Return ``value`` if it is not ``None``, else the config value ``ednn.<key>``.

    Keyword defaults of public functions are ``None`` and resolve here, as in
    dask-jobqueue.
    """
    if value is not None:
        return value
    _ensure_defaults()
    import dask.config

    return dask.config.get(f"ednn.{key}")
