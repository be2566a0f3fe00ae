import numpy as np
import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption("--run-browser", action="store_true", default=False,
                     help="run the headless-Chromium tests (marker browser; needs .[browser] and chromium)")


def _slurm_available() -> bool:
    import shutil
    import subprocess

    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and any(s.strip() in ("idle", "mix", "alloc") for s in proc.stdout.splitlines())


def pytest_report_header(config):
    """Which kernels this run exercises: CPU, AMX or not, and any instruction-set cap in force."""
    import os
    import platform

    model, flags = platform.processor() or "?", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    caps = ", ".join(f"{k}={os.environ[k]}" for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                       "MKL_ENABLE_INSTRUCTIONS") if k in os.environ)
    return (f"cpu: {model}; AMX: {'yes' if 'amx_tile' in flags else 'no'}; "
            f"torch kernels: {torch.backends.cpu.get_cpu_capability()}; caps: {caps or 'none'}")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--run-slow")
    skip_slow = pytest.mark.skip(reason="slow: opt in with --run-slow")
    skip_browser = pytest.mark.skip(reason="browser: opt in with --run-browser")
    slurm = None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "browser" in item.keywords and not config.getoption("--run-browser"):
            item.add_marker(skip_browser)
        if "slurm" in item.keywords:
            if slurm is None:
                slurm = _slurm_available()
            if not slurm:
                item.add_marker(pytest.mark.skip(reason="no running SLURM here (see cluster/localhost/start-slurm.sh)"))


@pytest.fixture(scope="session", autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def small_ising():
    from ednn_dask.systems.ising import IsingDataset

    return IsingDataset.generate(2000, 8, seed=11)


@pytest.fixture(scope="session")
def trained_ising(small_ising):
    """A quickly trained paper Ising EDNN (f=1, c=1): trained, not accurate."""
    from ednn_dask.train import TrainConfig, train
    from ednn_dask.train.ising import build_ising_model, spins_to_fields

    model = build_ising_model(1, 1, seed=0)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=1e-3, progress=False)
    train(model, spins_to_fields(small_ising.spins), small_ising.energies, cfg)
    return model
