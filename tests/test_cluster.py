"""Batch clusters: profiles, job scripts for --nodes 16, fake and real batch systems, worker plugin, faults."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask.config
import numpy as np
import torch
import pytest
import zarr

from ednn_dask.cli import main
from ednn_dask.cluster import (
    ClusterError,
    bundled_profiles,
    cluster_spec,
    job_script,
    local_cluster,
    torch_threads_for,
    use_profile,
)
from ednn_dask.evaluate import evaluate

from test_evaluate import small_model, write_raster  # noqa: F401  (module fixture reused)


def test_bundled_profiles_load_and_flags_override():
    assert {"slurm", "pbs", "paper-16x28-slurm", "slurm-localhost"} <= set(bundled_profiles())
    with use_profile("paper-16x28-slurm"):
        spec = cluster_spec(profile="paper-16x28-slurm")
        assert (spec.scheduler, spec.nodes, spec.setting("cores"), spec.workers_per_job) == ("slurm", 16, 28, 14)
        spec = cluster_spec(nodes=4, cores=56, memory="16GB", queue="short", profile="paper-16x28-slurm")
        assert (spec.nodes, spec.setting("cores"), spec.setting("memory"), spec.setting("queue")) == (
            4, 56, "16GB", "short")
        assert spec.cores_per_worker == 4
        with pytest.raises(ClusterError, match="fewer than 14 worker processes"):
            cluster_spec(cores=8)
        assert dask.config.get("jobqueue.slurm.shebang") == "#!/usr/bin/env bash"  # defaults beside the profile survive
    assert dask.config.get("ednn.cluster.nodes") == 1  # the profile is gone after the block


def test_profile_errors(tmp_path):
    with pytest.raises(ClusterError, match="unknown cluster profile"):
        with use_profile("no-such-site"):
            pass
    bad = tmp_path / "bad.yaml"
    bad.write_text("ednn: [unclosed\n")
    with pytest.raises(ClusterError, match="not valid YAML"):
        with use_profile(bad):
            pass
    with use_profile("slurm"), pytest.raises(ClusterError, match="at least 1"):
        cluster_spec(nodes=0)


@pytest.mark.parametrize("profile, directives", [
    ("paper-16x28-slurm", ["#SBATCH -n 1", "#SBATCH --cpus-per-task=28", "#SBATCH -t 00:45:00", "#SBATCH -A proj",
                           "#SBATCH -p compute", "#SBATCH --exclusive", "--nworkers 14", "--nthreads 2"]),
    ("pbs", ["#PBS -l select=1:ncpus=28:mem=120GB", "#PBS -l walltime=00:45:00", "#PBS -A proj", "#PBS -q compute",
             "--nworkers 7", "--nthreads 4"]),  # the generic profile leaves processes to dask-jobqueue: ~sqrt(28)
])
def test_job_scripts_for_16_nodes(profile, directives):
    with use_profile(profile):
        spec = cluster_spec(nodes=16, walltime="00:45:00", account="proj", queue="compute", profile=profile,
                            cores=28, memory="120GiB")
        script = job_script(spec)
    assert script.startswith("#!/usr/bin/env bash\n# ednn-dask: 16 job(s)")
    for d in directives:
        assert d in script, d
    assert "distributed.cli.dask_worker tls://127.0.0.1:" in script  # scheduler on loopback unless told otherwise
    assert "--protocol tls://" in script and "--tls-ca-file" in script and "--tls-key" in script
    assert "export MALLOC_TRIM_THRESHOLD_=1073741824" in script  # no page-fault storm in the workers


def test_cli_dry_run_and_flag_errors(tmp_path, capsys, monkeypatch):
    sheet = tmp_path / "missing.zarr"  # a dry run does not read the sheet
    assert main(["evaluate", str(sheet), "--scheduler", "pbs", "--nodes", "16", "--cores", "28", "--memory",
                 "100GB", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "16 job(s)" in out and "#PBS -l select=1:ncpus=28:mem=" in out
    assert err == ""  # nothing was detected, nothing to say
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no qsub
    assert main(["evaluate", str(sheet), "--nodes", "2"]) == 2
    assert "no batch system found (sbatch/qsub not on PATH)" in capsys.readouterr().err
    assert main(["evaluate", str(sheet), "--scheduler", "local", "--nodes", "2"]) == 2
    assert "--scheduler local runs a LocalCluster" in capsys.readouterr().err
    assert main(["evaluate", str(sheet), "--dry-run"]) == 2
    assert "--dry-run and job settings need --nodes" in capsys.readouterr().err
    assert main(["evaluate", str(sheet), "--profile", "nowhere"]) == 2
    assert "unknown cluster profile" in capsys.readouterr().err
    assert not sheet.exists()


def test_torch_threads_rule():
    assert torch_threads_for(7, 7) == 1  # 7 dask threads x 1 torch thread on a 7-core worker
    assert torch_threads_for(7, 1) == 7
    assert torch_threads_for(1, 4) == 1


FAKE_SLURM = {
    "sbatch": """#!/usr/bin/env bash
