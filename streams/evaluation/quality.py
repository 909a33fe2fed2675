"""Alert quality, measured: weeks of simulated corridor metrics in a real Prometheus, every
volume alert evaluated over them, drops injected by the simulator and scored.

For each seed three simulations run (``corridor alerts evaluate``):

- ``baseline``: the baseline scenario. Every firing in the evaluated weeks is false.
- ``drops``: the same traffic (same seed), with the ``drop`` scenario's cut spliced in for
  each (route, fraction) of the plan for ``horizon``, at different hours of the week; a
  drop's detection delay is the time from the cut to the first firing on that route.
- ``covid-2020`` (first seed only): the 2020 scenario, steady at its own level.
- ``congestion`` and ``delays`` (first seed only, as the plan asks): sailings from Qinzhou held,
  or sea legs slowed, from a moment on; the time alerts (``streams/alerting/transit.py``) are
  scored on how long after that moment they first fire on a slowed route. The baseline run
  evaluates the time alerts too: every firing of theirs there is false.

Each history is backfilled into its own TSDB (``promtool tsdb create-blocks-from
openmetrics``), the recording rules the alerts read are backfilled level by level
(``create-blocks-from rules``), and each alert expression is evaluated with
``query_range`` at the evaluation interval; its ``for:`` is applied here, as Prometheus'
rule manager would. The functions that score are pure and tested without Prometheus.
"""

from __future__ import annotations

import re
import shutil
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import yaml

from schemas.families import FAMILY_NAMES
from streams.alerting import transit, volume
from streams.alerting.alert import Rule
from streams.alerting.thresholds import Thresholds
from streams.evaluation import prometheus
from streams.evaluation.history import Drop, exported_history, metric_names
from streams.sim.simulator import Scenario, SimulationConfig

