"""`evaluate sheet.zarr --nodes 16` on an unconfigured login node: batch system and node shape from the scheduler.

Fake sbatch/sinfo/qsub/pbsnodes (scripts in tmp_path, alone on PATH) print output captured from real ones;
the `slurm`-marked tests use the real single-host SLURM (cluster/localhost/start-slurm.sh).
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dask.config
import numpy as np
import pytest

from ednn_dask.cli import main
from ednn_dask.cluster import ClusterError, NodeShape, find_batch_system, read_node_shape, resolve_batch, use_profile
from ednn_dask.cluster._detect import job_memory, parse_pbsnodes, parse_sinfo

from test_evaluate import small_model, write_raster  # noqa: F401  (module fixture reused)

ROOT = Path(__file__).resolve().parents[1]

#: `sinfo -h -e -o "%P %c %m %D"` of the single-host SLURM (start-slurm.sh, 2 CPUs, 12052 MB).
SINFO_LOCALHOST = "debug* 2 12052 1\n"
#: The same command on a site with a mixed default partition, a GPU and a debug partition.
SINFO_SITE = """\
batch* 28 120000 14
batch* 28 192000 2
batch* 40 192000 8
gpu 32 384000 4
debug 28 120000 2
"""
#: PBS Pro `pbsnodes -a`: two 28-core nodes (one busy), one big-memory node, one offline 64-core node.
PBSNODES_PRO = """\
cn001
     Mom = cn001.hpc.example.org
     ntype = PBS
     state = free
     pcpus = 28
     resources_available.arch = linux
     resources_available.host = cn001
     resources_available.mem = 131500964kb
     resources_available.ncpus = 28
     resources_available.vnode = cn001
     resources_assigned.mem = 0kb
     resources_assigned.ncpus = 0
     resv_enable = True
     sharing = default_shared
     last_state_change_time = Mon Nov 23 09:12:44 2026

cn002
     Mom = cn002.hpc.example.org
     ntype = PBS
     state = job-busy
     jobs = 4411.pbs01/0, 4411.pbs01/1
     pcpus = 28
     resources_available.mem = 131500964kb
     resources_available.ncpus = 28
     resources_assigned.mem = 125829120kb
     resources_assigned.ncpus = 28
     sharing = default_shared

bm001
     Mom = bm001.hpc.example.org
     state = free
     pcpus = 28
     resources_available.mem = 1056000000kb
     resources_available.ncpus = 28
     sharing = default_shared

cn065
     Mom = cn065.hpc.example.org
     state = down,offline
     pcpus = 64
     resources_available.mem = 256gb
     resources_available.ncpus = 64
     comment = node down: communication closed

"""
#: Torque `pbsnodes -a`: cores as np, memory only in status' physmem.
PBSNODES_TORQUE = """\
node01
     state = free
     power_state = Running
     np = 16
     properties = batch
     ntype = cluster
     status = opsys=linux,uname=Linux node01 3.10.0 #1 SMP x86_64,nusers=0,idletime=1234,\
totmem=70000000kb,availmem=68000000kb,physmem=65808000kb,ncpus=16,loadave=0.00,gres=,netload=123,state=free,\
varattr= ,rectime=1700000000
     mom_service_port = 15002
     mom_manager_port = 15003
