"""Batch clusters through dask-jobqueue: SLURM and PBS, ``--nodes N`` = N jobs.

The profile (``cluster/*.yaml``) is applied to ``dask.config`` first; keyword
overrides (the CLI flags) win over it. Scheduler and dashboard listen on
loopback unless ``ednn.cluster.scheduler-host`` says otherwise; batch workers
talk TLS with temporary credentials (``Security.temporary()``).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterator

import dask.config

from .. import config
from ._profiles import ClusterError

__all__ = ["SCHEDULERS", "ClusterSpec", "cluster_spec", "job_script", "start_cluster", "local_cluster"]

#: Batch systems and their dask-jobqueue classes.
SCHEDULERS = {
    "slurm": ("dask_jobqueue.slurm", "SLURMCluster", "SLURMJob"),
    "pbs": ("dask_jobqueue.pbs", "PBSCluster", "PBSJob"),
}
#: glibc settings for worker processes. Dask's nanny default (MALLOC_TRIM_THRESHOLD_=65536) also
#: disables glibc's dynamic mmap threshold, so every large tensor buffer is a fresh mmap: a worker
#: spent as much time in page faults (sys) as in compute and 2 workers were slower than 1 process.
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}
#: CLI flags that override dask-jobqueue settings of the profile.
JOB_OVERRIDES = ("cores", "memory", "walltime", "queue", "account", "processes")


@dataclass
class ClusterSpec:
    """Everything needed to start (or print the job script of) a batch cluster."""

    scheduler: str
    nodes: int
    profile: str | None
    job: dict[str, Any] = field(default_factory=dict)  # dask-jobqueue keyword overrides
    start_timeout: float = 600.0
    host: str = "127.0.0.1"
    dashboard_port: int = 0
    tls: bool = True
    detected: str = ""  # which job settings were read from the batch system (resolve_batch)

    @property
    def config_name(self) -> str:
        return self.scheduler

    def setting(self, key: str):
        """A dask-jobqueue setting after overrides (the profile must be applied)."""
        if key in self.job:
            return self.job[key]
        return dask.config.get(f"jobqueue.{self.scheduler}.{key.replace('_', '-')}", None)

    @property
    def workers_per_job(self) -> int:
        processes = self.setting("processes")
        if processes is None and self.setting("cores"):
            from distributed.deploy.utils import nprocesses_nthreads

            # what dask-jobqueue does with processes: null (about sqrt(cores) workers)
            return nprocesses_nthreads(int(self.setting("cores")))[0]
        return int(processes or 1)

    @property
    def cores_per_worker(self) -> int:
        return max(1, int(self.setting("cores") or 1) // self.workers_per_job)


def cluster_spec(scheduler: str | None = None, nodes: int | None = None, profile: str | None = None,
                 **overrides) -> ClusterSpec:
    """Resolve profile, config and overrides into a :class:`ClusterSpec` (validated).

    Call inside :func:`use_profile` (``start_cluster`` and ``job_script`` do).
    """
    scheduler = config.get("cluster.scheduler", scheduler)
    if scheduler not in SCHEDULERS:
        raise ClusterError(f"--scheduler must be one of {', '.join(SCHEDULERS)} for a batch cluster, got {scheduler!r}")
    nodes = int(config.get("cluster.nodes", nodes))
    if nodes < 1:
        raise ClusterError(f"--nodes must be at least 1, got {nodes}")
    job = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(job) - set(JOB_OVERRIDES)
    if unknown:
        raise ClusterError(f"unknown cluster settings: {', '.join(sorted(unknown))}")
    spec = ClusterSpec(
        scheduler=scheduler,
        nodes=nodes,
        profile=profile,
        job=job,
        start_timeout=float(config.get("cluster.start-timeout")),
        host=config.get("cluster.scheduler-host") or "127.0.0.1",
        dashboard_port=int(config.get("cluster.dashboard-port")),
        tls=bool(config.get("cluster.tls")),
    )
    for key in ("cores", "memory"):
        if not spec.setting(key):
            raise ClusterError(f"the {scheduler} profile sets no {key}; pass --{key} or edit the profile")
    if int(spec.setting("cores")) < spec.workers_per_job:
        raise ClusterError(f"--cores {spec.setting('cores')} is fewer than {spec.workers_per_job} worker processes per job")
    return spec


def _classes(spec: ClusterSpec):
    module, cluster_cls, job_cls = SCHEDULERS[spec.scheduler]
    mod = importlib.import_module(module)
    return getattr(mod, cluster_cls), getattr(mod, job_cls)


def _job_kwargs(spec: ClusterSpec) -> dict[str, Any]:
    kwargs = dict(spec.job)
    kwargs.setdefault("python", sys.executable)
    # set before the worker starts: existing environment variables win over the nanny's defaults
    prologue = list(dask.config.get(f"jobqueue.{spec.scheduler}.job-script-prologue", None) or [])
    kwargs["job_script_prologue"] = prologue + [f"export {k}={v}" for k, v in WORKER_MALLOC_ENV.items()]
    return kwargs


def job_script(spec: ClusterSpec) -> str:
    """The job script ``start_cluster`` would submit (``--dry-run``); starts nothing."""
    from distributed.security import Security

    _, job_cls = _classes(spec)
    security = None
    protocol = "tcp://"
    if spec.tls:
        shared = dask.config.get(f"jobqueue.{spec.scheduler}.shared-temp-directory", None) or "<shared-temp-directory>"
        # the real run writes temporary credentials to these files when it starts
        security = Security(
            tls_ca_file=f"{shared}/.dask-jobqueue.worker.ca_file.XXXX",
            tls_worker_cert=f"{shared}/.dask-jobqueue.worker.cert.XXXX",
            tls_worker_key=f"{shared}/.dask-jobqueue.worker.key.XXXX",
            require_encryption=True,
        )
        protocol = "tls://"
    job = job_cls(scheduler=f"{protocol}{spec.host}:<port>", name="ednn-worker", protocol=protocol,
                  security=security, **_job_kwargs(spec))
    shebang, _, body = job.job_script().partition("\n")
    note = (f"# ednn-dask: {spec.nodes} job(s) of this script would be submitted "
            f"({spec.nodes * spec.workers_per_job} workers; {spec.scheduler}, profile {spec.profile or 'none'})")
    if spec.detected:
        note += f"\n# ednn-dask: {spec.detected}"
    return f"{shebang}\n{note}\n{body}"


def _preflight(spec: ClusterSpec) -> None:
    """Fail fast, with the batch system's own words, before any job is submitted."""
    _, job_cls = _classes(spec)
    submit = job_cls.submit_command.split()[0]
    if shutil.which(submit) is None:
        raise ClusterError(f"{submit} not found: is {spec.scheduler.upper()} installed and on PATH on this host?")
    if spec.scheduler == "slurm":
        with tempfile.NamedTemporaryFile("w", suffix=".sh", prefix="ednn-dask-test-") as fh:
            fh.write(job_script(spec))
            fh.flush()
            cmd = [submit, "--test-only", fh.name]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    else:
        cmd = ["qstat", "-B"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {proc.returncode}"
        raise ClusterError(f"{spec.scheduler} does not accept jobs ({' '.join(cmd[:2])}): {detail}")


@contextlib.contextmanager
def start_cluster(spec: ClusterSpec, log=None) -> Iterator[Any]:
    """Start a batch cluster of ``spec.nodes`` jobs, yield a connected ``Client``, cancel all jobs on exit.

    Exits (normal, error, Ctrl-C) close the cluster, which cancels every job
    it submitted (queued or running). If no worker connects within
    ``spec.start_timeout`` seconds, the jobs are cancelled and
    :class:`ClusterError` says so.
    """
    from distributed import Client

    cluster_cls, _ = _classes(spec)
    _preflight(spec)
    kwargs = _job_kwargs(spec)
    scheduler_options = {"host": spec.host, "dashboard_address": f"{spec.host}:{spec.dashboard_port}"}
    tmp = None
    if spec.tls:
        from distributed.security import Security

        kwargs["security"] = Security.temporary()
        kwargs["protocol"] = "tls://"
        if not dask.config.get(f"jobqueue.{spec.scheduler}.shared-temp-directory", None):
            tmp = tempfile.mkdtemp(prefix="ednn-dask-tls-")  # single host: a private directory
            kwargs["shared_temp_directory"] = tmp
        else:
            kwargs["shared_temp_directory"] = os.path.expanduser(
                os.path.expandvars(dask.config.get(f"jobqueue.{spec.scheduler}.shared-temp-directory")))
            os.makedirs(kwargs["shared_temp_directory"], mode=0o700, exist_ok=True)
    cluster = client = None
    try:
        try:
            cluster = cluster_cls(scheduler_options=scheduler_options, **kwargs)
        except (ValueError, TypeError, OSError) as exc:
            raise ClusterError(f"cannot configure the {spec.scheduler} cluster: {exc}") from None
        client = Client(cluster)
        cluster.scale(jobs=spec.nodes)
        if log:
            log(f"{spec.scheduler}: submitted {spec.nodes} job(s) ({spec.nodes * spec.workers_per_job} workers); "
                f"dashboard {client.dashboard_link}")
        try:
            client.wait_for_workers(1, timeout=spec.start_timeout)
        except (TimeoutError, OSError):
            pending = len(getattr(cluster, "workers", {}) or {})
            raise ClusterError(
                f"no worker started within {spec.start_timeout:g} s (jobs still queued?); "
                f"cancelled {pending} job(s). Raise ednn.cluster.start-timeout or check the queue."
            ) from None
        yield client
    finally:
        with _quiet_shutdown():
            if client is not None:
                client.close()
            if cluster is not None:
                try:
                    cluster.close()  # cancels every job (scancel / qdel)
                except AssertionError:  # distributed asserts on jobs whose submission failed: nothing to cancel
                    pass
                for name, obj in list(vars(cluster).items()):
                    if name.startswith("_job_") and hasattr(obj, "file"):
                        obj.close()  # dask-jobqueue's temporary credential files
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _quiet_shutdown() -> Iterator[None]:
    """While closing: the scheduler logs the cancelled feed of a finished progress bar as an ERROR."""
    import logging

    logger = logging.getLogger("distributed.scheduler")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def local_cluster(workers: int | None = None, threads: int = 1) -> Iterator[Any]:
    """A ``LocalCluster`` sized to this machine (workers × threads ≤ cores), loopback only."""
    from distributed import Client, LocalCluster

    workers = workers or max(1, (os.cpu_count() or 1) // max(1, threads))
    with dask.config.set({"distributed.nanny.pre-spawn-environ": dict(WORKER_MALLOC_ENV)}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                               dashboard_address="127.0.0.1:0", host="127.0.0.1",
                               env={"OMP_NUM_THREADS": str(threads)})
    client = Client(cluster)
    try:
        yield client
    finally:
        with _quiet_shutdown():
            client.close()
            cluster.close()