HOUR = 3600
DAY = 24 * HOUR
#: The drop routes: every shipment route of the simulator and the default registry.
ROUTES = ("CNCKG-CNQZH-SGSIN", "CNQZH-SGSIN", "CNCKG-VNHAN", "CNCKG-LAVTE", "CNCKG-SGSIN")
#: Pseudo-alert: the first firing of any volume alert on the dropped route.
ANY = "any volume alert"
#: Targets of the alerting issue: (drop fraction, longest detection delay in seconds).
DETECTION_TARGETS = ((0.5, 2 * HOUR), (0.8, 1 * HOUR))
#: The scenarios that make time slip, and the routes each one slows.
SLIPS: Mapping[str, tuple[str, ...]] = {
    "congestion": ("CNCKG-CNQZH-SGSIN",),  # sailings from Qinzhou held: the rail-sea route
    "delays": ("CNCKG-CNQZH-SGSIN", "CNQZH-SGSIN"),  # every sea leg to Singapore slower
}
#: Pseudo-alert: the first firing of any time alert on a slowed route.
ANY_TIME = "any time alert"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Plan:
    """What to simulate and how to evaluate it."""

    weeks: int = 4  # evaluated weeks per seed (after the warm-up)
    seeds: tuple[int, ...] = (1,)
    routes: tuple[str, ...] = ROUTES
    fractions: tuple[float, ...] = (0.5, 0.8, 1.0)
    step: int = 300  # rule evaluation interval: the query_range step, seconds
    scrape: int = 300  # simulated scrape interval, seconds
    horizon: timedelta = timedelta(hours=24)  # a drop lasts this long; detected later is missed
    warmup: timedelta = timedelta(weeks=5)  # history before the evaluated weeks (seasonal band: 4w6h)
    covid: bool = True
    families: tuple[str, ...] = FAMILY_NAMES  # simulated in the runs without drops
    #: How far before the evaluated weeks the recording rules are backfilled: the longest range a rule or
    #: alert reads of another rule (the seasonal band's spread reads a week of its z-score).
    rules_lookback: timedelta = timedelta(weeks=1)
    #: Scenarios of :data:`SLIPS` to run (first seed only), each slipping after ``slip_warmup``.
    slips: tuple[str, ...] = ()
    #: History before a slip: the transit alert compares a day with the week before it.
    slip_warmup: timedelta = timedelta(weeks=2)
    #: How long after the slip's moment a time alert may first fire and count as finding it.
    slip_horizon: timedelta = timedelta(days=10)

    def __post_init__(self) -> None:
        if self.weeks < 1:
            raise ValueError("weeks must be at least 1")
        if "shipments" not in self.families:
            raise ValueError("the shipments family is needed (the drops are shipment drops)")
        if unknown := set(self.routes) - set(ROUTES):
            raise ValueError(f"unknown routes {sorted(unknown)}: choose from {', '.join(ROUTES)}")
        if any(not 0 < fraction <= 1 for fraction in self.fractions):
            raise ValueError("drop fractions must be within (0, 1]")
        if unknown := set(self.slips) - set(SLIPS):
            raise ValueError(f"unknown slip scenarios {sorted(unknown)}: choose from {', '.join(SLIPS)}")
        if self.step <= 0 or self.scrape <= 0:
            raise ValueError("step and scrape interval must be positive")
        # A route's drops start drop_spacing apart, each up to 28h into its slot: it must end, and the
        # 24h windows recover, before the next one.
        if self.fractions and self.drop_spacing < self.horizon + timedelta(hours=29):
            raise ValueError(f"{len(self.fractions)} drops per route do not fit in {self.weeks} week(s) with a "
                             f"{self.horizon} horizon: fewer fractions, more weeks or a shorter horizon")

    @property
    def duration(self) -> timedelta:
        return self.warmup + timedelta(weeks=self.weeks)

    @property
    def drop_spacing(self) -> timedelta:
        return timedelta(weeks=self.weeks) / max(len(self.fractions), 1)

    def drops(self, seed: int) -> list[Drop]:
        """Each route loses each fraction once, the drops of a route ``drop_spacing`` apart (so neither the
        week-earlier baseline nor the seasonal weeks of one drop hold another drop of its route), each route
        and seed at another hour of the day."""
        drops = []
        for number, route in enumerate(ROUTES):
            if route not in self.routes:
                continue
            phase = timedelta(hours=(number * 7 + seed * 11) % 29)
            for slot, fraction in enumerate(self.fractions):
                drops.append(Drop(route, fraction, self.warmup + slot * self.drop_spacing + phase, self.horizon))
        return drops

    def runs(self) -> list[Run]:
        runs = []
        for index, seed in enumerate(self.seeds):
            runs.append(Run("baseline", SimulationConfig(Scenario.BASELINE, seed=seed, families=self.families), ()))
            if self.routes and self.fractions:
                config = SimulationConfig(Scenario.BASELINE, seed=seed, families=("shipments",))
                runs.append(Run("drops", config, tuple(self.drops(seed))))
            if self.covid and index == 0:
                runs.append(Run("covid-2020", SimulationConfig(Scenario.COVID_2020, seed=seed, families=self.families),
                                ()))
            for slip in self.slips if index == 0 else ():
                config = SimulationConfig(Scenario(slip), seed=seed, families=("shipments",),
                                          slip_after=self.slip_warmup)
                runs.append(Run(slip, config, ()))
        return runs


@dataclass(frozen=True)
class Run:
    """One simulation backfilled into its own TSDB."""

    kind: str  # baseline, drops, covid-2020, or a scenario of SLIPS
    config: SimulationConfig
    drops: tuple[Drop, ...]

    @property
    def name(self) -> str:
        return f"{self.kind} (seed {self.config.seed})"

    @property
    def slip(self) -> bool:
        return self.kind in SLIPS


@dataclass(frozen=True)
class Firing:
    """One episode of an alert for one label set: pending from ``pending_at``, firing from ``firing_at``."""

    alert: str
    labels: Labels
    pending_at: float
    firing_at: float
    until: float  # the last evaluation that still returned it

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


