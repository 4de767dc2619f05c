"""`ctid report NAME` and `GET /api/reports/NAME`: the KPI functions over the interaction log, rendered.

Every report reads what the log's writer folded as it wrote (`reports.store`: contacts, agent legs and
spans), summed by SQL and turned into figures by `reports.kpi`, so a month costs a few queries, not a
re-fold of its events. A contact counts in the period of its arrive, with the outcome it has now.
"""

from __future__ import annotations

import contextlib
import csv
import html
import io
import json
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine

from reports.kpi import (
    TALK_EDGES_S,
    WAIT_EDGES_S,
    KpiSettings,
    QueueTally,
    active_agents,
    histogram_of,
    inbound_of,
    intervals_of,
    kpi_targets,
    queue_figures,
    ranked,
    summary_of,
)
from reports.log import load_gaps, open_engine
from reports.store import DAY_S, agent_rows, distribution_counts, queue_tallies

FORMATS = ("table", "csv", "json", "html")
DEFAULT_TARGETS: dict[str, dict[str, float]] = {
    "service_level": {"min": 0.80},
    "abandon_rate": {"max": 0.05},
    "asa_s": {"max": 30.0},
    "occupancy": {"min": 0.75, "max": 0.85},
}


# Bounds on one request's work: each row costs about a kilobyte of JSON, so 10,000 rows stay near 10 MB
# (a month of half-hour intervals for six queues); a report is never longer than a year.
MAX_ROWS = 10_000
MAX_RANGE_S = 366 * DAY_S
MIN_INTERVAL_S = 60.0


class ReportError(ValueError):
    """A report that cannot be made as asked (unknown name, bad period)."""


class ReportTooLarge(ReportError):
    """A report that would exceed the bounds on one request's work (`MAX_ROWS`, `MAX_RANGE_S`)."""


def _check_interval(start: float, end: float, interval_s: float, queues: int = 1) -> None:
    """Refuse an interval report whose rows (intervals x queues) would pass `MAX_ROWS`, before building it."""
    if not math.isfinite(interval_s) or interval_s < MIN_INTERVAL_S:
        raise ReportError(f"--interval must be at least {MIN_INTERVAL_S / 60:g} minute(s)")
    slots = math.ceil((end - start) / interval_s)
    if slots * queues > MAX_ROWS:
        what = f"{slots:,} intervals" + (f" x {queues} queues" if queues > 1 else "")
        raise ReportTooLarge(
            f"the interval report would have {what}, over the limit of {MAX_ROWS:,} rows per report: "
            "choose a shorter period, a longer interval or one queue"
        )


def _overall(connection: Connection, start: float, end: float, settings: KpiSettings) -> dict[str, Any]:
    """All queues together, plus the agents' occupancy, for the KPI targets."""
    tallies = queue_tallies(connection, start=start, end=end, settings=settings, by=())
    figures = queue_figures(tallies.get((), QueueTally()), settings)
    agents = agent_rows(connection, start=start, end=end)
    occupied = sum(a["occupied_s"] for a in agents)
    ready = sum(a["ready_s"] for a in agents)
    figures["occupancy"] = occupied / (occupied + ready) if occupied + ready else None
    return figures


def check_request(
    name: str,
    *,
    start: float,
    end: float,
    queue: str | None = None,
    agent: str | None = None,
    interval_s: float = 1800.0,
    timezone: str = "UTC",
) -> None:
    """Refuse, before any query, a report that cannot be made as asked or would pass the bounds on one
    request's work (`ReportTooLarge`, its message stating the limit). Cheap: the web checks on its loop."""
    if name not in REPORTS:
        raise ReportError(f"unknown report {name!r} (one of: {', '.join(REPORTS)})")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ReportError("--from and --to must be finite times")
    if end <= start:
        raise ReportError("--to must be after --from")
    if end - start > MAX_RANGE_S:
        raise ReportTooLarge(
            f"the period is {(end - start) / DAY_S:,.1f} days, over the limit of {MAX_RANGE_S / DAY_S:g} "
            "days per report"
        )
    if name == "interval":
        _check_interval(start, end, interval_s)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(f"unknown time zone {timezone!r}") from None
    for option, value in (("queue", queue), ("agent", agent)):
        if value is not None and option not in FILTERS.get(name, ()):
            usable = ", ".join(n for n, keys in FILTERS.items() if option in keys)
            raise ReportError(f"--{option} does not apply to {name} (it does to {usable})")


