"""The ``corridor`` CLI without a broker: validate, publish of invalid input, usage errors, help."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from schemas.samples import sample_event
from streams.cli import cli
from streams.settings import get_settings


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Nothing listens on port 1: publishing anything valid would be reported undelivered.
    monkeypatch.setenv("CORRIDOR_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("CORRIDOR_PUBLISH_RETRY_TIMEOUT_S", "0.5")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def line(**overrides: object) -> str:
    return json.dumps(sample_event("shipments", **overrides))


@pytest.fixture
def mixed_file(tmp_path: Path) -> Path:
    """Good lines 1, 4, 7; line 2 out of range; 3 blank; 5 not JSON; 6 two bad fields."""
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(
            [line(), line(teu=-3), "", line(), '{"event_id": ', line(teu="x", mode="boat"), line()]
        )
        + "\n"
    )
    return path


def test_validate_reports_each_bad_line_with_reason_and_exits_1(runner: CliRunner, mixed_file: Path) -> None:
    result = runner.invoke(cli, ["validate", "shipments", str(mixed_file)])
    assert result.exit_code == 1
    assert "line 2: out_of_range: teu: must be >= 0 (got -3)" in result.stderr
    assert "line 5: invalid_json:" in result.stderr
    assert "line 6: wrong_type:" in result.stderr
    assert "    mode: must be 'rail', 'sea', 'road', 'rail_sea' or 'air'" in result.stderr
    assert result.stdout.strip() == "3 valid, 3 invalid"


def test_validate_json_summary(runner: CliRunner, mixed_file: Path) -> None:
    result = runner.invoke(cli, ["validate", "shipments", str(mixed_file), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert {key: summary[key] for key in ("valid", "invalid", "published", "numbering")} == {
        "valid": 3,
        "invalid": 3,
        "published": 0,
        "numbering": "line",
    }
    assert [(error["line"], error["reason"]) for error in summary["errors"]] == [
        (2, "out_of_range"),
        (5, "invalid_json"),
        (6, "wrong_type"),
    ]
    assert summary["errors"][0]["message"] == "teu: must be >= 0 (got -3)"
    assert summary["errors"][0]["field_errors"] == [
        {"field": "teu", "message": "must be >= 0 (got -3)", "type": "greater_than_equal"}
    ]
    assert {item["field"] for item in summary["errors"][2]["field_errors"]} == {"teu", "mode"}


def test_validate_numbers_the_items_of_a_json_array(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "batch.json"
    events = [sample_event("flights"), sample_event("flights", route="CKG"), sample_event("flights")]
    path.write_text(json.dumps(events, indent=2))
    result = runner.invoke(cli, ["validate", "flights", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("item 2: invalid_value: route:")
    summary = json.loads(runner.invoke(cli, ["validate", "flights", str(path), "--json"]).stdout)
    assert summary["numbering"] == "item"
    assert [error["line"] for error in summary["errors"]] == [2]


def test_validate_a_clean_file_from_stdin_exits_0(runner: CliRunner) -> None:
    stdin = "\n".join(json.dumps(sample_event("datachannel")) for _ in range(5))
    result = runner.invoke(cli, ["validate", "datachannel", "-"], input=stdin)
    assert result.exit_code == 0
    assert result.stdout.strip() == "5 valid, 0 invalid"
    assert result.stderr == ""


def test_validate_a_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["validate", "shipments", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_an_unknown_family_is_a_usage_error(runner: CliRunner, mixed_file: Path) -> None:
    result = runner.invoke(cli, ["publish", "ships", str(mixed_file)])
    assert result.exit_code == 2
    assert "'ships' is not one of" in result.stderr


def test_publish_of_invalid_events_reports_them_and_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line(teu=-1) + "\n" + line(origin="Chongqing") + "\n")
    result = runner.invoke(cli, ["publish", "shipments", str(path), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["valid"], summary["invalid"], summary["published"], summary["undelivered"]) == (0, 2, 0, 0)
    assert [error["line"] for error in summary["errors"]] == [1, 2]


def test_publish_reports_valid_events_it_could_not_deliver(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "good.jsonl"
    path.write_text(line() + "\n" + line(teu=-1) + "\n" + line() + "\n")
    result = runner.invoke(cli, ["publish", "shipments", str(path), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["valid"], summary["invalid"], summary["published"], summary["undelivered"]) == (2, 1, 0, 2)
    assert [(error["line"], error["reason"]) for error in summary["errors"]] == [
        (2, "out_of_range"),
        (1, "undelivered"),
        (3, "undelivered"),
    ]


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


@pytest.mark.parametrize("verb", list(_commands(cli)), ids=" ".join)
def test_every_verb_has_help(runner: CliRunner, verb: tuple[str, ...]) -> None:
    result = runner.invoke(cli, [*verb, "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")
    assert len(result.stdout.splitlines()) > 3


def test_a_broken_json_array_is_reported_at_its_line(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("\n\n[\n" + json.dumps(sample_event("finance")) + ",\n{oops}\n]\n")
    result = runner.invoke(cli, ["validate", "finance", str(path), "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["valid"], summary["invalid"], summary["numbering"]) == (0, 1, "line")
    assert [(error["line"], error["reason"]) for error in summary["errors"]] == [(5, "invalid_json")]


def test_a_line_only_a_lax_parser_reads_is_judged_by_the_validator(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "nan.jsonl"
    path.write_text(line() + "\n" + line().replace('"teu": 2.0', '"teu": NaN') + "\n")
    result = runner.invoke(cli, ["validate", "shipments", str(path), "--json"])
    summary = json.loads(result.stdout)
    assert [(error["line"], error["reason"]) for error in summary["errors"]] == [(2, "non_finite_number")]


def test_schemas_export_writes_one_schema_per_topic(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["schemas", "export", str(tmp_path / "out")])
    assert result.exit_code == 0
    written = sorted(Path(path).name for path in result.stdout.split())
    assert written == [
        "corridor.datachannel.v1.json",
        "corridor.finance.v1.json",
        "corridor.flights.v1.json",
        "corridor.shipments.v1.json",
    ]
    assert "value" in json.loads((tmp_path / "out" / "corridor.flights.v1.json").read_text())["properties"]


def test_schemas_export_into_a_file_is_an_io_error(runner: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("")
    result = runner.invoke(cli, ["schemas", "export", str(blocker / "out")])
    assert result.exit_code == 2
    assert "cannot write schemas to" in result.stderr


def test_publish_stops_sending_after_a_round_went_undelivered(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("streams.cli.records.CHUNK_EVENTS", 2)
    path = tmp_path / "five.jsonl"
    path.write_text("\n".join([line(), line(), line(teu=-1), line(), line()]) + "\n")
    summary = json.loads(runner.invoke(cli, ["publish", "shipments", str(path), "--json"]).stdout)
    assert (summary["valid"], summary["invalid"], summary["undelivered"]) == (4, 1, 4)
    undelivered = [error for error in summary["errors"] if error["reason"] == "undelivered"]
    assert [error["line"] for error in undelivered] == [1, 2, 4, 5]
    assert all(not error["message"].startswith("not sent") for error in undelivered[:2])
    assert all(error["message"].startswith("not sent after earlier failures: ") for error in undelivered[2:])
