"""``corridor schemas register`` against a stand-in Schema Registry (tests/schema_registry_api.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from schemas.export import family_schema_text
from schemas.families import FAMILIES
from streams.cli import cli
from streams.settings import get_settings
from tests.schema_compatibility import SHIPMENT_CONTRACT_1
from tests.schema_registry_api import FakeSchemaRegistry

SUBJECTS = [f"{family.topic}-value" for family in FAMILIES.values()]


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry().serving() as fake:
        yield fake
    assert fake.violations == []


def register(*args: str):
    return CliRunner().invoke(cli, ["schemas", "register", *args])


def test_each_topic_schema_is_registered_as_its_value_subject_as_export_writes_it(registry, tmp_path: Path):
    result = register("--url", registry.url)
    assert result.exit_code == 0, result.output
    exported = {path.name: path.read_text() for path in map(Path, CliRunner().invoke(
        cli, ["schemas", "export", str(tmp_path)]).output.split())}
    assert sorted(registry.schemas) == sorted(SUBJECTS)
    for family in FAMILIES.values():
        (schema,) = registry.schemas[f"{family.topic}-value"]
        assert schema == exported[f"{family.topic}.json"]
        assert json.loads(schema)["title"] == family.topic
    lines = [f"{subject}\tid {registry.id_of(registry.schemas[subject][0])}" for subject in SUBJECTS]
    assert result.output.splitlines() == lines


def test_each_subject_is_set_to_backward_compatibility_before_its_schema_is_posted(registry):
    assert register("--url", registry.url).exit_code == 0
    assert registry.compatibility == dict.fromkeys(SUBJECTS, "BACKWARD")
    assert registry.requests == [
        request for subject in SUBJECTS
        for request in (("PUT", f"/config/{subject}"), ("POST", f"/subjects/{subject}/versions"))
    ]


def test_keep_leaves_each_subjects_compatibility_as_it_is(registry):
    result = register("--url", registry.url, "--compatibility", "keep")
    assert result.exit_code == 0, result.output
    assert registry.compatibility == {}
    assert {method for method, _ in registry.requests} == {"POST"}
    assert sorted(registry.schemas) == sorted(SUBJECTS)


def test_the_help_names_backward_as_the_default_and_how_to_set_none():
    result = register("--help")
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    assert "[default: BACKWARD]" in help_text
    assert "KEEP sets none" in help_text


def test_a_subject_holding_shipment_contract_1_gets_contract_2_as_its_next_version(registry):
    # The stand-in checks no compatibility (tests/schema_registry_api.py); that contract 2 passes
    # Confluent's BACKWARD check against contract 1 is tests/unit/schemas/test_shipment_contract_v2.py's.
    subject = f"{FAMILIES['shipments'].topic}-value"
    version_1 = SHIPMENT_CONTRACT_1.read_text()
    registry.schemas[subject] = [version_1]
    assert register("--url", registry.url).exit_code == 0
    assert registry.schemas[subject] == [version_1, family_schema_text("shipments")]
    assert registry.requests.index(("PUT", f"/config/{subject}")) + 1 == registry.requests.index(
        ("POST", f"/subjects/{subject}/versions"))
    assert registry.compatibility[subject] == "BACKWARD"


def test_registering_again_gives_the_same_ids(registry):
    first = register("--url", registry.url + "/")
    again = register("--url", registry.url)
    assert first.exit_code == again.exit_code == 0
    assert first.output == again.output
    assert all(len(versions) == 1 for versions in registry.schemas.values())


def test_suffix_and_compatibility(registry):
    result = register("--url", registry.url, "--subject-suffix", "-v2", "--compatibility", "full_transitive")
    assert result.exit_code == 0, result.output
    assert sorted(registry.schemas) == sorted(f"{family.topic}-v2" for family in FAMILIES.values())
    assert registry.compatibility == {f"{family.topic}-v2": "FULL_TRANSITIVE" for family in FAMILIES.values()}
    assert registry.requests[:2] == [("PUT", f"/config/{SUBJECTS[0][:-6]}-v2"),
                                     ("POST", f"/subjects/{SUBJECTS[0][:-6]}-v2/versions")]


def test_credentials_in_the_url_are_sent_as_basic_auth():
    with FakeSchemaRegistry(users={("key", "s3cr:et")}).serving() as fake:
        url_with = fake.url.replace("http://", "http://key:s3cr%3Aet@")
        assert register("--url", url_with).exit_code == 0
        refused = register("--url", fake.url)
    assert refused.exit_code == 1
    assert refused.output.strip().splitlines() == [
        f"Error: Schema Registry at {fake.url} refused the credentials (401): give them in the URL, "
        "e.g. https://KEY:SECRET@host"]
    assert "s3cr" not in refused.output


def test_an_incompatible_subject_is_one_clear_line_after_the_ones_registered():
    with FakeSchemaRegistry(incompatible={SUBJECTS[1]}).serving() as fake:
        result = register("--url", fake.url)
    assert result.exit_code == 1
    registered, error = result.output.splitlines()
    assert registered.startswith(f"{SUBJECTS[0]}\tid ")
    assert error.startswith(f"Error: {SUBJECTS[1]}: the schema is incompatible with the subject's registered versions "
                            "(409: Schema being registered is incompatible")
    assert "change the subject's compatibility" in error


def test_an_unreachable_registry_is_one_clear_line():
    with FakeSchemaRegistry().serving() as fake:
        url = fake.url  # nothing listens there once it stopped
    result = register("--url", url)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: no Schema Registry answered at {url}: [Errno 111] Connection refused"]


def test_a_url_that_is_not_http_is_refused():
    result = register("--url", "file:///etc/passwd")
    assert result.exit_code == 1
    assert "must start with http:// or https://" in result.output


def test_schemas_export_writes_what_it_always_wrote(tmp_path: Path):
    from schemas.export import family_json_schema

    result = CliRunner().invoke(cli, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0
    for family in FAMILIES.values():
        text = (tmp_path / f"{family.topic}.json").read_text()
        assert text == json.dumps(family_json_schema(family.name), indent=2, ensure_ascii=False) + "\n"