def run_report(
    name: str,
    source: Any,
    *,
    start: float,
    end: float,
    queue: str | None = None,
    agent: str | None = None,
    interval_s: float = 1800.0,
    timezone: str = "UTC",
    settings: KpiSettings | None = None,
    targets: Mapping[str, Mapping[str, float]] | None = None,
) -> Any:
    """The JSON-able result of report `name` over [start, end) from the log at `source` (URL or engine)."""
    check_request(
        name, start=start, end=end, queue=queue, agent=agent, interval_s=interval_s, timezone=timezone
    )
    settings = settings or KpiSettings()
    gaps = load_gaps(source, start, end)
    with _connect(source) as connection:
        if name == "queue-summary":
            tallies = queue_tallies(connection, start=start, end=end, settings=settings)
            result: Any = summary_of(
                {q: t for (q,), t in tallies.items()}, start=start, end=end, settings=settings, gaps=gaps
            )
        elif name == "interval":
            slots = queue_tallies(connection, start=start, end=end, settings=settings, interval_s=interval_s)
            if queue is not None:
                slots = {key: tally for key, tally in slots.items() if key[1] == queue}
            _check_interval(start, end, interval_s, len({queue_name for _, queue_name in slots}))
            result = intervals_of(
                slots, start=start, end=end, interval_s=interval_s, settings=settings, gaps=gaps
            )
        elif name in ("agent-performance", "agent-comparison"):
            table = active_agents(agent_rows(connection, start=start, end=end), gaps)
            result = table if name == "agent-performance" else ranked(table)
        elif name == "durations":
            counts = distribution_counts(
                connection, start=start, end=end, talk_edges_s=TALK_EDGES_S, wait_edges_s=WAIT_EDGES_S
            )
            return {
                "talk": histogram_of(counts["talk"], TALK_EDGES_S),
                "wait_answered": histogram_of(counts["wait_answered"], WAIT_EDGES_S),
                "wait_abandoned": histogram_of(counts["wait_abandoned"], WAIT_EDGES_S),
                "data_gaps": gaps,
            }
        elif name == "inbound-summary":

            def by(column: str) -> dict[Any, QueueTally]:
                found = queue_tallies(
                    connection,
                    start=start,
                    end=end,
                    settings=settings,
                    by=(column,),
                    inbound_only=True,
                    timezone=timezone,
                )
                return {key: t for (key,), t in found.items()}

            return inbound_of(by("dnis"), by("tier"), by("hour"), settings=settings, gaps=gaps)
        else:  # kpi
            before = start - (end - start)
            return {
                "period": {"from": start, "to": end, "previous_from": before},
                "targets": kpi_targets(
                    _overall(connection, start, end, settings),
                    _overall(connection, before, start, settings),
                    targets or DEFAULT_TARGETS,
                ),
                "data_gaps": gaps,
            }
    return _filtered(result, queue, agent)


def _filtered(result: list[dict[str, Any]], queue: str | None, agent: str | None) -> list[dict[str, Any]]:
    if queue is not None:
        result = [r for r in result if r.get("queue") == queue]
    if agent is not None:
        result = [r for r in result if r.get("agent") == agent]
    return result


@contextlib.contextmanager
def _connect(source: str | Engine) -> Iterator[Connection]:
    engine = open_engine(source) if isinstance(source, str) else source
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        if isinstance(source, str):
            engine.dispose()