def firings(alert: str, points: Mapping[Labels, Sequence[tuple[float, float]]], step: int, for_s: int,
            ) -> list[Firing]:
    """Apply ``for:`` as Prometheus' rule manager does, to an expression evaluated every ``step`` seconds:
    a label set is pending from the first evaluation that returns it and fires once it has been
    returned at every evaluation for ``for_s``; one evaluation without it resets it."""
    episodes: list[Firing] = []
    for labels, series in points.items():
        run: list[float] = []  # the evaluations in a row that returned this label set
        for moment, _ in sorted(series):
            if run and moment - run[-1] > step * 1.5:
                episodes += _episode(alert, labels, run, for_s)
                run = []
            run.append(moment)
        episodes += _episode(alert, labels, run, for_s)
    return sorted(episodes, key=lambda episode: (episode.firing_at, episode.labels))


def _episode(alert: str, labels: Labels, run: list[float], for_s: int) -> list[Firing]:
    firing_at = next((moment for moment in run if moment - run[0] >= for_s), None)
    return [] if firing_at is None else [Firing(alert, labels, run[0], firing_at, run[-1])]


def firing_time(episodes: Iterable[Firing], first: float, last: float, step: int) -> float:
    """Seconds of [first, last] during which at least one of ``episodes`` was firing (each fires from its
    ``firing_at`` until one step after the last evaluation that returned it)."""
    spans = sorted((max(e.firing_at, first), min(e.until + step, last)) for e in episodes)
    total, reached = 0.0, first
    for begin, end in spans:
        begin = max(begin, reached)
        if end > begin:
            total += end - begin
            reached = end
    return total


@dataclass(frozen=True)
class Detection:
    """How one alert (or any of them) did on one injected drop: the delay in seconds, or None (missed)."""

    alert: str
    seed: int
    drop: Drop
    delay: float | None


def detections(alerts: Iterable[str], drops: Sequence[Drop], episodes: Sequence[Firing], start: float,
               horizon: float, seed: int) -> list[Detection]:
    """For every drop and alert (and :data:`ANY`): the first firing on the drop's route within the horizon."""
    found = []
    for drop in drops:
        cut = start + drop.at.total_seconds()
        on_route = [e for e in episodes if e.label("route") == drop.route and cut <= e.firing_at <= cut + horizon]
        for alert in (*alerts, ANY):
            mine = [e.firing_at for e in on_route if alert in (ANY, e.alert)]
            found.append(Detection(alert, seed, drop, min(mine) - cut if mine else None))
    return found


@dataclass(frozen=True)
class SlipDetection:
    """How one time alert (or any of them) did on one slip scenario: seconds from its moment, or None (missed)."""

    alert: str
    kind: str
    seed: int
    delay: float | None


def slip_detections(alerts: Iterable[str], kind: str, episodes: Sequence[Firing], moment: float, horizon: float,
                    seed: int) -> list[SlipDetection]:
    """For every time alert (and :data:`ANY_TIME`): its first firing on a route the slip slows, within the horizon."""
    slowed = [e for e in episodes if e.label("route") in SLIPS[kind] and moment <= e.firing_at <= moment + horizon]
    found = []
    for alert in (*alerts, ANY_TIME):
        mine = [e.firing_at for e in slowed if alert in (ANY_TIME, e.alert)]
        found.append(SlipDetection(alert, kind, seed, min(mine) - moment if mine else None))
    return found


