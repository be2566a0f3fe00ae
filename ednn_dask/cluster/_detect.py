"""Find the batch system and the shape of its nodes when neither flags nor a profile say.

``ednn-dask evaluate sheet.zarr --nodes 16`` on a login node nobody configured:

1. the batch system is the one whose submit command is on ``PATH`` (``sbatch`` → SLURM, ``qsub`` → PBS;
   both or neither → :class:`ClusterError`);
2. cores and memory of a job are, in this order, the flag (``--cores``/``--memory``), the dask config
   (profile, ``~/.config/dask/jobqueue.yaml``), and only then a node as the scheduler reports it
   (``sinfo`` / ``pbsnodes -a``), the dask-jobqueue habit of None → config → here detected.

SLURM: the nodes of the partition the jobs go to (``--queue``/profile ``queue``, else the default
partition, marked ``*`` by ``sinfo``); with mixed node shapes the partition's smallest cores and memory,
so a job fits every node of it. PBS has no default partition in ``pbsnodes``: the most common shape among
the nodes that are up (ties: the smaller), so jobs wait for nodes of that size, not for the largest ones.
A job asks for ``ednn.cluster.detect-memory-fraction`` (0.95) of a node's memory, rounded down to whole
GiB: SLURM and PBS refuse a job asking more than a node has, dask-jobqueue rounds ``--mem`` up to whole
GiB, and the OS and batch daemons need the rest.
"""
from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping

import dask.config

from .. import config
from ._jobqueue import ClusterSpec, cluster_spec
from ._profiles import ClusterError

__all__ = ["NodeShape", "find_batch_system", "parse_sinfo", "parse_pbsnodes", "read_node_shape", "job_memory",
           "resolve_batch"]

#: Submit command that marks each batch system on PATH.
SUBMIT_COMMANDS = {"slurm": "sbatch", "pbs": "qsub"}
#: How a node's shape is read. sinfo: ``-e`` one line per distinct node shape (not ``28+`` ranges),
#: %P partition (default one marked ``*``), %c CPUs per node, %m memory per node in MB (MiB), %D nodes.
SHAPE_COMMANDS = {"slurm": ["sinfo", "-h", "-e", "-o", "%P %c %m %D"], "pbs": ["pbsnodes", "-a"]}
#: pbsnodes states of nodes that take no jobs.
_PBS_UNUSABLE = ("down", "offline", "unknown", "stale", "unresolvable")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_MIB = 1 << 20
_GIB = 1 << 30


@dataclass(frozen=True)
class NodeShape:
    """Cores and memory of one node as the batch system reports them.

    Attributes
    ----------
    cores : int
        CPUs per node (what ``--cpus-per-task`` / ``ncpus`` count).
    memory_mib : int
        Memory per node in MiB (SLURM's and PBS's "MB").
    where : str
        Which nodes: ``"partition batch*"`` or ``"30 of 32 nodes"``.
    source : str
        The command that reported it (``sinfo``, ``pbsnodes``).
    """

    cores: int
    memory_mib: int
    where: str
    source: str


def find_batch_system(path: str | None = None) -> tuple[str, str]:
    """The batch system whose submit command is on ``PATH``.

    Parameters
    ----------
    path : str, optional
        Search path; default ``$PATH``.

    Returns
    -------
    (str, str)
        Scheduler name (``"slurm"``/``"pbs"``) and the submit command's full path.

    Raises
    ------
    ClusterError
        Neither or both of ``sbatch`` and ``qsub`` are on the path.
    """
    found = {name: shutil.which(cmd, path=path) for name, cmd in SUBMIT_COMMANDS.items()}
    found = {name: where for name, where in found.items() if where}
    if not found:
        raise ClusterError("no batch system found (sbatch/qsub not on PATH); use --workers for a local cluster "
                           "or --scheduler/--profile")
    if len(found) > 1:
        # SLURM's Torque wrappers also install a qsub: only the user knows which one is meant
        listed = " and ".join(f"{SUBMIT_COMMANDS[n]} ({w})" for n, w in found.items())
        raise ClusterError(f"both {listed} are on PATH; choose one with --scheduler slurm or --scheduler pbs")
    return next(iter(found.items()))


def _count(token: str) -> int | None:
    """A count from sinfo/pbsnodes: ``28``, ``28+`` (a minimum), ``(null)``/``N/A`` → None."""
    token = token.strip().rstrip("+")
    return int(token) if token.isdigit() else None