# the reports whose rows carry a queue or an agent, which --queue and --agent keep
FILTERS: dict[str, tuple[str, ...]] = {
    "queue-summary": ("queue",),
    "interval": ("queue",),
    "agent-performance": ("agent",),
    "agent-comparison": ("agent",),
}
REPORTS = (
    "queue-summary",
    "interval",
    "agent-performance",
    "agent-comparison",
    "durations",
    "inbound-summary",
    "kpi",
)


# ---- rendering ------------------------------------------------------------------------------------


def _table_rows(name: str, result: Any) -> list[dict[str, Any]]:
    """The report as flat rows (one table), whatever its JSON shape."""
    if isinstance(result, list):
        return [{k: v for k, v in row.items() if k != "data_gaps"} for row in result]
    if name == "kpi":
        return list(result["targets"])
    if name == "durations":
        return [
            {"histogram": key, "from_s": b["from_s"], "to_s": b["to_s"], "count": b["count"]}
            for key in ("talk", "wait_answered", "wait_abandoned")
            for b in result[key]
        ]
    return [
        {"by": key.removeprefix("by_"), **row}
        for key in ("by_dnis", "by_tier", "by_hour")
        for row in (result[key].values() if isinstance(result[key], dict) else result[key])
    ]


def _gaps(result: Any) -> list[dict[str, Any]]:
    """Every gap the report holds: an interval report has each interval's own, so all rows are read."""
    if isinstance(result, dict):
        return list(result.get("data_gaps", []))
    found = {(g["server"], g["start"]): g for row in result for g in row.get("data_gaps", [])}
    return [found[key] for key in sorted(found, key=lambda k: (k[1], k[0]))]


TIME_COLUMNS = frozenset({"interval_start", "interval_end"})


def _cell(key: str, value: Any, zone: ZoneInfo) -> str:
    if value is None:
        return "-"
    if key in TIME_COLUMNS and isinstance(value, int | float):
        return datetime.fromtimestamp(value, zone).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        if key.endswith(("rate", "level", "occupancy", "utilization", "box")) or key.startswith("sl_"):
            return f"{value * 100:.1f}%"
        return f"{value:.1f}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def render(name: str, result: Any, fmt: str, timezone: str = "UTC") -> str:
    """The result as JSON, CSV (raw values), a text table or an HTML page (times local to `timezone`)."""
    if fmt == "json":
        return json.dumps(result, default=str, indent=2)
    rows = _table_rows(name, result)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                [
                    json.dumps(v) if isinstance(v, dict | list) else ("" if v is None else v)
                    for v in (row.get(c) for c in columns)
                ]
            )
        return out.getvalue()
    zone = ZoneInfo(timezone)
    cells = [[_cell(c, row.get(c), zone) for c in columns] for row in rows]
    if fmt == "table":
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        gaps = _gaps(result)
        if gaps:
            lines.append(f"data gaps (no AMI connection): {json.dumps(gaps, default=str)}")
        return "\n".join(lines) + "\n"
    if fmt == "html":
        return _html(name, result, columns, cells, zone)
    raise ReportError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")


# ---- HTML: one self-contained file with inline SVG charts ------------------------------------------

_COLOURS = ("#2b6cb0", "#2f855a", "#c53030", "#b7791f", "#6b46c1")


