"""Clusters for the evaluator: LocalCluster, SLURM and PBS through dask-jobqueue.

Profiles are YAML files of dask config in the repository's ``cluster/``
directory (shipped with the package): ``--profile NAME`` or a path.
"""
from ._detect import NodeShape, find_batch_system, read_node_shape, resolve_batch
from ._jobqueue import SCHEDULERS, ClusterSpec, cluster_spec, job_script, local_cluster, start_cluster
from ..evaluate._plugin import EDNNWorkerPlugin, torch_threads_for
from ._profiles import ClusterError, bundled_profiles, read_profile, use_profile

__all__ = [
    "SCHEDULERS",
    "ClusterError",
    "ClusterSpec",
    "EDNNWorkerPlugin",
    "NodeShape",
    "bundled_profiles",
    "cluster_spec",
    "find_batch_system",
    "job_script",
    "local_cluster",
    "read_node_shape",
    "read_profile",
    "resolve_batch",
    "start_cluster",
    "torch_threads_for",
    "use_profile",
]