@dataclass
class Report:
    """Everything measured: detections of the drops, firings in the runs without drops, and the plan."""

    plan: Plan
    alerts: list[str]
    detections: list[Detection] = field(default_factory=list)
    #: Firings in the evaluated weeks of the runs without drops, by run kind.
    false_firings: dict[str, list[Firing]] = field(default_factory=dict)
    #: Evaluated weeks, by run kind.
    weeks: dict[str, float] = field(default_factory=dict)
    #: Seconds during which some series of an alert was firing, by (run kind, alert), and evaluated seconds.
    firing_seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    evaluated_seconds: dict[str, float] = field(default_factory=dict)
    #: The time alerts (transit, overdue, on time, flights), and how they found the slips.
    time_alerts: list[str] = field(default_factory=list)
    #: The time alerts that watch shipments (a slip's job; the flights' one watches flights).
    slip_alerts: list[str] = field(default_factory=list)
    slip_detections: list[SlipDetection] = field(default_factory=list)

    def slip_delay(self, alert: str, kind: str) -> list[float | None]:
        return [d.delay for d in self.slip_detections if d.alert == alert and d.kind == kind]

    def per_week(self, kind: str, alert: str) -> float | None:
        weeks = self.weeks.get(kind)
        if not weeks:
            return None
        return sum(1 for f in self.false_firings.get(kind, []) if self.counts_as(alert, f.alert)) / weeks

    def counts_as(self, alert: str, fired: str) -> bool:
        """Whether a firing of ``fired`` counts for ``alert``: itself, or :data:`ANY` for a volume alert."""
        return fired == alert or (alert == ANY and fired in self.alerts)

    def firing_share(self, kind: str, alert: str) -> float | None:
        """The share of the evaluated time ``alert`` was firing in the runs of ``kind``."""
        evaluated = self.evaluated_seconds.get(kind)
        return self.firing_seconds.get((kind, alert), 0.0) / evaluated if evaluated else None

    def rates(self, alert: str) -> str:
        """Firings per week and the share of the time firing, per run kind without drops."""
        parts = []
        for kind in self.weeks:
            part = f"{kind} {self.per_week(kind, alert) or 0:.2f}/week"
            if (share := self.firing_share(kind, alert)) is not None:
                part += f" (firing {share:.0%} of the time)"
            parts.append(part)
        return ", ".join(parts) or "not measured"

    def delays(self, alert: str, fraction: float, route: str | None = None) -> list[float | None]:
        return [d.delay for d in self.detections
                if d.alert == alert and d.drop.fraction == fraction and route in (None, d.drop.route)]

    def targets(self) -> list[tuple[str, bool, str]]:
        """(target, met, what was measured) for each target the plan covers."""
        results = []
        for fraction, limit in DETECTION_TARGETS:
            delays = self.delays(ANY, fraction)
            if not delays:
                continue
            within = sum(1 for delay in delays if delay is not None and delay <= limit)
            target = f"a {fraction:.0%} drop on any route detected within {limit // HOUR}h"
            results.append((target, within == len(delays), f"{within} of {len(delays)} drops"))
        for kind in dict.fromkeys(d.kind for d in self.slip_detections):
            delays = self.slip_delay(ANY_TIME, kind)
            found = sum(1 for delay in delays if delay is not None)
            horizon = self.plan.slip_horizon.total_seconds() / DAY
            results.append((f"{kind} found by a time alert within {horizon:g} days", found == len(delays),
                            f"{found} of {len(delays)} runs"))
        if "baseline" in self.weeks:
            count = len(self.false_firings.get("baseline", []))
            results.append((f"0 false firings in {self.weeks['baseline']:g} weeks of baseline", count == 0,
                            f"{count} firings"))
        return results


class Progress(Protocol):
    """Where the long steps report to (a progress bar)."""

    def step(self, description: str, done: float, total: float) -> None: ...


class _Silent:
    def step(self, description: str, done: float, total: float) -> None:
        return None


_QUOTED = re.compile(r'"(?:\\.|[^"\\])*"|`[^`]*`|\'(?:\\.|[^\'\\])*\'')
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def referenced(expr: str) -> set[str]:
    """Names an expression mentions outside its string literals (metric names, functions, keywords)."""
    return set(_NAME.findall(_QUOTED.sub('""', expr)))


def recording_rules(rules_dir: Path) -> dict[str, list[str]]:
    """Every recording rule's expressions, by record name, from the YAML files of ``rules_dir``."""
    found: dict[str, list[str]] = {}
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "record" in rule:
                    found.setdefault(rule["record"], []).append(rule["expr"])
    return found