def _bars(title: str, labels: list[str], series: dict[str, list[float]]) -> str:
    """A grouped bar chart as inline SVG."""
    width, height, pad = 760, 260, 40
    peak = max([v for values in series.values() for v in values] or [1.0]) or 1.0
    group = (width - 2 * pad) / max(1, len(labels))
    bar = group / (len(series) + 1)
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img"><title>{html.escape(title)}</title>']
    for s, (name, values) in enumerate(series.items()):
        for i, value in enumerate(values):
            h = (height - 2 * pad) * value / peak
            x = pad + i * group + s * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{height - pad - h:.1f}" width="{bar * 0.9:.1f}" height="{h:.1f}" '
                f'fill="{_COLOURS[s % len(_COLOURS)]}"><title>{html.escape(name)}: {value:g}</title></rect>'
            )
        colour = _COLOURS[s % len(_COLOURS)]
        parts.append(f'<text x="{pad + s * 120}" y="16" fill="{colour}">{html.escape(name)}</text>')
    for i, label in enumerate(labels):
        x = pad + i * group
        parts.append(f'<text x="{x:.1f}" y="{height - pad + 16}" font-size="11">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _line(title: str, labels: list[str], values: list[float]) -> str:
    width, height, pad = 760, 220, 40
    peak = max(values or [1.0]) or 1.0
    step = (width - 2 * pad) / max(1, len(values) - 1)
    points = " ".join(
        f"{pad + i * step:.1f},{height - pad - (height - 2 * pad) * v / peak:.1f}"
        for i, v in enumerate(values)
    )
    first, last = (labels[0], labels[-1]) if labels else ("", "")
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img"><title>{html.escape(title)}</title>'
        f'<polyline points="{points}" fill="none" stroke="#2b6cb0" stroke-width="2"/>'
        f'<text x="{pad}" y="{height - 10}" font-size="11">{html.escape(first)}</text>'
        f'<text x="{width - pad - 80}" y="{height - 10}" font-size="11">{html.escape(last)}</text>'
        f'<text x="{pad}" y="16">{html.escape(title)}</text></svg>'
    )


def _charts(name: str, result: Any, zone: ZoneInfo) -> list[str]:
    num: Callable[[Any], float] = lambda v: float(v) if isinstance(v, int | float) else 0.0  # noqa: E731
    if name == "queue-summary" and result:
        labels = [r["queue"] for r in result]
        keys = ("offered", "answered", "abandoned")
        return [_bars("Contacts by queue", labels, {k: [num(r[k]) for r in result] for k in keys})]
    if name == "interval" and result:
        labels = [_cell("interval_start", r.get("interval_start"), zone)[-5:] for r in result]
        return [
            _line("Offered per interval", labels, [num(r["offered"]) for r in result]),
            _line("Service level per interval", labels, [num(r["service_level"]) for r in result]),
        ]
    if name in ("agent-performance", "agent-comparison") and result:
        labels = [r["agent"] for r in result]
        return [_bars("Handled by agent", labels, {"handled": [num(r["handled"]) for r in result]})]
    if name == "durations":
        return [
            _bars(
                f"Histogram: {key}",
                [f"{b['from_s']:g}" for b in result[key]],
                {key: [num(b["count"]) for b in result[key]]},
            )
            for key in ("talk", "wait_answered", "wait_abandoned")
        ]
    if name == "inbound-summary":
        hours = result["by_hour"]
        rows = list(hours.values()) if isinstance(hours, dict) else hours
        return [
            _bars(
                "Offered by hour",
                [str(i) for i in range(len(rows))],
                {"offered": [num(r["offered"]) for r in rows]},
            )
        ]
    return []


def _html(name: str, result: Any, columns: list[str], cells: list[list[str]], zone: ZoneInfo) -> str:
    gaps = _gaps(result)
    shown = html.escape(json.dumps(gaps, default=str))
    warning = f'<p class="gap">Data gaps (ctid had no AMI connection): {shown}</p>' if gaps else ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in cells)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>ctid report: {html.escape(name)}</title><style>"
        "body{font:14px system-ui,sans-serif;margin:24px;color:#1a202c}"
        "table{border-collapse:collapse}td,th{border:1px solid #cbd5e0;padding:4px 8px;text-align:right}"
        "th{background:#edf2f7}svg{max-width:760px;display:block;margin:12px 0}.gap{color:#c53030}"
        f"</style></head><body><h1>ctid report: {html.escape(name)}</h1>{warning}"
        + "".join(_charts(name, result, zone))
        + f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>\n"
    )
