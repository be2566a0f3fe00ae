"""scripts/ood_sets.py: every set builder on one or two structures, and one small end-to-end run (about 10 s)."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ood_sets.py"


@pytest.fixture(scope="module")
def ood():
    spec = importlib.util.spec_from_file_location("ood_sets", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ood_sets"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("ood_sets", None)


def test_builders_make_flat_periodic_sheets_with_energies(ood):
    names = [s.name for s in ood.SETS]
    assert len(names) == len(set(names)) and len({s.seed for s in ood.SETS}) == len(ood.SETS)
    for spec in ood.SETS:
        kwargs = {"equilibrate": 5, "every": 5} if spec.name == "md-like" else {}
        frames = ood.build_set(spec, 2, **kwargs)
        assert len(frames) == 2, spec.name
        for a in frames:
            assert a.pbc.all() and np.all(a.positions[:, 2] == 0.0), spec.name
            assert np.isfinite(a.get_potential_energy()) and -8.0 < a.get_potential_energy() / len(a) < -5.0
            assert a.info["set"] == spec.name
    again = ood.build_set(ood.SETS[0], 2)  # fixed seeds: the same structures every run
    assert np.allclose(again[1].positions, ood.build_set(ood.SETS[0], 2)[1].positions)


def test_strain_cells(ood):
    assert ood._whole_focus_repeat(0.01) == 20 and ood._whole_focus_repeat(1 / 300) == 20
    frames = [a for a, _ in ood.build_strain(np.random.default_rng(0), 5, strain=0.03)]
    assert [len(a) for a in frames] == [60, 60, 1200, 1200, 132]
    assert frames[4].cell[0, 0] == pytest.approx(11 * 2.5 * (1 + 1 / 33))


def test_end_to_end_records_refusals(ood, tmp_path):
    import ase.io

    out = tmp_path / "ood"
    assert ood.main(["--out", str(out), "--n", "5", "--sets", "strain-3", "--models", "hexagonal-sheet"]) == 0
    meta = json.loads((out / "sets.json").read_text())
    st = meta["sets"][0]["models"]["hexagonal-sheet"]
    assert (st["accepted"], st["refused"]) == (1, 4)
    assert st["refusal_kinds"] == {"cell not whole pixels": 2, "off the honeycomb (lattice order < 0.25)": 2}
    frames = ase.io.read(out / "strain-3.extxyz", ":")
    assert len(frames) == 5 and np.isfinite(frames[4].get_potential_energy())
    assert "strain-3" in (out / "summary.md").read_text()
