"""The registry: built-in contents, lookups that fall back to ``other``, and file errors."""

from __future__ import annotations

import json

import pytest

from streams.core.registry import OTHER, Registry, RegistryError
from streams.settings import Settings

DEFAULT = Registry.load()


def write(tmp_path, document) -> str:
    path = tmp_path / "registry.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def minimal(**overrides):
    document = {
        "corridors": {"ILSTC": "corridor"},
        "shipment_routes": {"CNCKG-SGSIN": {"corridor": "ILSTC"}},
        "flight_routes": {"CKG-SIN": ""},
        "carriers": {"TR": "Scoot"},
        "links": {"CQ-SG-1": ""},
    }
    document.update(overrides)
    return document


def test_built_in_registry_holds_the_corridor():
    assert dict(DEFAULT.shipment_routes) == {
        "CNCKG-CNQZH-SGSIN": "ILSTC",
        "CNCKG-SGSIN": "ILSTC",
        "CNCKG-VNHAN": "ILSTC",
        "CNCKG-LAVTE": "ILSTC",
        "CNQZH-SGSIN": "ILSTC",
    }
    assert list(DEFAULT.corridors) == ["ILSTC"]
    assert list(DEFAULT.flight_routes) == ["CKG-SIN"]
    assert list(DEFAULT.carriers) == ["TR", "3U", "SQ"]
    assert list(DEFAULT.links) == ["CQ-SG-1", "CQ-SG-2"]


def test_known_values_map_to_themselves_and_unknown_ones_to_other():
    assert DEFAULT.route("CNCKG-CNQZH-SGSIN") == "CNCKG-CNQZH-SGSIN"
    assert DEFAULT.route("CNCKG-DEHAM") == OTHER
    assert DEFAULT.route("cnckg-sgsin") == OTHER
    assert DEFAULT.flight_route("CKG-SIN") == "CKG-SIN"
    assert DEFAULT.flight_route("SIN-CKG") == OTHER
    assert [DEFAULT.carrier(c) for c in ("TR", "3U", "SQ", "MU")] == ["TR", "3U", "SQ", OTHER]
    assert [DEFAULT.link(x) for x in ("CQ-SG-1", "CQ-SG-2", "CQ-SG-3")] == ["CQ-SG-1", "CQ-SG-2", OTHER]
    assert [DEFAULT.corridor(x) for x in ("ILSTC", "BRI")] == ["ILSTC", OTHER]


def test_the_registry_cannot_be_changed_after_loading():
    with pytest.raises(TypeError):
        DEFAULT.links["CQ-SG-9"] = "injected"  # type: ignore[index]
    assert DEFAULT.link("CQ-SG-9") == OTHER


def test_a_custom_file_replaces_the_built_in_one(tmp_path):
    registry = Registry.load(write(tmp_path, minimal(links={"CQ-SG-9": "new link"})))
    assert registry.link("CQ-SG-9") == "CQ-SG-9"
    assert registry.link("CQ-SG-1") == OTHER


def test_settings_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRIDOR_REGISTRY_FILE", write(tmp_path, minimal(carriers={"MU": "China Eastern"})))
    assert Registry.load(Settings().registry_file).carrier("MU") == "MU"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("{not json", "not valid JSON"),
        ([], "top level: Input should be a valid dictionary"),
        (minimal(links=None), "links: Input should be a valid dictionary"),
        ({k: v for k, v in minimal().items() if k != "carriers"}, "carriers: Field required"),
        (minimal(routes={}), "routes: Extra inputs are not permitted"),
        (
            minimal(shipment_routes={"Chongqing-Singapore": {"corridor": "ILSTC"}}),
            "shipment_routes.Chongqing-Singapore",
        ),
        (minimal(shipment_routes={"CNCKG-SGSIN": {"corridor": "BRI"}}), "names corridor BRI, not listed"),
        (minimal(carriers={"Scoot": "TR"}), "carriers.Scoot"),
        (minimal(links={"other": ""}), "'other' is reserved"),
        (minimal(corridors={}), "corridors: Dictionary should have at least 1 item"),
    ],
)
def test_a_bad_file_is_refused_with_its_name_and_problem(tmp_path, document, problem):
    path = write(tmp_path, document)
    with pytest.raises(RegistryError) as error:
        Registry.load(path)
    assert str(error.value).startswith(f"registry file {path}: ")
    assert problem in str(error.value)


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.json"
    with pytest.raises(RegistryError, match=f"registry file {missing}: cannot be read"):
        Registry.load(missing)
