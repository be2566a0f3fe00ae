"""Cluster profiles: YAML files of dask config (``jobqueue.*`` and ``ednn.cluster.*``)."""
from __future__ import annotations

import contextlib
import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import yaml
from ..errors import EDNNError

__all__ = ["ClusterError", "bundled_profiles", "read_profile", "use_profile"]


class ClusterError(EDNNError, RuntimeError):
    """A cluster could not be configured, started or used (message is for users)."""


def _profile_dir():
    return resources.files("ednn_dask") / "cluster" / "profiles"


def bundled_profiles() -> list[str]:
    """Names of the profiles shipped in ``cluster/`` (``--profile NAME``)."""
    return sorted(p.name[: -len(".yaml")] for p in _profile_dir().iterdir() if p.name.endswith(".yaml"))


def read_profile(profile: str | os.PathLike) -> dict[str, Any]:
    """The dask config of a profile given by bundled name or by path to a YAML file."""
    path = Path(profile)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ClusterError(f"cluster profile not found: {profile}")
        text = path.read_text()
    else:
        entry = _profile_dir() / f"{profile}.yaml"
        if not entry.is_file():
            raise ClusterError(f"unknown cluster profile {str(profile)!r}; bundled: {', '.join(bundled_profiles())}, "
                               "or pass a path to a YAML file")
        text = entry.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ClusterError(f"cluster profile {profile} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not set(data) <= {"ednn", "jobqueue", "distributed"}:
        raise ClusterError(f"cluster profile {profile} must be a mapping with keys ednn/jobqueue/distributed")
    return data


def _leaves(tree: dict, prefix: str = "") -> dict[str, Any]:
    # dask.config.set replaces whole sub-trees; set leaves so the package defaults beside them survive
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, name + "."))
        else:
            out[name] = value
    return out


@contextlib.contextmanager
def use_profile(profile: str | os.PathLike | None) -> Iterator[dict]:
    """Apply a profile to ``dask.config`` for the duration of the block."""
    import dask.config

    from .. import config

    import dask_jobqueue  # noqa: F401  (registers its config defaults before the profile is layered on)

    config.get("cluster.start-timeout")  # and ours
    data = read_profile(profile) if profile is not None else {}
    with dask.config.set(_leaves(data)):
        yield data
