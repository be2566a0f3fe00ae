"""The model card: typed accessors equal to the raw metadata, its checks, and cards of edited metadata."""
import copy

import pytest
import torch

from ednn_dask.data.sheets import SHEET_SPACING, SPECIES
from ednn_dask.models import LoadedModel, ModelCard, ModelFileError, RasterSettings, bundled_models, get_model
from ednn_dask.models import load_model, read_card, read_metadata, save_model
from ednn_dask.raster._register import HONEYCOMB
from ednn_dask.train import TrainConfig
from ednn_dask.train.ising import build_ising_model, ising_metadata
from ednn_dask.train.sheets import InMemory, build_sheet_model, sheet_metadata

ATTRS = {"species": list(SPECIES), "channels": "species", "gamma": 0.2, "spacing": list(SHEET_SPACING),
         "n": 0, "seed": 0, "temperature_range": [100, 1000], "kind": "hexagonal", "lattice": HONEYCOMB}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A freshly saved (untrained) sheet model and Ising model."""
    d = tmp_path_factory.mktemp("cards")
    report = {"test": {"mae_mev_per_atom": 1.5}, "test_set": "a few cells"}
    sheet = save_model(build_sheet_model(8, 24, seed=1), d / "sheet.pt2",
                       sheet_metadata("sheet", "hexagonal", 8, 24, TrainConfig(), ATTRS, report))
    ising = save_model(build_ising_model(1, 1), d / "ising.pt", ising_metadata(1, 1, TrainConfig(), 10, 8))
    return {"sheet": sheet, "ising": ising}


def _assert_card_is_metadata(card: ModelCard, meta: dict) -> None:
    """Every accessor gives what the raw JSON holds."""
    assert card.name == meta["name"]
    assert card.description == meta.get("description", "")
    assert card.reference == meta.get("reference", "")
    assert card.exported_as == meta["exported_as"] and card.format_version == meta["format_version"]
    assert (card.focus, card.context, card.ndim, card.channels) == (
        meta["focus"], meta["context"], meta["ndim"], meta["channels"])
    assert card.tile == meta["focus"] + 2 * meta["context"]
    assert card.tile_shape == meta["tile_shape"]
    assert card.target_name == meta["target"]["name"] and card.units == meta["target"]["units"]
    assert card.input_kind == meta["input"]["kind"]
    assert card.takes_atoms == (meta["input"]["kind"] == "raster")
    value = meta["pixel_spacing"]["value"]
    assert card.pixel_spacing == ((value, value) if isinstance(value, float) else tuple(value))
    assert card.pixel_spacing_units == meta["pixel_spacing"]["units"]
    assert card.species == tuple(meta["input"].get("species", ()))
    assert card.gamma == meta["input"].get("gamma")
    assert card.lattice == meta["input"].get("lattice")
    assert card.subnet == meta["subnet"]
    assert card.halo_sharing_allowed == (meta["subnet"]["type"] == "conv" and meta["subnet"]["padding"] == "valid")
    assert card.halo_sharing_default == (bool(meta.get("halo_shared_ok")) and card.halo_sharing_allowed)
    assert card.label_scaling == meta["label_scaling"]
    assert card.has_focus_baseline == ("focus_baseline" in meta["label_scaling"])
    assert card.accuracy == meta.get("accuracy", {}) and card.training == meta["training"]
    for test in ("test", "transfer", "supercells"):
        assert card.accuracy_of(test) == meta.get("accuracy", {}).get(test)


def test_bundled_cards_equal_their_metadata():
    metas, cards = bundled_models(), bundled_models(cards=True)
    assert list(cards) == list(metas) == ["hexagonal-sheet", "ising", "porous-graphene"]
    for name, card in cards.items():
        meta = {k: v for k, v in metas[name].items() if k != "path"}
        assert card.metadata == meta and card.source == metas[name]["path"]
        _assert_card_is_metadata(card, meta)
        assert get_model(name).card == card
    assert cards["ising"].accuracy_set("test") == metas["ising"]["accuracy"]["test_set"]
    assert cards["ising"].accuracy_set("transfer") == metas["ising"]["accuracy"]["transfer_set"]
    assert cards["hexagonal-sheet"].accuracy_set("supercells") == metas["hexagonal-sheet"]["accuracy"]["supercells"]["set"]
    assert cards["porous-graphene"].accuracy_of("supercells") is None
    assert cards["porous-graphene"].accuracy_set("supercells") == ""


def test_card_of_a_saved_sheet_model(saved):
    meta = read_metadata(saved["sheet"])
    card = read_card(saved["sheet"])
    _assert_card_is_metadata(card, meta)
    assert card.halo_sharing_default and card.has_focus_baseline and card.lattice == HONEYCOMB
    assert card.raster_settings() == RasterSettings(tuple(SHEET_SPACING), tuple(SPECIES), "species", HONEYCOMB)
    assert card.raster_settings().n_channels == card.channels == len(SPECIES)
    assert card.accuracy_of("test") == {"mae_mev_per_atom": 1.5} and card.accuracy_set("test") == "a few cells"
    loaded = load_model(saved["sheet"])
    assert loaded.card == card and loaded.card.metadata is loaded.metadata and loaded.name == "sheet"


def test_card_of_a_saved_ising_model(saved):
    meta = read_metadata(saved["ising"])
    card = load_model(saved["ising"]).card
    _assert_card_is_metadata(card, meta)
    assert card.input_kind == "ising-spins" and not card.takes_atoms
    assert card.pixel_spacing == (1.0, 1.0) and card.species == () and card.lattice is None and card.gamma is None
    assert not card.halo_sharing_allowed and not card.halo_sharing_default and not card.has_focus_baseline
    assert card.accuracy == {} and card.accuracy_of("test") is None


def test_raster_settings_refused_for_ising(saved):
    for card in (read_card(saved["ising"]), bundled_models(cards=True)["ising"]):
        with pytest.raises(ValueError, match="'ising' does not take rasters of atoms"):
            card.raster_settings()


def test_card_of_edited_metadata_behaves_as_documented():
    base = {k: v for k, v in bundled_models()["porous-graphene"].items() if k != "path"}

    def card(**changes):
        meta = copy.deepcopy(base)
        meta.update(changes)
        return ModelCard(meta, "/some/where/edited.pt2")

    assert card().halo_sharing_default
    assert not card(halo_shared_ok=False).halo_sharing_default and card(halo_shared_ok=False).halo_sharing_allowed
    same = card(subnet={**base["subnet"], "padding": "same"})
    assert not same.halo_sharing_allowed and not same.halo_sharing_default
    assert card(subnet=None).subnet == {} and not card(subnet=None).halo_sharing_allowed
    assert card(pixel_spacing={"value": 0.25, "units": "Å"}).pixel_spacing == (0.25, 0.25)
    assert card(pixel_spacing={}).pixel_spacing is None
    with pytest.raises(ValueError, match="does not take rasters"):
        card(pixel_spacing={}).raster_settings()
    no_lattice = card(input={k: v for k, v in base["input"].items() if k != "lattice"})
    assert no_lattice.lattice is None and no_lattice.raster_settings().lattice is None
    z = card(input={**base["input"], "channels": "z", "species": ["B", "C", "N"]}).raster_settings()
    assert z.channels == "z" and z.n_channels == 1
    assert card(name=None).name == "edited" and card(name="renamed").name == "renamed"
    assert card(focus=16).tile == 64 and card(focus=16).tile_shape == [1, 64, 64]
    assert card(label_scaling={"offset": 0.0, "scale": 1.0}).has_focus_baseline is False
    assert card(input={}).input_kind is None and card(target={}).units == ""
    # the card reads the mapping it is given: a change shows through
    live = card()
    live.metadata["halo_shared_ok"] = False
    assert not live.halo_sharing_default


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"format": "other"}, "ednn.json is not ednn-dask-model metadata"),
        ({"target": None}, None),
        ({"format_version": 99}, "uses model format 99, newer than this ednn-dask"),
        ({"focus": 0}, "focus must be an integer >= 1, got 0"),
        ({"context": 2.5}, "context must be an integer >= 0"),
        ({"ndim": True}, "ndim must be an integer >= 1"),
        ({"exported_as": None}, "exported_as must be one of torch.export, torchscript"),
        ({"tile_shape": [1, 8, 8]}, r"contradicts itself: tile_shape \[1, 8, 8\] but focus 8, context 24"),
    ],
)
def test_validate_refuses_edited_metadata(changes, match):
    meta = {k: v for k, v in bundled_models()["porous-graphene"].items() if k != "path"}
    assert ModelCard(meta, "x.pt2").validate() is not None
    if changes == {"target": None}:
        del meta["target"]
        match = "x.pt2: metadata lacks target"
    else:
        meta.update(changes)
    with pytest.raises(ModelFileError, match=match):
        ModelCard(meta, "x.pt2").validate()
    if "tile_shape" in changes:
        ModelCard(meta, "x.pt2").validate(tile_shape=False)  # left to the loader, after the program check


def test_check_program_compares_the_tiles():
    card = bundled_models(cards=True)["ising"]
    card.check_program(lambda t: t.sum(dim=(1, 2, 3)), (1, 3, 3))
    card.check_program(lambda t: t.sum(dim=(1, 2, 3)), None)
    with pytest.raises(ModelFileError, match=r"says focus 1, context 1, 1 channel\(s\) \(tile 3 px\) but the program "
                                             r"takes 5-px tiles with 1 channel\(s\)"):
        card.check_program(lambda t: t.sum(dim=(1, 2, 3)), (1, 5, 5))
    with pytest.raises(ModelFileError, match=r"maps 2 such tiles to shape \[2, 3\], not \[2\]"):
        card.check_program(lambda t: t.sum(dim=(1, 2)), None)
    with pytest.raises(ModelFileError, match="fails on such tiles"):
        card.check_program(lambda t: t.view(7), None)


def test_card_of_models_in_memory_and_of_dicts(saved):
    meta = sheet_metadata("mem", "hexagonal", 8, 24, TrainConfig(), ATTRS)
    mem = InMemory(build_sheet_model(8, 24), meta)
    assert ModelCard.of(mem).metadata is meta and ModelCard.of(mem).species == tuple(SPECIES)
    assert ModelCard.of(meta).raster_settings() == mem.card.raster_settings()
    loaded = load_model(saved["ising"])
    assert ModelCard.of(loaded) == loaded.card

    class Bare:  # anything with metadata
        metadata = meta

    assert ModelCard.of(Bare()).name == "mem"
    assert isinstance(loaded, LoadedModel) and isinstance(loaded.ednn(torch.ones(1, 1, 2, 2)), torch.Tensor)
