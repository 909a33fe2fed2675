"""``corridor dashboards push`` against a stand-in Grafana that checks every request it gets."""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import dashboards
from dashboards.grafana import (
    DATASOURCE_NAME,
    DATASOURCE_UID,
    InvalidModel,
    changed_fields,
    connect,
    dashboard_payload,
    folder_uid,
)
from dashboards.grafana import push as push_models
from streams.cli import cli
from tests.grafana_api import FakeGrafana

# Credentials the stand-in Grafana accepts, known to no real one.
TOKEN = "glsa_admin_0123456789abcdef"  # noqa: S105
EDITOR_TOKEN = "glsa_editor_0123456789abcdef"  # noqa: S105
FOLDER_UID = "corridor-monitor"


def model(uid: str, title: str, expr: str, **extra: Any) -> dict[str, Any]:
    """A small dashboard model of the shape the generators render."""
    return {
        "uid": uid,
        "title": title,
        "tags": ["corridor"],
        "schemaVersion": 39,
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": []},
        "panels": [{
            "id": 1,
            "type": "timeseries",
            "title": title,
            "gridPos": {"h": 8, "w": 12, "x": 0, "y": 0},
            "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
            "targets": [{"expr": expr, "refId": "A", "datasource": {"type": "prometheus", "uid": DATASOURCE_UID}}],
        }],
        **extra,
    }


MODELS = {
    "corridor-overview": model("corridor-overview", "Corridor overview", "sum(corridor_shipment_teu_window)"),
    "corridor-flights": model("corridor-flights", "Corridor flights", "sum(corridor_flights_window)"),
    # Exported from another Grafana: its numeric id and version mean nothing here.
    "corridor-finance": model("corridor-finance", "Corridor finance", "sum(corridor_finance_usd_window)",
                              id=42, version=7),
}


def without_grafana_fields(dashboard: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in dashboard.items() if key not in ("id", "version")}


@pytest.fixture(autouse=True)
def no_grafana_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFANA_URL", raising=False)
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana(tokens={TOKEN: "Admin", EDITOR_TOKEN: "Editor"}, users={("ops", "pass:word"): "Admin"})
    with fake.serving():
        yield fake
    assert fake.violations == [], "requests Grafana's HTTP API would refuse or misread"


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "json"
    dashboards.write(directory, copy.deepcopy(MODELS))
    return directory


def push(grafana: FakeGrafana, directory: Path, *args: str, token: str | None = TOKEN) -> Result:
    argv = ["dashboards", "push", "--url", grafana.url, "--from", str(directory), *args]
    if token is not None:
        argv += ["--token", token]
    result = CliRunner().invoke(cli, argv)
    assert TOKEN not in result.output and EDITOR_TOKEN not in result.output
    assert "Traceback" not in result.output
    return result


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


def test_first_push_creates_the_folder_the_datasource_and_every_dashboard(grafana: FakeGrafana,
                                                                           models_dir: Path) -> None:
    result = push(grafana, models_dir)

    assert result.exit_code == 0, result.output
    assert lines(result)[:2] == [
        f"folder     Corridor Monitor ({FOLDER_UID}): created",
        f"datasource {DATASOURCE_NAME} ({DATASOURCE_UID}): created; http://prometheus:9090",
    ]
    for name in sorted(MODELS):
        assert f"dashboard  {MODELS[name]['title']} ({name}): created; version 1, {grafana.url}/d/{name}/" in (
            result.stdout)
    assert lines(result)[-1] == f"Grafana 11.3.0 at {grafana.url}: 5 objects; 5 created, 0 updated, 0 unchanged, " \
                                "0 failed"
    assert grafana.folders[FOLDER_UID]["title"] == "Corridor Monitor"
    datasource = grafana.datasources[DATASOURCE_UID]
    assert (datasource["name"], datasource["type"], datasource["access"], datasource["url"]) == (
        DATASOURCE_NAME, "prometheus", "proxy", "http://prometheus:9090")
    on_disk = dashboards.load(models_dir)
    assert set(grafana.dashboards) == set(on_disk)
    for uid, stored in grafana.dashboards.items():
        assert without_grafana_fields(stored.model) == without_grafana_fields(on_disk[uid])
        assert stored.folder_uid == FOLDER_UID
        assert stored.model["version"] == 1
    assert grafana.writes() == [("POST", "/api/folders"), ("POST", "/api/datasources")] + [
        ("POST", "/api/dashboards/db")] * 3