Levels = list[dict[str, list[str]]]


def rule_levels(exprs: Iterable[str], recording: Mapping[str, list[str]]) -> tuple[Levels, set[str]]:
    """The recording rules ``exprs`` need, in levels (a level reads only raw series and lower levels),
    and the raw metric names the rules and ``exprs`` read."""
    raw_names = metric_names()
    levels: dict[str, int] = {}
    raw: set[str] = set()

    def level(name: str, seen: tuple[str, ...] = ()) -> int:
        if name in seen:
            raise ValueError(f"recording rules loop: {' -> '.join((*seen, name))}")
        if name not in levels:
            below = 0
            for expr in recording[name]:
                below = max(below, needs(expr, (*seen, name)))
            levels[name] = below + 1
        return levels[name]

    def needs(expr: str, seen: tuple[str, ...] = ()) -> int:
        deepest = 0
        for name in referenced(expr):
            if name in recording:
                deepest = max(deepest, level(name, seen))
            elif _family(name) in raw_names:
                raw.add(name)
        return deepest

    for expr in exprs:
        needs(expr)
    ordered: Levels = [{} for _ in range(max(levels.values(), default=0))]
    for name, depth in levels.items():
        ordered[depth - 1][name] = recording[name]
    return ordered, raw


def _family(name: str) -> str:
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _seconds(duration: str) -> int:
    """A rule's ``for:`` (e.g. ``1h30m``) in seconds."""
    return sum(int(amount) * _UNITS[unit] for amount, unit in re.findall(r"(\d+)([smhdw])", duration))


def evaluate(plan: Plan, thresholds: Thresholds, *, rules_dir: Path, workdir: Path, promtool: str,
             prometheus_bin: str, progress: Progress | None = None, keep: bool = False) -> Report:
    """Run the plan: simulate, backfill, evaluate every volume alert; the measured :class:`Report`."""
    progress = progress or _Silent()
    volume_alerts: list[Rule] = volume.rules(thresholds)
    time_alerts: list[Rule] = transit.rules(thresholds)
    recording = recording_rules(rules_dir)
    report = Report(plan, list(dict.fromkeys(rule["alert"] for rule in volume_alerts)),
                    time_alerts=list(dict.fromkeys(rule["alert"] for rule in time_alerts)),
                    slip_alerts=list(dict.fromkeys(rule["alert"] for rule in time_alerts if not _flights(rule))))
    for run in plan.runs():
        # Drops are the volume alerts' job, slips the time alerts'; the runs without either judge both.
        alerts = time_alerts if run.slip else volume_alerts if run.drops else volume_alerts + time_alerts
        levels, raw = rule_levels([rule["expr"] for rule in alerts], recording)
        _evaluate_run(plan, run, alerts, levels, raw, report, workdir / run.kind / str(run.config.seed),
                      promtool, prometheus_bin, progress, scrape_labels(thresholds.worker_selector))
        if not keep:
            shutil.rmtree(workdir / run.kind / str(run.config.seed), ignore_errors=True)
    return report


def _flights(rule: Rule) -> bool:
    """Whether an alert watches flights (it reads no shipment series)."""
    names = referenced(rule["expr"])
    return any("flight" in name for name in names) and not any("shipment" in name for name in names)


def scrape_labels(selector: str) -> dict[str, str]:
    """The target labels a scrape adds so that ``selector`` (the config's worker selector) selects the
    simulated worker's series: one per matcher, which must each be an equality."""
    labels = {}
    for name, operator, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', selector):
        if operator != "=":
            raise ValueError(f"worker_selector {selector!r}: the evaluation needs label=\"value\" matchers only")
        labels[name] = value
    return labels


