"""``corridor alerts``: the Prometheus recording and alert rules, rendered from code and their thresholds."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from streams.cli.base import cli, load_thresholds, thresholds_file_option


@cli.group("alerts")
def alerts_group() -> None:
    """Recording and alert rules: render them from streams/alerting/ and its thresholds (thresholds.py)."""


@alerts_group.command("render")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("deploy/prometheus/alerts"))
@click.option("--profile", type=click.Choice(["default", "test"]), default="default", show_default=True,
              help="Threshold set: default for production, test with short durations for live tests; "
                   "--config overrides its keys.")
@thresholds_file_option
@click.option("--rules-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("deploy/prometheus/rules"), show_default=True,
              help="Where the recording rules are written; they go into the PrometheusRule with the alerts.")
@click.option("--prometheus-rule", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("deploy/k8s/base/prometheus-rules.yaml"), show_default=True,
              help="Also write the recording rules and the alerts as one Kubernetes PrometheusRule (skipped when "
                   "its folder is missing, and with --profile test).")
def alerts_render(directory: Path, profile: str, config: Path | None, rules_dir: Path, prometheus_rule: Path) -> None:
    """Write one alert file per area into DIRECTORY [default: deploy/prometheus/alerts], and the recording rules.

    With --config FILE, the thresholds are the profile's with the file's keys over them (an
    empty file: the profile's); a key the thresholds do not have, or a value they refuse,
    exits 2 naming it. Give output folders of your own to keep the repository's files:

    \b
    corridor alerts render --config thresholds.yaml rendered/alerts --rules-dir rendered/rules \\
        --prometheus-rule my-overlay/prometheus-rules.yaml
    """
    from streams.alerting import kubernetes, records
    from streams.alerting.rules import write

    thresholds = load_thresholds(profile, config)
    for path in [*write(directory, thresholds), *records.write(rules_dir, thresholds)]:
        click.echo(str(path))
    # What a cluster deploys carries the production thresholds only.
    if profile == "default" and prometheus_rule.parent.is_dir():
        click.echo(str(kubernetes.write(prometheus_rule, (rules_dir, directory))))


@alerts_group.command("config")
@click.option("--profile", type=click.Choice(["default", "test"]), default="default", show_default=True,
              help="Threshold set printed; --config overrides its keys.")
@thresholds_file_option
def alerts_config(profile: str, config: Path | None) -> None:
    """Print the thresholds as a thresholds file: every key, its value and what it is.

    Without options, the defaults: deploy/config/thresholds.yaml is this output (a test keeps
    it so). With --config FILE, what the file makes of the profile, checked as `alerts render`
    and `dashboards build` check it.
    """
    from streams.alerting.config import example

    click.echo(example(load_thresholds(profile, config)), nl=False)


def _numbers(kind: type, text: str) -> tuple:
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected comma-separated numbers") from None


@alerts_group.command("evaluate")
@click.option("--weeks", type=click.IntRange(min=1), default=4, show_default=True,
              help="Weeks evaluated per seed, after the warm-up (the seasonal band needs 4 weeks of history).")
@click.option("--seeds", default="1", show_default=True, help="Comma-separated seeds: one simulation set each.")
@click.option("--routes", default="all", show_default=True,
              help="Comma-separated shipment routes the drops are injected on; all: every route of the simulator.")
@click.option("--fractions", default="0.5,0.8,1.0", show_default=True,
              help="Comma-separated drop fractions; each route loses each once per seed.")
@click.option("--step", type=click.IntRange(min=1), default=300, show_default=True,
              help="Rule evaluation interval and simulated scrape interval, seconds.")
@click.option("--horizon", type=click.FloatRange(min=1), default=24.0, show_default=True,
              help="Hours a drop lasts; a drop not detected by then is missed.")
@click.option("--no-covid", is_flag=True, help="Skip the covid-2020 simulation.")
@click.option("--slips", default="congestion,delays", show_default=True,
              help="Comma-separated scenarios that slow the corridor (congestion: sailings held at Qinzhou; delays: "
                   "sea legs slower), scored on the time alerts; empty: none.")
@click.option("--families", default="shipments,flights,finance,datachannel", show_default=True,
              help="Comma-separated families simulated in the runs without drops (shipments is needed).")
@click.option("--profile", type=click.Choice(["default", "test"]), default="default", show_default=True,
              help="Threshold set whose alerts are evaluated; --config overrides its keys.")
@thresholds_file_option
@click.option("--rules-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              default=Path("deploy/prometheus/rules"), show_default=True,
              help="Recording rules the alerts may read.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where TSDBs are built [default: a temporary directory].")
@click.option("--keep", is_flag=True, help="Keep the TSDBs (with --workdir) for a look with Prometheus.")
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the tables as Markdown to this file.")
def alerts_evaluate(weeks: int, seeds: str, routes: str, fractions: str, step: int, horizon: float, no_covid: bool,
                    slips: str, families: str, profile: str, config: Path | None, rules_dir: Path, workdir: Path | None,
                    keep: bool, markdown_file: Path | None) -> None:
    """Measure the alerts: detection delay of injected drops and slips, misses, false firings per week.

    Simulates weeks of corridor traffic (baseline; the same with drops of each fraction on
    each route, cut by the simulator's drop scenario; covid-2020; the congestion and delays
    scenarios), runs it through the workers' pure core, backfills what they would export into
    a real Prometheus TSDB (promtool), backfills the recording rules, and evaluates every
    volume alert (on the drops) and time alert (on the slips) over the range. Needs
    prometheus and promtool (CORRIDOR_PROMETHEUS_BIN / CORRIDOR_PROMTOOL_BIN, ./.tools/bin or
    PATH). Exit 0 when every target the run covers is met, 1 otherwise.

    \b
    corridor alerts evaluate                                   # the full table (minutes)
    corridor alerts evaluate --weeks 1 --routes CNCKG-CNQZH-SGSIN --fractions 0.8,1 --no-covid
    corridor alerts evaluate --weeks 1 --routes "" --no-covid --slips congestion   # the time alerts alone
    """
    import signal
    import tempfile
    from datetime import timedelta

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from streams.evaluation.quality import ANY, ANY_TIME, ROUTES, Plan, evaluate, markdown, summary_rows
    from streams.evaluation.tools import ToolMissing, require_tool

    thresholds = load_thresholds(profile, config)
    try:
        promtool, prometheus_bin = require_tool("promtool"), require_tool("prometheus")
    except ToolMissing as missing:
        raise click.ClickException(str(missing)) from None
    try:
        chosen = ROUTES if routes == "all" else tuple(route for route in routes.split(",") if route)
        plan = Plan(weeks=weeks, seeds=_numbers(int, seeds), routes=chosen,
                    fractions=_numbers(float, fractions), step=step, scrape=step,
                    horizon=timedelta(hours=horizon), covid=not no_covid,
                    slips=tuple(slip for slip in slips.split(",") if slip),
                    families=tuple(f for f in families.split(",") if f))
    except ValueError as error:
        raise click.UsageError(str(error)) from None

    console = Console()
    # SIGTERM unwinds like Ctrl-C: the Prometheus this command started stops and its TSDBs go.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    with tempfile.TemporaryDirectory(prefix="corridor-alert-quality-") as scratch:
        root = workdir or Path(scratch)
        with Progress(TextColumn("{task.description:<48}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("starting", total=1)

            class _Bar:
                def step(self, description: str, done: float, total: float) -> None:
                    bar.update(task, description=description, completed=done, total=total)

            try:
                report = evaluate(plan, thresholds, rules_dir=rules_dir, workdir=root, promtool=promtool,
                                  prometheus_bin=prometheus_bin, progress=_Bar(), keep=keep)
            except RuntimeError as error:
                raise click.ClickException(str(error)) from None

    for alert in (*report.alerts, ANY):
        table = Table(title=f"{alert} — firings: {report.rates(alert)}", title_justify="left")
        for column in ("drop", "route", "drops", "fastest", "median", "slowest", "missed"):
            table.add_column(column, justify="left" if column in ("drop", "route") else "right")
        for row in summary_rows(report, alert):
            table.add_row(*(str(value) for value in row.values()))
        console.print(table)
    if report.slip_detections:
        table = Table(title="Time alerts: days from the slip to the first firing on a slowed route",
                      title_justify="left")
        kinds = list(dict.fromkeys(d.kind for d in report.slip_detections))
        for column in ("alert", *kinds, "firings"):
            table.add_column(column)
        for alert in (*report.time_alerts, ANY_TIME):
            cells = []
            for kind in kinds:
                seen = [d for d in report.slip_delay(alert, kind) if d is not None]
                watches = alert in (*report.slip_alerts, ANY_TIME)
                cells.append("-" if not watches else f"{min(seen) / 86400:.1f}" if seen else "missed")
            table.add_row(alert, *cells, report.rates(alert) if alert != ANY_TIME else "")
        console.print(table)
    met = True
    for target, ok, detail in report.targets():
        met &= ok
        console.print(f"[{'green' if ok else 'red'}]{'met' if ok else 'NOT met'}[/]: {target} ({detail})")
    if markdown_file is not None:
        command = " ".join(["corridor alerts evaluate", *sys.argv[3:]])
        markdown_file.write_text(markdown(report, command), encoding="utf-8")
    if not met:
        sys.exit(1)