if [ "$1" = "--test-only" ]; then echo "sbatch: Job 1 to start at now" >&2; exit 0; fi
cp "$1" "$FAKE_BATCH/submitted-$$.sh"; echo "Submitted batch job $$"
""",
    "scancel": """#!/usr/bin/env bash
echo "$@" >> "$FAKE_BATCH/cancelled"
""",
}


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch/scancel that record what they are given and never start a job (an endless queue)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in FAKE_SLURM.items():
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_BATCH", str(tmp_path))
    return tmp_path


def test_queued_jobs_time_out_and_are_cancelled(fake_slurm, small_model, tmp_path, capsys):
    """--nodes 16 submits 16 jobs; none starts; after start-timeout all 16 are cancelled, one clear error."""
    src = write_raster(tmp_path / "r.zarr", np.ones((3, 16, 16), np.float32))
    with dask.config.set({"ednn.cluster.start-timeout": 3}):
        rc = main(["evaluate", str(src), "--model", str(small_model), "--scheduler", "slurm", "--nodes", "16",
                   "--cores", "2", "--memory", "2GB", "--out", str(tmp_path / "out.zarr")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "no worker started within 3 s" in err and "cancelled 16 job(s)" in err
    submitted = sorted(fake_slurm.glob("submitted-*.sh"))
    assert len(submitted) == 16  # --nodes = jobs, not workers
    cancelled = (fake_slurm / "cancelled").read_text().split()
    assert sorted(cancelled) == sorted(p.stem.split("-")[1] for p in submitted)
    assert not (tmp_path / "out.zarr").exists()
    assert "#SBATCH --mem=" in submitted[0].read_text()


def test_worker_plugin_sets_threads_and_preloads(tmp_path, small_model):
    from ednn_dask.evaluate import _worker

    src = write_raster(tmp_path / "r.zarr", np.ones((3, 16, 16), np.float32))
    with local_cluster(2, 1) as client:
        evaluate(src, small_model, client=client)
        token = _worker.ModelRef.from_path(small_model).token

        def state(dask_worker):
            import torch

            from ednn_dask.evaluate import _worker as w

            return torch.get_num_threads(), token in w._CACHE, dask_worker.ednn_torch_threads

        assert set(client.run(state).values()) == {(1, True, 1)}
        trim = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert set(trim.values()) == {"1073741824"}  # not dask's 65536, which makes every buffer a fresh mmap


def _done_count(store: Path) -> int:
    try:
        return int(zarr.open_group(str(store), mode="r")["done"][:].sum())
    except Exception:
        return 0


def test_killed_worker_gives_identical_total(tmp_path, small_model):
    """SIGKILL one of two worker processes mid-run: the nanny restarts it and the total is unchanged."""
    field = (np.random.default_rng(5).random((3, 320, 320)) * 6).astype(np.float32)
    src = write_raster(tmp_path / "r.zarr", field, chunks=(3, 64, 64))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on the workers: oneDNN splits some convolutions by thread count
    try:
        expected = evaluate(src, small_model, chunk=32, scheduler="synchronous", halo_sharing=False).total
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "tiles.zarr"
    n_chunks = (320 // 32) ** 2
    with local_cluster(2, 1) as client:
        pids = list(client.run(os.getpid).values())
        killed = {}

        def killer():
            deadline = time.time() + 120
            while time.time() < deadline:
                done = _done_count(tmp_path / ".partial-tiles.zarr")
                if done >= n_chunks // 10:
                    killed["done"] = done
                    os.kill(pids[0], signal.SIGKILL)
                    return
                time.sleep(0.05)

        t = threading.Thread(target=killer)
        t.start()
        res = evaluate(src, small_model, client=client, chunk=32, out=out, halo_sharing=False)
        t.join()
    assert 0 < killed["done"] < n_chunks, killed  # the kill happened mid-run
    assert res.total == expected  # bitwise: per-tile batches do not depend on which worker ran them
    np.testing.assert_array_equal(np.isfinite(zarr.open_group(str(out), mode="r")["tiles"][:]), True)


# ---- a real SLURM (CI starts one with cluster/localhost/start-slurm.sh) ----

def _our_jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", "ednn-worker", "-o", "%i %t"], capture_output=True, text=True)
    return [ln for ln in out.stdout.splitlines() if ln.strip() and not ln.endswith(" CG")]


def _wait_queue_empty(timeout=30.0) -> list[str]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        jobs = _our_jobs()
        if not jobs:
            return jobs
        time.sleep(0.5)
    return _our_jobs()


@pytest.mark.slurm
def test_slurm_two_nodes_equals_local_cluster(tmp_path, small_model, capsys):
    field = (np.random.default_rng(2).random((3, 96, 64)) * 6).astype(np.float32)
    src = write_raster(tmp_path / "r.zarr", field)
    args = ["evaluate", str(src), "--model", str(small_model), "--chunk", "16", "--json", "--no-halo-sharing"]
    assert main(args + ["--workers", "2"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert main(args + ["--profile", "slurm-localhost", "--nodes", "2"]) == 0
    slurm = json.loads(capsys.readouterr().out)
    assert slurm["total"] == local["total"]
    assert _wait_queue_empty() == []


@pytest.mark.slurm
def test_slurm_sigint_cancels_jobs_and_resumes(tmp_path, small_model):
    field = (np.random.default_rng(3).random((3, 1024, 1024)) * 6).astype(np.float32)
    src = write_raster(tmp_path / "r.zarr", field, chunks=(3, 256, 256))
    out = tmp_path / "tiles.zarr"
    cmd = [sys.executable, "-m", "ednn_dask.cli", "evaluate", str(src), "--model", str(small_model), "--chunk", "32", "--no-halo-sharing",
           "--profile", "slurm-localhost", "--nodes", "2", "--out", str(out), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while _done_count(tmp_path / ".partial-tiles.zarr") < 20 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    done_at_interrupt = _done_count(tmp_path / ".partial-tiles.zarr")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "re-run the same command to resume" in err
    assert _wait_queue_empty() == []  # nothing left in the queue
    assert not out.exists() and (tmp_path / ".partial-tiles.zarr").exists()
    assert 0 < done_at_interrupt < (1024 // 32) ** 2
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    total = json.loads(resumed.stdout)["total"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on the SLURM workers: oneDNN splits some convolutions by thread count
    try:
        expected = evaluate(src, small_model, chunk=32, scheduler="synchronous", halo_sharing=False).total
    finally:
        torch.set_num_threads(threads)
    assert total == expected
    assert _wait_queue_empty() == []
