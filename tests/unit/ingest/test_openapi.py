"""The committed OpenAPI document is the one the ingest serves; `corridor ingest --openapi` renders it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from schemas.families import FAMILIES
from streams.cli import cli
from streams.ingest import openapi_document
from tests.unit.ingest.conftest import Ingest

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_the_committed_document_is_in_sync() -> None:
    assert json.loads(COMMITTED.read_text()) == openapi_document(), (
        "run `corridor ingest --openapi docs/openapi.json` and commit it"
    )


def test_the_served_document_is_the_committed_one(ingest: Ingest) -> None:
    answer = ingest.client.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.json() == json.loads(COMMITTED.read_text())


def test_the_cli_writes_the_document_as_committed(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    result = CliRunner().invoke(cli, ["ingest", "--openapi", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == COMMITTED.read_text()


def test_each_family_takes_its_own_event_model_or_an_array_of_them() -> None:
    document = openapi_document()
    for name, family in FAMILIES.items():
        operation = document["paths"][f"/v1/events/{name}"]["post"]
        reference = {"$ref": f"#/components/schemas/{family.model.__name__}"}
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"anyOf": [reference, {"type": "array", "minItems": 1, "items": reference}]}
        assert set(operation["responses"]) == {"202", "401", "403", "413", "422", "429", "503"}
        assert operation["security"] == [{"HTTPBearer": []}]
        assert family.model.__name__ in document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