def test_a_second_push_changes_nothing_and_writes_nothing(grafana: FakeGrafana, models_dir: Path) -> None:
    assert push(grafana, models_dir).exit_code == 0
    writes_before = len(grafana.writes())

    result = push(grafana, models_dir)

    assert result.exit_code == 0, result.output
    assert len(grafana.writes()) == writes_before
    assert all(": unchanged" in line for line in lines(result)[:-1]), result.stdout
    assert lines(result)[-1].endswith("5 objects; 0 created, 0 updated, 5 unchanged, 0 failed")


def test_a_changed_dashboard_file_is_the_only_one_uploaded(grafana: FakeGrafana, models_dir: Path) -> None:
    assert push(grafana, models_dir).exit_code == 0
    path = models_dir / "corridor-flights.json"
    changed = json.loads(path.read_text())
    changed["panels"][0]["title"] = "Flights operated, 7 days"
    changed["refresh"] = "1m"
    path.write_text(dashboards.dumps(changed))
    writes_before = len(grafana.writes())

    result = push(grafana, models_dir)

    assert result.exit_code == 0, result.output
    assert grafana.writes()[writes_before:] == [("POST", "/api/dashboards/db")]
    assert (f"dashboard  Corridor flights (corridor-flights): updated; panels, refresh; version 2, "
            f"{grafana.url}/d/corridor-flights/corridor-flights") in lines(result)
    assert lines(result)[-1].endswith("5 objects; 0 created, 1 updated, 4 unchanged, 0 failed")
    assert without_grafana_fields(grafana.dashboard("corridor-flights")) == without_grafana_fields(changed)
    assert grafana.dashboard("corridor-overview")["version"] == 1


def test_a_dashboard_in_another_folder_is_moved_into_ours(grafana: FakeGrafana, models_dir: Path) -> None:
    grafana.add_folder("elsewhere", "Elsewhere")
    grafana.add_dashboard(MODELS["corridor-overview"], "elsewhere")

    result = push(grafana, models_dir)

    assert result.exit_code == 0, result.output
    assert "dashboard  Corridor overview (corridor-overview): updated; moved from folder Elsewhere; version 2" in (
        result.stdout)
    assert grafana.dashboards["corridor-overview"].folder_uid == FOLDER_UID


def test_an_existing_folder_of_the_same_title_is_used(grafana: FakeGrafana, models_dir: Path) -> None:
    grafana.add_folder("made-by-hand", "Corridor Monitor")

    result = push(grafana, models_dir)

    assert result.exit_code == 0, result.output
    assert lines(result)[0] == "folder     Corridor Monitor (made-by-hand): unchanged; found by its title"
    assert {stored.folder_uid for stored in grafana.dashboards.values()} == {"made-by-hand"}


def test_a_wrong_token_exits_1_with_one_line_naming_the_token(grafana: FakeGrafana, models_dir: Path) -> None:
    result = push(grafana, models_dir, token="glsa_wrong")  # noqa: S106

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (f"Error: Grafana at {grafana.url} rejected the token (401 Unauthorized): pass a valid "
                             "service account token with --token or GRAFANA_TOKEN\n")
    assert "glsa_wrong" not in result.output
    assert grafana.writes() == []


def test_a_missing_token_is_asked_for(grafana: FakeGrafana, models_dir: Path) -> None:
    result = push(grafana, models_dir, token=None)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: Grafana at {grafana.url} wants a token (401 Unauthorized)")
    assert result.stderr.count("\n") == 1


def test_wrong_credentials_in_the_url_are_named(grafana: FakeGrafana, models_dir: Path) -> None:
    url = grafana.url.replace("http://", "http://ops:wrong@")
    result = CliRunner().invoke(cli, ["dashboards", "push", "--url", url, "--from", str(models_dir)])

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: Grafana at {grafana.url} rejected the user and password in the URL "
                                    "(401 Unauthorized)")
    assert "wrong" not in result.output


def test_user_and_password_are_sent_as_basic_auth(grafana: FakeGrafana, models_dir: Path) -> None:
    result = push(grafana, models_dir, token="ops:pass:word")  # noqa: S106

    assert result.exit_code == 0, result.output
    assert "pass:word" not in result.output
    assert len(grafana.dashboards) == 3