def _evaluate_run(plan: Plan, run: Run, alerts: list[Rule], levels: Levels, raw: set[str],
                  report: Report, directory: Path, promtool: str, prometheus_bin: str, progress: Progress,
                  target: dict[str, str]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    warmup = plan.slip_warmup if run.slip else plan.warmup
    duration = warmup + (plan.slip_horizon if run.slip else timedelta(weeks=plan.weeks))
    simulated = duration.total_seconds()
    history = exported_history(
        run.config, duration, plan.scrape, raw, run.drops,
        progress=lambda done: progress.step(f"{run.name}: simulating", done, simulated),
    )
    progress.step(f"{run.name}: writing blocks", 0, 1)
    tsdb = directory / "tsdb"
    prometheus.create_blocks(promtool, history, tsdb, directory / "openmetrics", target)
    start = run.config.start.timestamp()
    first, last = start + warmup.total_seconds(), start + duration.total_seconds()
    total = len(levels) + len(alerts)
    with prometheus.LocalPrometheus(prometheus_bin, tsdb, directory / "server") as server:
        for depth, level in enumerate(levels, 1):
            progress.step(f"{run.name}: recording rules, level {depth}", depth - 1, total)
            rule_file = directory / f"level{depth}.yml"
            group = {"name": f"level{depth}", "rules": [{"record": name, "expr": expr}
                                                        for name, exprs in level.items() for expr in exprs]}
            rule_file.write_text(yaml.safe_dump({"groups": [group]}, sort_keys=False), encoding="utf-8")
            server.backfill_rules(promtool, rule_file, first - plan.rules_lookback.total_seconds(), last, plan.step)
        episodes: list[Firing] = []
        for number, rule in enumerate(alerts):
            progress.step(f"{run.name}: {rule['alert']}", len(levels) + number, total)
            # From a day early, so an alert pending or firing when the evaluated weeks begin is known as such.
            points = server.query_range(rule["expr"], first - DAY, last, plan.step)
            episodes += firings(rule["alert"], points, plan.step, _seconds(rule["for"]))
        progress.step(f"{run.name}: done", total, total)
    if run.drops:
        report.detections += detections(report.alerts, run.drops, episodes, start, plan.horizon.total_seconds(),
                                         run.config.seed)
    elif run.slip:
        report.slip_detections += slip_detections(report.slip_alerts, run.kind, episodes, first,
                                                  plan.slip_horizon.total_seconds(), run.config.seed)
    else:
        report.false_firings.setdefault(run.kind, []).extend(e for e in episodes if first <= e.firing_at <= last)
        report.weeks[run.kind] = report.weeks.get(run.kind, 0) + plan.weeks
        report.evaluated_seconds[run.kind] = report.evaluated_seconds.get(run.kind, 0) + last - first
        for alert in (*report.alerts, *report.time_alerts, ANY):
            mine = [e for e in episodes if report.counts_as(alert, e.alert)]
            key = (run.kind, alert)
            report.firing_seconds[key] = report.firing_seconds.get(key, 0) + firing_time(mine, first, last, plan.step)


def _hours(seconds: float | None) -> str:
    return "missed" if seconds is None else f"{seconds / HOUR:.1f}h"


def summary_rows(report: Report, alert: str) -> list[dict[str, Any]]:
    """One row per drop fraction and route: drops, detected, delays (hours), missed."""
    rows = []
    routes = [route for route in ROUTES if route in report.plan.routes]
    for fraction in report.plan.fractions:
        for route in (*routes, None):
            delays = report.delays(alert, fraction, route)
            if not delays:
                continue
            seen = sorted(d for d in delays if d is not None)
            rows.append({
                "drop": f"{fraction:.0%}",
                "route": route or "all routes",
                "drops": len(delays),
                "fastest": _hours(seen[0]) if seen else "-",
                "median": _hours(statistics.median(seen)) if seen else "-",
                "slowest": _hours(seen[-1]) if seen else "-",
                "missed": len(delays) - len(seen),
            })
    return rows


def _cell(delays: Sequence[float | None]) -> str:
    """``detected/drops: median (fastest-slowest)`` of some drops' delays."""
    seen = sorted(d for d in delays if d is not None)
    if not delays:
        return ""
    if not seen:
        return f"0/{len(delays)}"
    spread = f" ({seen[0] / HOUR:.1f}-{seen[-1] / HOUR:.1f}h)" if len(seen) > 1 else ""
    return f"{len(seen)}/{len(delays)}: {statistics.median(seen) / HOUR:.1f}h{spread}"


def markdown(report: Report, command: str) -> str:
    """The report as two Markdown tables (what docs/runbook.md holds): every alert over all routes,
    then the first volume alert per route."""
    plan = report.plan
    fractions = [f"{fraction:.0%} drop" for fraction in plan.fractions]
    kinds = list(report.weeks)
    lines = [
        f"`{command}`: {len(plan.seeds)} seed(s) x {plan.weeks} evaluated week(s) after {plan.warmup.days // 7} "
        f"weeks of warm-up, scrapes and evaluations every {plan.step // 60} min, each drop lasting "
        f"{plan.horizon.total_seconds() / HOUR:g}h (not detected by then: missed). A cell reads detected/drops: "
        "median delay (fastest-slowest), - for an alert that watches no shipment route; firings per week "
        "(share of the time firing).",
        "",
        "| alert | " + " | ".join([*fractions, *(f"{kind} firings/week" for kind in kinds)]) + " |",
        "| --- | " + " | ".join(["---"] * (len(fractions) + len(kinds))) + " |",
    ]
    for alert in (*report.alerts, ANY):
        cells = [_cell(report.delays(alert, fraction)) for fraction in plan.fractions]
        if not any(delay is not None for fraction in plan.fractions for delay in report.delays(alert, fraction)):
            cells = ["-" for _ in cells]  # watches no shipment route: the injected drops are not its job
        for kind in kinds:
            share = report.firing_share(kind, alert)
            cells.append(f"{report.per_week(kind, alert) or 0:.2f}" + (f" ({share:.0%})" if share else ""))
        lines.append(f"| {alert} | " + " | ".join(cells) + " |")
    routes = [route for route in ROUTES if route in plan.routes]
    if routes and plan.fractions:
        lines += ["", f"First firing of {ANY} per route:", "",
                  "| route | " + " | ".join(fractions) + " |", "| --- | " + " | ".join(["---"] * len(fractions)) + " |"]
        for route in routes:
            cells = [_cell(report.delays(ANY, fraction, route)) for fraction in plan.fractions]
            lines.append(f"| {route} | " + " | ".join(cells) + " |")
    if report.time_alerts and (report.slip_detections or kinds):
        slips = list(dict.fromkeys(d.kind for d in report.slip_detections))
        lines += ["", f"Time alerts: the first firing on a slowed route after the slip began (within "
                  f"{plan.slip_horizon.total_seconds() / DAY:g} days, else missed), after "
                  f"{plan.slip_warmup.days // 7} weeks of history; firings per week where nothing slips.", "",
                  "| alert | " + " | ".join([*slips, *(f"{kind} firings/week" for kind in kinds)]) + " |",
                  "| --- | " + " | ".join(["---"] * (len(slips) + len(kinds))) + " |"]
        for alert in (*report.time_alerts, ANY_TIME):
            cells = []
            for kind in slips if alert in (*report.slip_alerts, ANY_TIME) else ():
                delays = report.slip_delay(alert, kind)
                seen = sorted(d for d in delays if d is not None)
                cells.append(f"{seen[0] / DAY:.1f} days" if seen else "missed")
            cells += ["-"] * (len(slips) - len(cells))  # watches flights: no slip is its job
            for kind in kinds:
                cells.append(f"{report.per_week(kind, alert) or 0:.2f}" if alert != ANY_TIME else "")
            lines.append(f"| {alert} | " + " | ".join(cells) + " |")
    lines += ["", "Targets:", ""]
    lines += [f"- {'met' if met else 'NOT met'}: {target} ({detail})" for target, met, detail in report.targets()]
    return "\n".join(lines) + "\n"