def _mib(token: str, unit: str = "") -> int | None:
    """Memory in MiB from ``192000`` (in ``unit``), ``120000+``, ``131916984kb``, ``187G``; None if unknown.

    Both SLURM and PBS count k/m/g in powers of 1024.
    """
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\+?\s*([kmgtp]?)(?:i?b)?", token.strip().lower())
    if m is None:
        return None
    suffix = m.group(2) or unit
    return int(float(m.group(1)) * _UNITS[suffix] // _MIB)


def parse_sinfo(text: str, partition: str | None = None) -> NodeShape:
    """The smallest node of a partition from ``sinfo -h -e -o "%P %c %m %D"``.

    Parameters
    ----------
    text : str
        sinfo's output, one line per partition and node shape.
    partition : str, optional
        The partition jobs go to; default the one marked ``*``, else the first listed.

    Returns
    -------
    NodeShape

    Raises
    ------
    ClusterError
        The partition is not listed, or reports no cores or memory.
    """
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        name = fields[0]
        rows.append((name.rstrip("*"), name.endswith("*"), _count(fields[1]), _mib(fields[2], "m")))
    if not rows:
        raise ClusterError("sinfo lists no partitions; pass --cores and --memory")
    names = list(dict.fromkeys(f"{r[0]}{'*' if r[1] else ''}" for r in rows))
    if partition:
        chosen = [r for r in rows if r[0] == partition]
        if not chosen:
            raise ClusterError(f"partition {partition!r} is not in sinfo (partitions: {', '.join(names)})")
    else:
        default = [r for r in rows if r[1]]
        chosen = default or [r for r in rows if r[0] == rows[0][0]]  # no default: the first listed
    label = f"partition {chosen[0][0]}{'*' if chosen[0][1] else ''}"
    cores = [r[2] for r in chosen if r[2]]
    # RealMemory defaults to 1 MB where slurm.conf does not set it: not a node's memory
    memory = [r[3] for r in chosen if r[3] and r[3] > 1]
    if not cores or not memory:
        what = "cores" if not cores else "memory (RealMemory not configured?)"
        raise ClusterError(f"sinfo reports no {what} for {label}; pass --cores and --memory")
    if len(set(zip((r[2] for r in chosen), (r[3] for r in chosen)))) > 1:
        label += " (smallest node shape)"
    return NodeShape(min(cores), min(memory), label, "sinfo")


def _pbs_nodes(text: str) -> list[dict[str, str]]:
    """``pbsnodes -a`` as one dict of ``key = value`` per node (``name`` from its unindented line)."""
    nodes: list[dict[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            nodes.append({"name": line.strip()})
        elif nodes and "=" in line:
            key, _, value = line.partition("=")
            nodes[-1][key.strip()] = value.strip()
    return nodes


def _pbs_shape(node: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(ncpus, MiB) of one node: PBS Pro ``resources_available.*``, else Torque ``np`` and ``physmem``."""
    status = dict(kv.split("=", 1) for kv in node.get("status", "").split(",") if "=" in kv)
    cores = _count(node.get("resources_available.ncpus", node.get("np", node.get("pcpus", ""))))
    mem = node.get("resources_available.mem", status.get("physmem", ""))
    return cores, _mib(mem, "b") if mem else None


def parse_pbsnodes(text: str) -> NodeShape:
    """The most common node shape (ties: the smaller) among the up nodes of ``pbsnodes -a``.

    Parameters
    ----------
    text : str
        pbsnodes' output (PBS Pro or Torque).

    Returns
    -------
    NodeShape

    Raises
    ------
    ClusterError
        No node reports both cores and memory.
    """
    nodes = _pbs_nodes(text)
    up = [n for n in nodes if not any(s in n.get("state", "") for s in _PBS_UNUSABLE)]
    shapes = Counter(s for s in map(_pbs_shape, up or nodes) if s[0] and s[1])
    if not shapes:
        raise ClusterError("pbsnodes -a reports no node with ncpus and mem; pass --cores and --memory")
    (cores, mem), count = min(shapes.items(), key=lambda item: (-item[1], item[0]))
    return NodeShape(cores, mem, f"{count} of {len(nodes)} nodes", "pbsnodes")


def read_node_shape(scheduler: str, partition: str | None = None, timeout: float | None = None) -> NodeShape:
    """Ask the batch system for a node's cores and memory (``sinfo`` / ``pbsnodes -a``).

    Parameters
    ----------
    scheduler : {"slurm", "pbs"}
    partition : str, optional
        SLURM partition the jobs go to (default: the default partition). PBS ignores it.
    timeout : float, optional
        Seconds to wait for the command; default ``ednn.cluster.detect-timeout``.

    Returns
    -------
    NodeShape

    Raises
    ------
    ClusterError
        The command is missing, fails, hangs, or reports nothing usable.
    """
    cmd = SHAPE_COMMANDS[scheduler]
    timeout = float(config.get("cluster.detect-timeout", timeout))
    hint = "pass --cores and --memory (or set them in a profile)"
    try:
        # a login node whose controller is unreachable makes sinfo retry for minutes
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ClusterError(f"{cmd[0]} not found on PATH, so the size of a node is unknown; {hint}") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{cmd[0]} did not answer within {timeout:g} s; {hint}") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise ClusterError(f"{' '.join(cmd[:2])} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}; "
                           f"{hint}")
    return parse_sinfo(proc.stdout, partition) if scheduler == "slurm" else parse_pbsnodes(proc.stdout)


def job_memory(shape: NodeShape, fraction: float | None = None) -> str:
    """Memory one job asks for on a node of ``shape``: a fraction of it, rounded down to whole GiB.

    Parameters
    ----------
    shape : NodeShape
    fraction : float, optional
        Default ``ednn.cluster.detect-memory-fraction``.

    Returns
    -------
    str
        e.g. ``"114GiB"`` (dask's units; dask-jobqueue writes it as ``--mem=114G``).
    """
    fraction = float(config.get("cluster.detect-memory-fraction", fraction))
    gib = math.floor(shape.memory_mib * _MIB * fraction / _GIB)
    if gib < 1:
        raise ClusterError(f"{shape.source} reports {shape.memory_mib} MB per node for {shape.where}, "
                           "less than 1 GiB to ask for; pass --memory")
    return f"{gib}GiB"


def _setting(scheduler: str, key: str):
    return dask.config.get(f"jobqueue.{scheduler}.{key}", None)


def resolve_batch(nodes: int | None, scheduler: str | None = None, profile: str | None = None,
                  overrides: Mapping[str, object] | None = None, *, dry_run: bool = False,
                  log: Callable[[str], None] | None = None) -> ClusterSpec | None:
    """The batch cluster for ``--nodes``, finding batch system, cores and memory that nobody set.

    Call inside :func:`use_profile` (the profile's ``jobqueue.*`` keys must be in dask.config).

    Parameters
    ----------
    nodes : int or None
        Batch jobs (one per node); None = not asked for.
    scheduler : str, optional
        ``"slurm"``/``"pbs"`` chosen by a flag or the profile; ``"local"``; None = nobody chose, so
        ``nodes`` finds the batch system on PATH.
    profile : str, optional
        Profile name or path (recorded in the spec).
    overrides : mapping, optional
        Job settings from flags (``cores``, ``memory``, ``queue``...); None values are unset.
    dry_run : bool
        Only changes the wording of the ``log`` line.
    log : callable, optional
        Called with one line saying what was found, when anything was.

    Returns
    -------
    ClusterSpec or None
        None for a local run (no batch scheduler and no ``nodes``).

    Raises
    ------
    ClusterError
        ``nodes`` with ``scheduler="local"``, no or two batch systems, or a node shape that cannot be read.
    """
    job = {k: v for k, v in (overrides or {}).items() if v is not None}
    found = None
    if scheduler in (None, "local"):
        if nodes is None:
            return None
        if scheduler == "local":
            raise ClusterError("--nodes needs a batch system; --scheduler local runs a LocalCluster (use --workers)")
        scheduler, _ = find_batch_system()
        found = f"{scheduler} found ({SUBMIT_COMMANDS[scheduler]})"
    if scheduler not in SUBMIT_COMMANDS:
        raise ClusterError(f"--scheduler must be one of {', '.join(SUBMIT_COMMANDS)} for a batch cluster, "
                           f"got {scheduler!r}")
    missing = [k for k in ("cores", "memory") if k not in job and not _setting(scheduler, k)]
    shape = None
    if missing:
        shape = read_node_shape(scheduler, job.get("queue") or _setting(scheduler, "queue"))
        detected = {"cores": shape.cores, "memory": job_memory(shape)}
        job.update({k: detected[k] for k in missing})
    spec = cluster_spec(scheduler, nodes, profile, **job)
    if shape is not None:
        spec.detected = f"{' and '.join(missing)} from {shape.source} ({shape.where})"
    if log is not None and (found or shape):
        log(_found_line(spec, found, shape, missing, dry_run))
    return spec


def _found_line(spec: ClusterSpec, found: str | None, shape: NodeShape | None, missing: list[str],
                dry_run: bool) -> str:
    """``ednn-dask: slurm found (sbatch); partition batch*: 28 cores, 117.2 GiB per node (from sinfo); ...``."""
    parts = [found or spec.scheduler]
    if shape is not None:
        parts.append(f"{shape.where}: {shape.cores} cores, {shape.memory_mib / 1024:.1f} GiB per node "
                     f"(from {shape.source})")
    given = [k for k in ("cores", "memory") if k not in missing]
    asks = f"each job asks {spec.setting('cores')} cores, {spec.setting('memory')}"
    parts.append(asks + (f" ({' and '.join(given)} as set)" if given else ""))
    jobs = f"{spec.nodes} job{'s' if spec.nodes != 1 else ''}"
    parts.append(f"dry run, would submit {jobs}" if dry_run else f"submitting {jobs}")
    return "ednn-dask: " + "; ".join(parts)