def test_an_editor_token_is_told_about_the_datasource_and_may_skip_it(grafana: FakeGrafana,
                                                                       models_dir: Path) -> None:
    refused = push(grafana, models_dir, token=EDITOR_TOKEN)

    assert refused.exit_code == 1
    assert refused.stderr == (f"Error: Grafana at {grafana.url} refused to read data source corridor-prometheus "
                              "(403 Forbidden): the token needs the datasources:read permission (the Admin role has "
                              "it) or pass --no-datasource\n")

    result = push(grafana, models_dir, "--no-datasource", token=EDITOR_TOKEN)

    assert result.exit_code == 0, result.output
    assert not any(line.startswith("datasource") for line in lines(result))
    assert grafana.datasources == {}
    assert len(grafana.dashboards) == 3


def test_a_closed_port_exits_1_with_one_line_naming_the_url(models_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result = CliRunner().invoke(cli, ["dashboards", "push", "--url", url, "--token", TOKEN, "--from",
                                      str(models_dir)])

    assert result.exit_code == 1
    assert result.stderr == (f"Error: cannot reach Grafana at {url}: connection refused; check --url (or "
                             "GRAFANA_URL) and that Grafana is running\n")


class NotGrafanaHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"404 page not found\n"
        self.send_response(404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_server_that_is_not_grafana_exits_1_with_one_line(models_dir: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotGrafanaHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        result = CliRunner().invoke(cli, ["dashboards", "push", "--url", url, "--token", TOKEN, "--from",
                                          str(models_dir)])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert result.exit_code == 1
    assert result.stderr == (f"Error: {url} does not answer like Grafana (GET /api/health answered 404); --url "
                             "takes Grafana's base URL, such as http://grafana:3000\n")


def test_url_and_token_come_from_the_environment(grafana: FakeGrafana, models_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["dashboards", "push", "--from", str(models_dir)],
                                env={"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": TOKEN})

    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    assert len(grafana.dashboards) == 3


def test_a_provisioned_dashboard_that_differs_fails_alone(grafana: FakeGrafana, models_dir: Path) -> None:
    grafana.add_folder(FOLDER_UID, "Corridor Monitor")
    grafana.add_dashboard({**MODELS["corridor-flights"], "refresh": "5s"}, FOLDER_UID, provisioned=True)

    result = push(grafana, models_dir)

    assert result.exit_code == 1
    assert result.stderr == ("dashboard  Corridor flights (corridor-flights): failed; differs, but Grafana "
                             "provisions it from files: change those instead\n")
    assert lines(result)[-1].endswith("5 objects; 3 created, 0 updated, 1 unchanged, 1 failed")
    assert grafana.dashboard("corridor-flights")["refresh"] == "5s"


def test_a_datasource_name_taken_by_another_uid_fails_alone(grafana: FakeGrafana, models_dir: Path) -> None:
    grafana.add_datasource("made-by-hand", DATASOURCE_NAME, "http://prometheus:9090")

    result = push(grafana, models_dir)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"datasource {DATASOURCE_NAME} ({DATASOURCE_UID}): failed; 409: data source "
                                    "with the same name already exists")
    assert len(grafana.dashboards) == 3


def test_an_existing_datasource_is_kept_as_it_is(grafana: FakeGrafana, models_dir: Path) -> None:
    grafana.add_datasource(DATASOURCE_UID, DATASOURCE_NAME, "http://prometheus.monitoring:9090")

    result = push(grafana, models_dir, "--prometheus-url", "http://elsewhere:9090")

    assert result.exit_code == 0, result.output
    assert (f"datasource {DATASOURCE_NAME} ({DATASOURCE_UID}): unchanged; kept its URL "
            "http://prometheus.monitoring:9090 (not http://elsewhere:9090); edit it in Grafana if Prometheus moved"
            ) in lines(result)
    assert grafana.datasources[DATASOURCE_UID]["url"] == "http://prometheus.monitoring:9090"


def test_a_model_without_title_is_refused_before_anything_is_sent(grafana: FakeGrafana, tmp_path: Path) -> None:
    dashboards.write(tmp_path, {"untitled": {"uid": "untitled", "panels": []}})

    result = push(grafana, tmp_path)

    assert result.exit_code == 1
    assert result.stderr == f"Error: dashboard untitled: the model has no title (in {tmp_path})\n"
    assert grafana.requests == []


def test_an_empty_directory_is_refused(grafana: FakeGrafana, tmp_path: Path) -> None:
    result = push(grafana, tmp_path)

    assert result.exit_code == 1
    assert result.stderr == (f"Error: no dashboard models (*.json) in {tmp_path}; run `corridor dashboards build`\n")
    assert grafana.requests == []


def test_help_explains_the_command_with_an_example() -> None:
    result = CliRunner().invoke(cli, ["dashboards", "push", "--help"])

    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for expected in ("--url URL", "GRAFANA_URL; required", "--token TOKEN", "env var: GRAFANA_TOKEN",
                     "--folder NAME", "default: Corridor Monitor", "--prometheus-url URL",
                     "default: http://prometheus:9090", "--from DIRECTORY", "--no-datasource",
                     'corridor dashboards push --url http://grafana:3000 --token "$GRAFANA_TOKEN"'):
        assert expected in text, expected


def test_the_rendered_dashboards_push_and_then_stay_unchanged(grafana: FakeGrafana) -> None:
    rendered = dashboards.load()
    if not rendered:
        pytest.skip("no rendered dashboards in dashboards/json yet")

    first = push(grafana, dashboards.JSON_DIR)
    second = push(grafana, dashboards.JSON_DIR)

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert lines(second)[-1].endswith(f"0 created, 0 updated, {len(rendered) + 2} unchanged, 0 failed")
    for name, rendered_model in rendered.items():
        stored = grafana.dashboard(rendered_model.get("uid") or name)
        assert without_grafana_fields(stored) == without_grafana_fields({**rendered_model, "uid": stored["uid"]})


# -- the pieces ------------------------------------------------------------------------


def test_folder_uids_are_derived_from_titles_within_grafanas_rules() -> None:
    assert folder_uid("Corridor Monitor") == "corridor-monitor"
    assert folder_uid("  Corridor / Staging (2) ") == "corridor-staging-2"
    assert folder_uid("走廊监控") == folder_uid("走廊监控")
    assert folder_uid("走廊监控").startswith("folder-")
    assert len(folder_uid("x" * 100)) == 40


def test_only_grafanas_own_fields_are_ignored_when_comparing() -> None:
    ours = dashboard_payload("d", {"title": "D", "panels": [], "version": 3})
    assert ours["uid"] == "d" and ours["id"] is None
    assert changed_fields({**ours, "id": 17, "version": 9}, ours) == []
    assert changed_fields({**ours, "id": 17, "panels": [{}]}, ours) == ["panels"]
    assert changed_fields({key: value for key, value in ours.items() if key != "panels"}, ours) == ["panels"]
    assert changed_fields({**ours, "refresh": None}, ours) == ["refresh"]


def test_two_models_with_one_uid_are_refused_before_anything_is_sent() -> None:
    twins = {"a": MODELS["corridor-overview"], "b": MODELS["corridor-overview"]}
    with pytest.raises(InvalidModel, match="more than one dashboard has uid corridor-overview"):
        push_models(connect("http://127.0.0.1:1"), twins)


def test_connect_keeps_a_sub_path_and_hides_credentials() -> None:
    grafana = connect("https://ops:secret@example.org:8443/grafana/", token=None)
    assert grafana.url == "https://example.org:8443/grafana"
    assert grafana.api.client.url == "https://example.org:8443/grafana/api"
    with pytest.raises(ValueError, match="not an http"):
        connect("grafana:3000")


def test_the_stand_in_grafana_records_what_grafana_would_refuse() -> None:
    fake = FakeGrafana(tokens={TOKEN: "Admin"})
    with fake.serving():
        api = connect(fake.url, TOKEN).api
        api.folder.create_folder("Corridor Monitor", uid=FOLDER_UID)
        stale = {"dashboard": {**MODELS["corridor-overview"], "id": 999}, "folderUid": FOLDER_UID, "overwrite": True}
        with pytest.raises(Exception, match="Dashboard not found"):
            api.dashboard.update_dashboard(stale)
        with pytest.raises(Exception, match="bad request data"):
            api.dashboard.update_dashboard({"dashboard": MODELS["corridor-flights"], "folderUid": FOLDER_UID})
        with pytest.raises(Exception, match="bad request data"):
            api.folder.create_folder("No uid")
    assert len(fake.violations) == 3, fake.violations
    assert "stale" not in fake.violations[0] and "dashboard.id 999" in fake.violations[0]
    assert "missing ['overwrite']" in fake.violations[1]
    assert "missing ['uid']" in fake.violations[2]