"""


def _fake_bin(directory: Path, **scripts: str | tuple) -> Path:
    """Executables NAME that log their arguments to ``calls`` and print the given text.

    A value is the stdout text or ``(stdout, exit code, stderr)``. Only bash builtins are used, so
    PATH may hold this directory alone.
    """
    bindir = directory / "bin"
    bindir.mkdir(exist_ok=True)
    for name, out in scripts.items():
        out, rc, err = (out, 0, "") if isinstance(out, str) else out
        q = lambda s: "'" + s.replace("'", "'\\''") + "'"  # noqa: E731
        (bindir / name).write_text(f"#!/bin/bash\nprintf '%s\\n' \"{name} $*\" >> {q(str(directory / 'calls'))}\n"
                                   f"printf '%s' {q(out)}\nprintf '%s' {q(err)} >&2\nexit {rc}\n")
        (bindir / name).chmod(0o755)
    return bindir


def _calls(directory: Path) -> list[str]:
    path = directory / "calls"
    return path.read_text().splitlines() if path.exists() else []


def _cli(args, path: Path | str, timeout=120):
    """``python -m ednn_dask.cli`` from this checkout with PATH = ``path`` only."""
    env = {**os.environ, "PATH": str(path), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ednn_dask.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


# ---- parsing ----

def test_parse_sinfo_single_host():
    assert parse_sinfo(SINFO_LOCALHOST) == NodeShape(2, 12052, "partition debug*", "sinfo")


def test_parse_sinfo_default_partition_smallest_shape_and_queue():
    shape = parse_sinfo(SINFO_SITE)
    assert (shape.cores, shape.memory_mib) == (28, 120000)  # the smallest of batch*'s three shapes: every node fits
    assert shape.where == "partition batch* (smallest node shape)"
    assert parse_sinfo(SINFO_SITE, "gpu") == NodeShape(32, 384000, "partition gpu", "sinfo")
    with pytest.raises(ClusterError, match=r"partition 'long' is not in sinfo \(partitions: batch\*, gpu, debug\)"):
        parse_sinfo(SINFO_SITE, "long")


def test_parse_sinfo_ranges_nulls_and_unset_memory():
    assert parse_sinfo("batch* 28+ 120000+ 24\n") == NodeShape(28, 120000, "partition batch*", "sinfo")
    # a shape without memory is skipped; no default partition: the first listed
    shape = parse_sinfo("short 16 (null) 2\nshort 16 64000 6\nlong 64 512000 2\n")
    assert shape == NodeShape(16, 64000, "partition short (smallest node shape)", "sinfo")
    assert parse_sinfo("  \nbatch* 28 187G 4\n").memory_mib == 187 * 1024
    with pytest.raises(ClusterError, match="no memory"):
        parse_sinfo("batch* 28 1 4\n")  # slurm.conf without RealMemory reports 1 MB
    with pytest.raises(ClusterError, match="no cores"):
        parse_sinfo("batch* N/A 120000 4\n")
    with pytest.raises(ClusterError, match="no partitions"):
        parse_sinfo("")


def test_parse_pbsnodes_most_common_up_shape():
    shape = parse_pbsnodes(PBSNODES_PRO)  # the offline 64-core node does not count
    assert shape == NodeShape(28, 131500964 // 1024, "2 of 4 nodes", "pbsnodes")
    assert parse_pbsnodes(PBSNODES_TORQUE) == NodeShape(16, 65808000 // 1024, "1 of 1 nodes", "pbsnodes")
    with pytest.raises(ClusterError, match="no node with ncpus and mem"):
        parse_pbsnodes("n1\n     state = free\n     resources_available.ncpus = 8\n")


def test_job_memory_headroom():
    assert job_memory(NodeShape(2, 12052, "p", "sinfo")) == "11GiB"  # 95 % of 11.8 GiB, rounded down
    assert job_memory(NodeShape(28, 120000, "p", "sinfo")) == "111GiB"
    with dask.config.set({"ednn.cluster.detect-memory-fraction": 0.5}):
        assert job_memory(NodeShape(28, 120000, "p", "sinfo")) == "58GiB"
    with pytest.raises(ClusterError, match="less than 1 GiB"):
        job_memory(NodeShape(1, 1000, "p", "sinfo"))


# ---- detection ----

@pytest.mark.parametrize("commands, expected", [
    (["sbatch"], "slurm"), (["qsub"], "pbs"), ([], "no batch system found"), (["sbatch", "qsub"], "both"),
])
def test_find_batch_system(tmp_path, commands, expected):
    bindir = _fake_bin(tmp_path, **{c: "" for c in commands}) if commands else tmp_path
    if expected in ("slurm", "pbs"):
        scheduler, where = find_batch_system(str(bindir))
        assert (scheduler, where) == (expected, str(bindir / commands[0]))
    else:
        with pytest.raises(ClusterError, match=expected) as info:
            find_batch_system(str(bindir))
        assert "--scheduler" in str(info.value)


def test_read_node_shape_failure_and_timeout(tmp_path, monkeypatch):
    bindir = _fake_bin(tmp_path, sinfo=("", 1, "sinfo: error: slurm_load_partitions: Unable to contact slurm "
                                             "controller (connect failure)\n"))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ClusterError, match="sinfo -h failed: .*Unable to contact slurm controller.*--cores"):
        read_node_shape("slurm")
    (bindir / "sinfo").write_text("#!/bin/bash\nexec sleep 30\n")
    start = time.monotonic()
    with dask.config.set({"ednn.cluster.detect-timeout": 1}), pytest.raises(ClusterError, match="within 1 s"):
        read_node_shape("slurm")
    assert time.monotonic() - start < 10
    assert _calls(tmp_path) == ["sinfo -h -e -o %P %c %m %D"]


def test_resolve_batch_flags_and_profile_win(tmp_path, monkeypatch):
    bindir = _fake_bin(tmp_path, sbatch="", sinfo=SINFO_SITE)
    monkeypatch.setenv("PATH", str(bindir))
    lines = []
    with use_profile(None):
        assert resolve_batch(None) is None  # no --nodes, nobody chose: local
        spec = resolve_batch(4, overrides={"cores": 8, "queue": "gpu"}, log=lines.append)
        assert (spec.scheduler, spec.nodes, spec.setting("cores"), spec.setting("memory")) == ("slurm", 4, 8, "356GiB")
        assert lines == ["ednn-dask: slurm found (sbatch); partition gpu: 32 cores, 375.0 GiB per node (from sinfo); "
                         "each job asks 8 cores, 356GiB (cores as set); submitting 4 jobs"]
        with pytest.raises(ClusterError, match="--scheduler local runs a LocalCluster"):
            resolve_batch(2, "local")
    assert _calls(tmp_path) == ["sinfo -h -e -o %P %c %m %D"]
    with use_profile("paper-16x28-slurm"):  # the profile sets everything: sinfo is not asked
        spec = resolve_batch(16, "slurm", "paper-16x28-slurm", log=lines.append)
        assert (spec.setting("cores"), spec.setting("memory"), spec.detected) == (28, "120GB", "")
    assert len(lines) == 1 and len(_calls(tmp_path)) == 1


# ---- the command line, against fake batch systems ----

def test_cli_nodes_16_dry_run_fake_slurm(tmp_path):
    bindir = _fake_bin(tmp_path, sbatch="Submitted batch job 1\n", scancel="", sinfo=SINFO_SITE)
    proc = _cli(["evaluate", str(tmp_path / "sheet.zarr"), "--nodes", "16", "--dry-run"], bindir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "ednn-dask: slurm found (sbatch); partition batch* (smallest node shape): 28 cores, 117.2 GiB per node "
        "(from sinfo); each job asks 28 cores, 111GiB; dry run, would submit 16 jobs"]
    script = proc.stdout
    assert script.startswith("#!/usr/bin/env bash\n# ednn-dask: 16 job(s) of this script would be submitted (112 workers")
    assert "# ednn-dask: cores and memory from sinfo (partition batch* (smallest node shape))" in script
    for line in ("#SBATCH -n 1", "#SBATCH --cpus-per-task=28", "#SBATCH --mem=111G", "--nworkers 7", "--nthreads 4"):
        assert line in script, line
    assert "#SBATCH -p" not in script  # the default partition is SLURM's own choice
    assert _calls(tmp_path) == ["sinfo -h -e -o %P %c %m %D"]  # nothing submitted
    assert not (tmp_path / "sheet.zarr").exists()


def test_cli_nodes_dry_run_fake_pbs_and_json_is_quiet(tmp_path):
    bindir = _fake_bin(tmp_path, qsub="", qstat="", pbsnodes=PBSNODES_PRO)
    proc = _cli(["evaluate", "sheet.zarr", "--nodes", "16", "--walltime", "02:00:00", "--dry-run"], bindir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ("ednn-dask: pbs found (qsub); 2 of 4 nodes: 28 cores, 125.4 GiB per node (from pbsnodes); "
                           "each job asks 28 cores, 119GiB; dry run, would submit 16 jobs\n")
    assert "#PBS -l select=1:ncpus=28:mem=119GB" in proc.stdout and "#PBS -l walltime=02:00:00" in proc.stdout
    proc = _cli(["evaluate", "sheet.zarr", "--nodes", "2", "--dry-run", "--json"], bindir)
    assert proc.returncode == 0 and proc.stderr == "" and "2 job(s)" in proc.stdout
    assert _calls(tmp_path) == ["pbsnodes -a", "pbsnodes -a"]


def test_cli_scheduler_slurm_and_generic_profile_use_sinfo(tmp_path):
    """--scheduler slurm and --profile slurm leave cores/memory unset: read from sinfo, not 'sets no cores'."""
    bindir = _fake_bin(tmp_path, sbatch="", sinfo=SINFO_LOCALHOST)
    for extra in (["--scheduler", "slurm"], ["--profile", "slurm"]):
        proc = _cli(["evaluate", "sheet.zarr", "--nodes", "2", "--dry-run", *extra], bindir)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ("ednn-dask: slurm; partition debug*: 2 cores, 11.8 GiB per node (from sinfo); "
                               "each job asks 2 cores, 11GiB; dry run, would submit 2 jobs\n")
        assert "#SBATCH --cpus-per-task=2" in proc.stdout and "#SBATCH --mem=11G" in proc.stdout
    proc = _cli(["evaluate", "sheet.zarr", "--nodes", "2", "--dry-run", "--profile", "slurm", "--memory", "4GB",
                 "--cores", "1"], bindir)
    assert proc.returncode == 0 and proc.stderr == "" and "#SBATCH --mem=4G" in proc.stdout  # flags win, no sinfo
    assert len(_calls(tmp_path)) == 2


@pytest.mark.parametrize("commands, message", [
    ({}, "no batch system found (sbatch/qsub not on PATH); use --workers for a local cluster or --scheduler/--profile"),
    ({"sbatch": "", "qsub": ""}, "choose one with --scheduler slurm or --scheduler pbs"),
    ({"sbatch": ""}, "sinfo not found on PATH, so the size of a node is unknown; pass --cores and --memory"),
])
def test_cli_nodes_without_a_usable_batch_system(tmp_path, commands, message):
    bindir = _fake_bin(tmp_path, **commands)
    proc = _cli(["evaluate", str(tmp_path / "sheet.zarr"), "--nodes", "16"], bindir)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ednn-dask: error: ") and message in lines[0], proc.stderr


# ---- the real single-host SLURM (cluster/localhost/start-slurm.sh) ----

def _sinfo_default_node() -> tuple[int, int]:
    out = subprocess.run(["sinfo", "-h", "-o", "%c %m %P"], capture_output=True, text=True, check=True).stdout
    cores, mem, _ = next(ln.split() for ln in out.splitlines() if ln.split()[2].endswith("*"))
    return int(cores), int(mem)


@pytest.mark.slurm
def test_slurm_nodes_dry_run_reads_the_real_sinfo(tmp_path):
    cores, mem = _sinfo_default_node()
    proc = _cli(["evaluate", str(tmp_path / "sheet.zarr"), "--nodes", "1", "--dry-run"], os.environ["PATH"])
    assert proc.returncode == 0, proc.stderr
    gib = int(mem * 0.95 // 1024)
    assert f"{cores} cores, {mem / 1024:.1f} GiB per node (from sinfo)" in proc.stderr
    assert proc.stderr.startswith("ednn-dask: slurm found (sbatch); partition ")
    assert f"#SBATCH --cpus-per-task={cores}\n" in proc.stdout and f"#SBATCH --mem={gib}G\n" in proc.stdout


@pytest.mark.slurm
def test_slurm_nodes_2_without_scheduler_or_profile(tmp_path, small_model, capsys):
    """The design-card command on the real SLURM: same total as a LocalCluster; jobs that pend are cancelled."""
    field = (np.random.default_rng(4).random((3, 96, 64)) * 6).astype(np.float32)
    src = write_raster(tmp_path / "r.zarr", field)
    args = ["evaluate", str(src), "--model", str(small_model), "--chunk", "16", "--no-halo-sharing"]
    assert main(args + ["--workers", "2", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    with dask.config.set({"ednn.cluster.start-timeout": 120}):
        assert main(args + ["--nodes", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == local["total"]
    deadline = time.time() + 30
    while time.time() < deadline and subprocess.run(["squeue", "-h", "-n", "dask-worker", "-t", "PD,R"],
                                                    capture_output=True, text=True).stdout.strip():
        time.sleep(0.5)
    assert subprocess.run(["squeue", "-h", "-n", "dask-worker", "-t", "PD,R"], capture_output=True,
                          text=True).stdout.strip() == ""
